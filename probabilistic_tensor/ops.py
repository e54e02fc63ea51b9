"""Raw-tensor kernels of each semantics, looked up by the names in :class:`Semantics`.

Every kernel takes and returns plain ``torch.Tensor`` s (already aligned by the caller),
uses only differentiable torch operations, and maps [0, 1] inputs into [0, 1]
(the product forms are written as ``1 - (1-a)(1-b)`` so rounding cannot leave [0, 1]).
To add a semantics, add an entry to ``TNORMS``, ``QUANTIFIERS`` or ``IOTAS`` and allow its
name in ``Semantics.__post_init__`` (semantics.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

Tensor = torch.Tensor
Dims = tuple[int, ...]


class TNorm(NamedTuple):
    """Binary connectives of one t-norm: and, or, implies (not is always 1 - a)."""

    and_: Callable[[Tensor, Tensor], Tensor]
    or_: Callable[[Tensor, Tensor], Tensor]
    implies: Callable[[Tensor, Tensor], Tensor]


class Quantifier(NamedTuple):
    """Reductions over the given dims: exists and forall."""

    exists: Callable[[Tensor, Dims], Tensor]
    forall: Callable[[Tensor, Dims], Tensor]


def _product_or(a: Tensor, b: Tensor) -> Tensor:
    return 1 - (1 - a) * (1 - b)


def _product_implies(a: Tensor, b: Tensor) -> Tensor:
    return 1 - a * (1 - b)


def _minmax_implies(a: Tensor, b: Tensor) -> Tensor:
    return torch.maximum(1 - a, b)


TNORMS: dict[str, TNorm] = {
    "minmax": TNorm(torch.minimum, torch.maximum, _minmax_implies),
    "product": TNorm(torch.mul, _product_or, _product_implies),
}


def _empty_reduction(data: Tensor, dims: Dims, identity: float) -> Tensor:
    """The identity of a reduction over an empty variable, still attached to the graph."""
    return data.sum(dims) * 0 + identity


def _is_empty(data: Tensor, dims: Dims) -> bool:
    return any(data.shape[d] == 0 for d in dims)


def _max(data: Tensor, dims: Dims) -> Tensor:
    if _is_empty(data, dims):
        return _empty_reduction(data, dims, 0.0)
    return torch.amax(data, dims)


def _min(data: Tensor, dims: Dims) -> Tensor:
    if _is_empty(data, dims):
        return _empty_reduction(data, dims, 1.0)
    return torch.amin(data, dims)


def prod(data: Tensor, dims: Dims) -> Tensor:
    """Product over several dims (torch.prod takes one); 1 over an empty variable."""
    if len(dims) == 1:
        return data.prod(dims[0])
    if not dims:
        return data
    keep = [d for d in range(data.dim()) if d not in dims]
    moved = data.permute(*keep, *dims)
    return moved.reshape(*[data.shape[d] for d in keep], -1).prod(-1)


def _product_exists(data: Tensor, dims: Dims) -> Tensor:
    return 1 - prod(1 - data, dims)


QUANTIFIERS: dict[str, Quantifier] = {
    "minmax": Quantifier(_max, _min),
    "product": Quantifier(_product_exists, prod),
}


IOTA_LOGIT_EPS = 1e-6
"""Probabilities are clamped to [eps, 1 - eps] before the logit, so 0 and 1 stay finite (+-13.8)."""


def _softmax_iota(data: Tensor, dim: int, temperature: float) -> Tensor:
    """softmax(logit(p) / temperature): a one-hot input stays one-hot (to float precision), equal inputs
    give the uniform distribution, and the order of the inputs is kept (LEFT's iota)."""
    p = data.clamp(IOTA_LOGIT_EPS, 1.0 - IOTA_LOGIT_EPS)
    return torch.softmax(torch.logit(p) / temperature, dim)


MINMAX_IOTA_EPS = 1e-12
"""Below this total spread the min-max iota is uniform: a spread of ~1e-300 is no evidence, and dividing by
it would overflow the gradient (1 / total**2)."""


def _minmax_iota(data: Tensor, dim: int, temperature: float) -> Tensor:
    shifted = data - torch.amin(data, dim, keepdim=True)
    total = shifted.sum(dim, keepdim=True)
    positive = total > MINMAX_IOTA_EPS
    # Divide by a safe denominator so the unused branch of where() has finite gradients.
    normalised = shifted / torch.where(positive, total, torch.ones_like(total))
    return torch.where(positive, normalised, torch.full_like(data, 1.0 / data.shape[dim]))


IOTAS: dict[str, Callable[[Tensor, int, float], Tensor]] = {
    "softmax": _softmax_iota,
    "minmax": _minmax_iota,
}
