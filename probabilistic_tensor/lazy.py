"""Lazy relations: a ProbabilisticTensor whose entries are fetched only when an operation needs them.

``score(question, 2)`` is an n x n relation, and a program usually reads a few columns of
it: ``r.contract(the_cube("y"))`` needs r[x, y] only where the distribution over y has
mass. A :class:`LazyTensor` holds no values at first; each operation asks its
:class:`LazyStore` for the entries it reads, and the store asks its ``fetch`` callback
for the ones it does not know yet, in one call. ``fetch(entries) -> values`` receives a
list of index tuples, e.g. ``[(0, 2), (1, 2), (2, 2)]`` (subject, object), and returns one
value per entry. In-process the callback calls the VisionAgent; in a sandbox process it can
be one forwarded call to the parent that returns just those entries: the algebra is the same.

What is evaluated lazily (everything else reads ``.data``, which fetches every entry, so
every other operation is exactly the eager one):

- ``contract`` with another tensor (either side): along each shared variable only the
  objects where the other operand is non-zero (summed over its other variables) are
  evaluated. Exact: the skipped terms are ``0 * r``. With ``LazyPolicy.mass_threshold``
  t > 0, the objects with the smallest weights are skipped too, as long as their share of
  the operand's total weight stays at most t; a contracted value then moves by at most
  that share (entries are in [0, 1]); the share dropped is recorded (``dropped_mass``).
  When the other operand carries gradients (and autograd is on), everything is evaluated,
  so gradients with respect to it are the eager ones.
- ``t[i]`` / ``t[i, j]``: the slice only; ``t("x", "x")``: the diagonal only;
  ``t("a", "b")`` renames without evaluating; ``len(t)``, ``t.shape``: nothing.

Values from different fetches are assembled with out-of-place ``index_put`` so gradients
reach every fetched value exactly as in the eager tensor.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .semantics import Semantics
from .tensor import ProbabilisticTensor, _check_names, _check_sizes, contract_data

Entries = list[tuple[int, ...]]
Fetch = Callable[[Entries], torch.Tensor]


@dataclass(frozen=True)
class LazyPolicy:
    """How lazily relations are evaluated: ``mass_threshold`` 0 is exact (see the module docstring)."""

    mass_threshold: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.mass_threshold < 1.0:
            raise ValueError(f"mass_threshold must be in [0, 1), got {self.mass_threshold}")


class LazyStore:
    """The entries of one lazily evaluated tensor: which are known, their values, and how to fetch more."""

    def __init__(self, shape: tuple[int, ...], fetch: Fetch, kind: str = "prob") -> None:
        self.shape = tuple(int(s) for s in shape)
        self.fetch = fetch
        self.kind = kind
        self.known = torch.zeros(self.shape, dtype=torch.bool)
        self.values: torch.Tensor | None = None
        self.fetches = 0
        self.dropped_mass = 0.0  # the largest share of a contracted operand's weight that was skipped
        self.listener: Callable[[LazyStore], None] | None = None  # told after every change (e.g. a trace entry)

    @property
    def evaluated(self) -> int:
        return int(self.known.sum())

    def ensure(self, mask: torch.Tensor) -> None:
        """Fetch the entries of ``mask`` (bool, this store's shape) that are not known yet, in one call."""
        need = mask & ~self.known
        index = need.nonzero()
        if not len(index):
            return
        entries = [tuple(row) for row in index.tolist()]
        got = self.fetch(entries)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (len(entries),):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ValueError(f"lazy relation: fetch returned {shape} for {len(entries)} entries")
        if not got.is_floating_point():
            got = got.to(torch.get_default_dtype())
        low, high = (float(v) for v in torch.aminmax(got.detach()))  # NaN propagates to both
        if math.isnan(low) or math.isnan(high):
            raise ValueError("lazy relation: fetched values contain NaN")
        if self.kind == "prob" and (low < 0 or high > 1):
            raise ValueError("lazy relation: fetched probabilities outside [0, 1]")
        self.fetches += 1
        base = self.values if self.values is not None else torch.zeros(self.shape, dtype=got.dtype)
        self.values = base.index_put(tuple(index.T), got.to(base.dtype))
        self.known |= need
        if self.listener is not None:
            self.listener(self)

    def note_dropped(self, share: float) -> None:
        """Record that a contraction skipped ``share`` of its operand's weight."""
        if share > self.dropped_mass:
            self.dropped_mass = share
            if self.listener is not None:
                self.listener(self)

    def partial(self) -> torch.Tensor:
        """The known entries, 0 elsewhere."""
        return self.values if self.values is not None else torch.zeros(self.shape)

    def full(self) -> torch.Tensor:
        self.ensure(torch.ones(self.shape, dtype=torch.bool))
        return self.partial()


def _support(weights: torch.Tensor, threshold: float) -> tuple[torch.Tensor, float]:
    """Which objects to keep given their (non-negative) weights, and the share of weight dropped."""
    keep = weights > 0
    total = float(weights.sum())
    if threshold <= 0 or total <= 0:
        return keep, 0.0
    order = torch.argsort(weights)  # smallest first
    cum = torch.cumsum(weights[order], 0) / total
    drop = order[cum <= threshold]
    keep[drop] = False
    return keep, float(weights[drop].sum()) / total


class LazyTensor(ProbabilisticTensor):
    """A ProbabilisticTensor over a :class:`LazyStore` (see the module docstring). Shares its store with its renamings."""

    __slots__ = ("_store", "_policy")

    def __init__(
        self,
        store: LazyStore,
        vars: Sequence[str],  # noqa: A002 - the algebra's name
        semantics: Semantics | None = None,
        policy: LazyPolicy | None = None,
    ) -> None:
        names = _check_names(vars, len(store.shape))
        if len(set(names)) != len(names):
            raise ValueError(f"vars must be distinct, got {names}")
        self._store = store
        self._policy = policy or LazyPolicy()
        self.vars = names
        self.semantics = semantics if semantics is not None else Semantics()
        self.kind = store.kind

    @classmethod
    def relation(
        cls, n: int, fetch: Fetch, semantics: Semantics | None = None, policy: LazyPolicy | None = None
    ) -> LazyTensor:
        """An n x n relation over ("x", "y") whose entries come from ``fetch``."""
        return cls(LazyStore((n, n), fetch), ("x", "y"), semantics, policy)

    @property  # type: ignore[override]
    def data(self) -> torch.Tensor:
        """Every entry (fetching the missing ones)."""
        return self._store.full()

    @property
    def shape(self) -> tuple[int, ...]:
        return self._store.shape

    @property
    def store(self) -> LazyStore:
        return self._store

    def _partial(self) -> ProbabilisticTensor:
        return ProbabilisticTensor._make(self._store.partial(), self.vars, self.semantics, self.kind)

    # ----- lazily evaluated operations -------------------------------------------------
    def __call__(self, *names: str) -> ProbabilisticTensor:
        names = _check_names(names, len(self.shape))
        if len(set(names)) == len(names):
            return LazyTensor(self._store, names, self.semantics, self._policy)
        groups = [[i for i, m in enumerate(names) if m == name] for name in dict.fromkeys(names)]
        mask = torch.ones(self.shape, dtype=torch.bool)
        grids = torch.meshgrid(*[torch.arange(s) for s in self.shape], indexing="ij")
        for g in groups:
            for i in g[1:]:
                mask &= grids[g[0]] == grids[i]
        self._store.ensure(mask)
        return ProbabilisticTensor.__call__(self._partial(), *names)

    def __getitem__(self, index: int | tuple[int, ...]) -> ProbabilisticTensor:
        indices = index if isinstance(index, tuple) else (index,)
        valid = len(indices) <= len(self.shape) and all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) and -s <= int(i) < s
            for i, s in zip(indices, self.shape, strict=False)
        )
        if not valid:  # let the eager path raise its error
            return ProbabilisticTensor.__getitem__(self, index)
        mask = torch.zeros(self.shape, dtype=torch.bool)
        mask[tuple(int(i) for i in indices)] = True
        self._store.ensure(mask)
        return ProbabilisticTensor.__getitem__(self._partial(), index)

    def __len__(self) -> int:
        if not self.vars:
            raise TypeError("len() of a 0-d ProbabilisticTensor")
        return self.shape[0]

    def contract(self, other: ProbabilisticTensor) -> ProbabilisticTensor:
        return self._contract(other, lazy_first=True)

    def contract_as_right(self, other: ProbabilisticTensor) -> ProbabilisticTensor:
        """``other.contract(self)``, evaluating only the entries the contraction reads."""
        return self._contract(other, lazy_first=False)

    def _contract(self, other: ProbabilisticTensor, lazy_first: bool) -> ProbabilisticTensor:
        if not isinstance(other, ProbabilisticTensor):
            raise TypeError(f"contract: expected a ProbabilisticTensor, got {type(other).__name__}")
        a, b = (self, other) if lazy_first else (other, self)
        _check_sizes(a, b)
        mine = self._read_for(other)
        theirs = other.data
        a_data, b_data = (mine, theirs) if lazy_first else (theirs, mine)
        data, kept = contract_data(a.vars, a_data, b.vars, b_data)
        return ProbabilisticTensor._make(data, kept, a.semantics, "prob")

    def _read_for(self, other: ProbabilisticTensor) -> torch.Tensor:
        """This tensor's values as a contraction with ``other`` needs them (unneeded entries may be 0)."""
        shared = [v for v in self.vars if v in other.vars]
        theirs = other.data
        if not shared or (torch.is_grad_enabled() and theirs.requires_grad):
            return self.data
        mask = torch.ones(self.shape, dtype=torch.bool)
        weights = theirs.detach().abs()
        dropped = 0.0
        for v in shared:
            axis = other.vars.index(v)
            others = tuple(d for d in range(weights.dim()) if d != axis)
            per_object = weights.sum(others) if others else weights  # (sum over () would sum everything)
            keep, share = _support(per_object.reshape(-1).double(), self._policy.mass_threshold)
            dropped = max(dropped, share)
            view = [1] * len(self.shape)
            view[self.vars.index(v)] = -1
            mask &= keep.reshape(view)
        self._store.note_dropped(dropped)  # before the fetch, so a forwarded fetch can carry it
        self._store.ensure(mask)
        return self._store.partial()


