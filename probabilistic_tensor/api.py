"""The functions a generated program may call (PROGRAM_API) and the methods it may use (PROGRAM_METHODS).

Their docstrings are short and exact: the LLM prompt's API section is generated from them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .tensor import ProbabilisticTensor, _is_number

PT = ProbabilisticTensor


def _first_pt(what: str, a: Any, b: Any) -> tuple[PT, Any]:
    if isinstance(a, PT):
        return a, b
    if isinstance(b, PT) and _is_number(a):
        lifted = b._logic_operand(a, what)  # a 0-d PT with b's semantics
        return lifted, b
    raise TypeError(
        f"{what}: expected ProbabilisticTensors or numbers in [0, 1], got {type(a).__name__}, {type(b).__name__}"
    )


def _require_pt(what: str, a: Any) -> PT:
    if not isinstance(a, PT):
        raise TypeError(f"{what}: expected a ProbabilisticTensor, got {type(a).__name__}")
    return a


def and_op(a: PT | float, b: PT | float) -> PT:
    """Soft AND of a and b, aligned by variable name: min(a, b) (product t-norm: a*b). Same as a & b."""
    left, right = _first_pt("and_op", a, b)
    return left & right


def or_op(a: PT | float, b: PT | float) -> PT:
    """Soft OR of a and b, aligned by variable name: max(a, b) (product t-norm: a + b - a*b). Same as a | b."""
    left, right = _first_pt("or_op", a, b)
    return left | right


def not_op(a: PT) -> PT:
    """Soft NOT: 1 - a. Same as ~a."""
    return ~_require_pt("not_op", a)


def implies(a: PT | float, b: PT | float) -> PT:
    """Soft implication a -> b: max(1 - a, b) (product t-norm: 1 - a + a*b). Same as a.implies(b)."""
    left, right = _first_pt("implies", a, b)
    return left.implies(right)


def exists(a: PT, var: str | Sequence[str] | None = None) -> PT:
    """Is it true for some object? Max over var (all variables if None). Same as a.exists(var)."""
    return _require_pt("exists", a).exists(var)


def forall(a: PT, var: str | Sequence[str] | None = None) -> PT:
    """Is it true for every object? Min over var (all variables if None). Same as a.forall(var)."""
    return _require_pt("forall", a).forall(var)


def count(a: PT, var: str | Sequence[str] | None = None) -> PT:
    """Soft count of the objects for which a holds: sum over var (all variables if None). Same as a.count(var)."""
    return _require_pt("count", a).count(var)


def iota(a: PT, var: str | None = None) -> PT:
    """Picks "the" object for which a holds: a distribution over var summing to 1 (softmax). Same as a.iota(var)."""
    return _require_pt("iota", a).iota(var)


PROGRAM_API: dict[str, Callable[..., Any]] = {
    "and_op": and_op,
    "or_op": or_op,
    "not_op": not_op,
    "implies": implies,
    "exists": exists,
    "forall": forall,
    "count": count,
    "iota": iota,
}

PROGRAM_METHODS: tuple[str, ...] = (
    "implies",
    "exists",
    "forall",
    "count",
    "iota",
    "contract",
    "argmax",
    "item",
    "tolist",
)

__all__ = [
    "PROGRAM_API",
    "PROGRAM_METHODS",
    "and_op",
    "or_op",
    "not_op",
    "implies",
    "exists",
    "forall",
    "count",
    "iota",
]