def lazy_info(t: Any) -> dict[str, Any] | None:
    """What a lazy tensor evaluated (for a trace entry), or None for any other value."""
    if not isinstance(t, LazyTensor):
        return None
    s = t.store
    return {"evaluated": s.evaluated, "entries": math.prod(s.shape), "dropped_mass": s.dropped_mass}


def evaluated(value: Any) -> Any:
    """``value`` with every lazy tensor in it (also inside lists, tuples and dicts) fully evaluated, as a plain one.

    Containers holding no lazy tensor come back as they are (the same objects); shared
    sub-containers are visited once. Check a program's result for size before calling this.
    """
    return _walk(value, {})


def _walk(v: Any, seen: dict[int, Any]) -> Any:
    """:func:`evaluated` of ``v``; ``seen``: container id -> what it became (module-level, not a
    closure calling itself, which would leave a reference cycle per call)."""
    if isinstance(v, LazyTensor):
        return ProbabilisticTensor._make(v.data, v.vars, v.semantics, v.kind)
    if not isinstance(v, (list, tuple, dict)):
        return v
    key = id(v)
    if key in seen:
        return seen[key]
    seen[key] = v  # a container that reaches itself keeps its own (lazy-free) identity
    if isinstance(v, dict):
        items = {k: _walk(x, seen) for k, x in v.items()}
        changed = any(items[k] is not x for k, x in v.items())
        out: Any = items if changed else v
    else:
        parts = [_walk(x, seen) for x in v]
        changed = any(a is not b for a, b in zip(parts, v, strict=True))
        out = (parts if isinstance(v, list) else tuple(parts)) if changed else v
    seen[key] = out
    return out
