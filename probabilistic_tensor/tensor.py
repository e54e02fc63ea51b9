"""ProbabilisticTensor: soft truth values over named object variables, and the program API.

Operands are aligned by variable name (union of variables in order of appearance,
size-1 axes for the missing ones, then torch broadcasting). Each operation is a handful
of torch calls on the whole tensor, so it is fast and differentiable.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .ops import IOTAS, QUANTIFIERS, TNORMS
from .semantics import Semantics

KINDS = ("prob", "number")
_DEFAULT_VARS = ("x", "y", "z", "w")
_DEFAULT_SEMANTICS = Semantics()
_REPR_LIMIT = 256

Operand = Any  # a ProbabilisticTensor or a python number


@functools.lru_cache(maxsize=1024)
def _plan(a_vars: tuple[str, ...], b_vars: tuple[str, ...]):
    """Union of the variables and, for each operand, (permutation or None, position in the union)."""
    out = a_vars + tuple(v for v in b_vars if v not in a_vars)
    return out, _operand_plan(a_vars, out), _operand_plan(b_vars, out)


def _operand_plan(vars_: tuple[str, ...], out: tuple[str, ...]):
    pos = [out.index(v) for v in vars_]
    perm = tuple(sorted(range(len(vars_)), key=pos.__getitem__))
    return (None if perm == tuple(range(len(vars_))) else perm), tuple(pos)


def _expand(data: torch.Tensor, plan, n_out: int) -> torch.Tensor:
    perm, pos = plan
    if data.dim() == n_out and perm is None:
        return data
    shape = [1] * n_out
    for d, p in enumerate(pos):
        shape[p] = data.shape[d]
    if perm is not None:
        data = data.permute(perm)
    return data.reshape(shape)


def _check_sizes(a: ProbabilisticTensor, b: ProbabilisticTensor) -> None:
    a_shape, b_shape = a.shape, b.shape
    for i, v in enumerate(a.vars):
        if v in b.vars:
            j = b.vars.index(v)
            if a_shape[i] != b_shape[j]:
                raise ValueError(
                    f"variable {v!r} has {a_shape[i]} objects in one operand and {b_shape[j]} in the other"
                )


def contract_data(
    a_vars: tuple[str, ...], a_data: torch.Tensor, b_vars: tuple[str, ...], b_data: torch.Tensor
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """sum over the shared variables of a * b, clamped to [0, 1], and the variables kept (in order)."""
    out, _, _ = _plan(a_vars, b_vars)
    kept = tuple(v for v in out if not (v in a_vars and v in b_vars))
    letters = {v: chr(ord("a") + i) for i, v in enumerate(out)}
    spec = "".join(letters[v] for v in a_vars) + "," + "".join(letters[v] for v in b_vars)
    data = torch.einsum(spec + "->" + "".join(letters[v] for v in kept), a_data, b_data)
    return data.clamp(0, 1), kept


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) or (isinstance(x, torch.Tensor) and x.dim() == 0)


class ProbabilisticTensor:
    """Soft truth values (kind "prob", in [0, 1]) or soft numbers (kind "number") over named object variables."""

    __slots__ = ("data", "vars", "semantics", "kind", "__weakref__")

    def __init__(
        self,
        data: torch.Tensor | Sequence | float,
        vars: Sequence[str] | None = None,  # noqa: A002 - the spec's name
        semantics: Semantics | None = None,
        kind: str = "prob",
    ) -> None:
        """Wrap `data` (one axis per variable); vars default to (), ("x",), ("x","y") by dimension."""
        if not isinstance(data, torch.Tensor):
            data = torch.as_tensor(data, dtype=torch.get_default_dtype())
        if not data.is_floating_point():
            data = data.to(torch.get_default_dtype())
        if vars is None:
            if data.dim() > len(_DEFAULT_VARS):
                raise ValueError(f"a {data.dim()}-d tensor needs explicit vars (defaults go up to 4-d)")
            vars = _DEFAULT_VARS[: data.dim()]
        vars = _check_names(vars, data.dim())
        if len(set(vars)) != len(vars):
            raise ValueError(f"vars must be distinct, got {vars}")
        if kind not in KINDS:
            raise ValueError(f"kind must be 'prob' or 'number', got {kind!r}")
        if semantics is not None and not isinstance(semantics, Semantics):
            raise TypeError(f"semantics must be a Semantics, got {type(semantics).__name__}")
        if data.numel():
            low, high = (float(v) for v in torch.aminmax(data.detach()))  # one pass; NaN propagates to both
            if low != low or high != high:
                raise ValueError("data contains NaN")
            if kind == "prob" and (low < 0 or high > 1):
                raise ValueError(f"kind 'prob' needs values in [0, 1], got min {low} max {high}")
        self.data = data
        self.vars = vars
        self.semantics = semantics if semantics is not None else _DEFAULT_SEMANTICS
        self.kind = kind

    @classmethod
    def _make(cls, data: torch.Tensor, vars_: tuple[str, ...], semantics: Semantics, kind: str) -> ProbabilisticTensor:
        """Internal constructor without validation (inputs come from checked tensors)."""
        out = object.__new__(cls)
        out.data = data
        out.vars = vars_
        out.semantics = semantics
        out.kind = kind
        return out

    @property
    def shape(self) -> tuple[int, ...]:
        """Objects per variable (a lazy relation answers without evaluating anything)."""
        return tuple(self.data.shape)

    # ----- helpers -------------------------------------------------------------------
    def _lift(self, other: Operand, what: str) -> ProbabilisticTensor:
        """`other` as a ProbabilisticTensor (python numbers become 0-d tensors)."""
        if isinstance(other, ProbabilisticTensor):
            return other
        if _is_number(other):
            value = torch.as_tensor(other, dtype=self.data.dtype, device=self.data.device)
            return ProbabilisticTensor._make(value, (), self.semantics, "number")
        raise TypeError(f"{what}: expected a ProbabilisticTensor or a number, got {type(other).__name__}")

    def _logic_operand(self, other: Operand, what: str) -> ProbabilisticTensor:
        if isinstance(other, ProbabilisticTensor):
            other._require_prob(what)
            return other
        if _is_number(other):
            value_f = float(other.detach()) if isinstance(other, torch.Tensor) else float(other)
            if not 0 <= value_f <= 1:
                raise ValueError(f"{what}: a number used as a truth value must be in [0, 1], got {value_f}")
            value = torch.as_tensor(other, dtype=self.data.dtype, device=self.data.device)
            return ProbabilisticTensor._make(value, (), self.semantics, "prob")
        raise TypeError(f"{what}: expected a ProbabilisticTensor or a number in [0, 1], got {type(other).__name__}")

    def _require_prob(self, what: str) -> None:
        if self.kind != "prob":
            raise TypeError(f"{what} needs probabilities, got a soft number; compare it first (e.g. count(a) > 0)")

    def _binary(self, other: ProbabilisticTensor, fn, kind: str, reverse: bool = False) -> ProbabilisticTensor:
        a, b = (other, self) if reverse else (self, other)
        if a.vars == b.vars:
            if a.data.shape != b.data.shape:
                _check_sizes(a, b)
            return ProbabilisticTensor._make(fn(a.data, b.data), a.vars, self.semantics, kind)
        _check_sizes(a, b)
        out, plan_a, plan_b = _plan(a.vars, b.vars)
        n = len(out)
        data = fn(_expand(a.data, plan_a, n), _expand(b.data, plan_b, n))
        return ProbabilisticTensor._make(data, out, self.semantics, kind)

    def _logic(self, other: Operand, which: str, reverse: bool = False) -> ProbabilisticTensor:
        self._require_prob(which)
        fn = getattr(TNORMS[self.semantics.tnorm], which)
        return self._binary(self._logic_operand(other, which), fn, "prob", reverse)

    def _dims(self, var: str | Sequence[str] | None, what: str) -> tuple[int, ...]:
        if var is None:
            return tuple(range(len(self.vars)))
        if isinstance(var, str):
            names: tuple = (var,)
        elif isinstance(var, (tuple, list)):
            names = tuple(var)
        else:
            raise TypeError(f"{what}: a variable name must be a string, got {type(var).__name__}")
        dims = []
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"{what}: a variable name must be a string, got {type(name).__name__}")
            if name not in self.vars:
                raise ValueError(f"{what}: unknown variable {name!r}; this tensor has variables {self.vars}")
            dims.append(self.vars.index(name))
        return tuple(dims)

    def _reduce(self, var: str | Sequence[str] | None, fn, what: str, kind: str) -> ProbabilisticTensor:
        dims = self._dims(var, what)
        if not dims:
            return ProbabilisticTensor._make(self.data, self.vars, self.semantics, kind)
        kept = tuple(v for i, v in enumerate(self.vars) if i not in dims)
        return ProbabilisticTensor._make(fn(self.data, dims), kept, self.semantics, kind)

    def _scalar(self, what: str) -> float:
        if self.data.dim() != 0:
            raise TypeError(
                f"{what} of a ProbabilisticTensor over variables {self.vars} is ambiguous: use .exists() or index it"
            )
        return float(self.data.detach())

    # ----- renaming ------------------------------------------------------------------
    def __call__(self, *names: str) -> ProbabilisticTensor:
        """Same values with new variable names, one per axis; a repeated name takes the diagonal (r("x","x"))."""
        names = _check_names(names, self.data.dim())
        if len(set(names)) == len(names):
            return ProbabilisticTensor._make(self.data, names, self.semantics, self.kind)
        letters = {v: chr(ord("a") + i) for i, v in enumerate(dict.fromkeys(names))}
        spec = "".join(letters[v] for v in names) + "->" + "".join(letters.values())
        return ProbabilisticTensor._make(torch.einsum(spec, self.data), tuple(letters), self.semantics, self.kind)

    # ----- logic ---------------------------------------------------------------------
    def __and__(self, other: Operand) -> ProbabilisticTensor:
        """a & b: min(a, b) (product t-norm: a*b), aligned by variable name."""
        return self._logic(other, "and_")

    def __rand__(self, other: Operand) -> ProbabilisticTensor:
        return self._logic(other, "and_", reverse=True)

    def __or__(self, other: Operand) -> ProbabilisticTensor:
        """a | b: max(a, b) (product t-norm: a + b - a*b), aligned by variable name."""
        return self._logic(other, "or_")

    def __ror__(self, other: Operand) -> ProbabilisticTensor:
        return self._logic(other, "or_", reverse=True)

    def __invert__(self) -> ProbabilisticTensor:
        """~a: 1 - a."""
        self._require_prob("not")
        return ProbabilisticTensor._make(1 - self.data, self.vars, self.semantics, "prob")

    def implies(self, other: Operand) -> ProbabilisticTensor:
        """a.implies(b): max(1 - a, b) (product t-norm: 1 - a + a*b), aligned by variable name."""
        return self._logic(other, "implies")

    # ----- quantifiers and reductions ------------------------------------------------
    def exists(self, var: str | Sequence[str] | None = None) -> ProbabilisticTensor:
        """Max over `var` (all variables if None); product quantifier: 1 - prod(1 - a)."""
        self._require_prob("exists")
        return self._reduce(var, QUANTIFIERS[self.semantics.quantifier].exists, "exists", "prob")

    def forall(self, var: str | Sequence[str] | None = None) -> ProbabilisticTensor:
        """Min over `var` (all variables if None); product quantifier: prod(a)."""
        self._require_prob("forall")
        return self._reduce(var, QUANTIFIERS[self.semantics.quantifier].forall, "forall", "prob")

    def count(self, var: str | Sequence[str] | None = None) -> ProbabilisticTensor:
        """Soft count: sum over `var` (all variables if None); a soft number (kind "number")."""
        return self._reduce(var, torch.sum, "count", "number")

    def iota(self, var: str | None = None) -> ProbabilisticTensor:
        """Distribution over `var` picking "the" object: min-max normalised to sum 1, or softmax(logit(a) / iota_temperature)."""
        if var is None:
            if len(self.vars) != 1:
                raise ValueError(
                    f"iota() is ambiguous on a tensor over variables {self.vars}: name one, e.g. .iota({(self.vars or ('x',))[0]!r})"
                )
            var = self.vars[0]
        if not isinstance(var, str):
            raise TypeError(f"iota: the variable must be one name (a string), got {type(var).__name__}")
        (dim,) = self._dims(var, "iota")
        if self.data.shape[dim] == 0:
            raise ValueError(f"iota over variable {var!r} with no objects")
        sem = self.semantics
        data = IOTAS[sem.iota](self.data, dim, sem.iota_temperature)
        return ProbabilisticTensor._make(data, self.vars, sem, "prob")

    def contract(self, other: ProbabilisticTensor) -> ProbabilisticTensor:
        """Sum over the variables shared with `other` of a*b, clamped to [0, 1]: r.contract(t.iota()("y")) -> r_x = sum_y t_y r_xy."""
        if not isinstance(other, ProbabilisticTensor):
            raise TypeError(f"contract: expected a ProbabilisticTensor, got {type(other).__name__}")
        as_right = getattr(other, "contract_as_right", None)  # a lazy relation evaluates only what it needs
        if as_right is not None:
            return as_right(self)
        _check_sizes(self, other)
        data, kept = contract_data(self.vars, self.data, other.vars, other.data)
        return ProbabilisticTensor._make(data, kept, self.semantics, "prob")

    # ----- soft numbers --------------------------------------------------------------
    def _compare(self, other: Operand, what: str, reverse: bool, shift: float, fn) -> ProbabilisticTensor:
        sem = self.semantics
        if fn is _soft_gt and self.kind == "prob" and getattr(other, "kind", "prob") == "prob":
            # a probability against a threshold (or another probability): p > t, not a count comparison
            other = self._lift(other, what)
            return self._binary(other, lambda a, b: _threshold_gt(a, b, sem), "prob", reverse)
        other = self._lift(other, what)
        return self._binary(other, lambda a, b: fn(a, b, sem, shift), "prob", reverse)

    def __eq__(self, other: Operand) -> ProbabilisticTensor:  # type: ignore[override]
        """s1 == s2: sigmoid(tau * (gamma - |s1 - s2|) / gamma)."""
        return self._compare(other, "==", False, 0.0, _soft_eq)

    def __ne__(self, other: Operand) -> ProbabilisticTensor:  # type: ignore[override]
        """s1 != s2: 1 - (s1 == s2)."""
        return self._compare(other, "!=", False, 0.0, _soft_ne)

    def __gt__(self, other: Operand) -> ProbabilisticTensor:
        """s1 > s2 for numbers (counts): sigmoid(tau * (s1 - s2 - 1 + gamma)); for a probability p > t: sigmoid(k * (p - t))."""
        return self._compare(other, ">", False, 0.0, _soft_gt)

    def __lt__(self, other: Operand) -> ProbabilisticTensor:
        """s1 < s2: s2 > s1."""
        return self._compare(other, "<", True, 0.0, _soft_gt)

    def __ge__(self, other: Operand) -> ProbabilisticTensor:
        """s1 >= s2: s1 > s2 - 1."""
        return self._compare(other, ">=", False, 1.0, _soft_gt)

    def __le__(self, other: Operand) -> ProbabilisticTensor:
        """s1 <= s2: s2 >= s1."""
        return self._compare(other, "<=", True, 1.0, _soft_gt)

    __hash__ = object.__hash__

    def __add__(self, other: Operand) -> ProbabilisticTensor:
        """s1 + s2: a soft number."""
        return self._binary(self._lift(other, "+"), torch.add, "number")

    def __radd__(self, other: Operand) -> ProbabilisticTensor:
        return self._binary(self._lift(other, "+"), torch.add, "number", reverse=True)

    def __sub__(self, other: Operand) -> ProbabilisticTensor:
        """s1 - s2: a soft number."""
        return self._binary(self._lift(other, "-"), torch.sub, "number")

    def __rsub__(self, other: Operand) -> ProbabilisticTensor:
        return self._binary(self._lift(other, "-"), torch.sub, "number", reverse=True)

    # ----- python interop ------------------------------------------------------------
    def __getitem__(self, index: int | tuple[int, ...]) -> ProbabilisticTensor:
        """t[i]: the values at object i of the first variable (that variable is dropped)."""
        indices = index if isinstance(index, tuple) else (index,)
        if len(indices) > len(self.vars):
            raise IndexError(f"{len(indices)} indices for a tensor over variables {self.vars}")
        clean = []
        for d, i in enumerate(indices):
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise TypeError(f"index a ProbabilisticTensor with ints, got {type(i).__name__}")
            size = self.data.shape[d]
            if not -size <= int(i) < size:
                raise IndexError(f"index {int(i)} out of range for variable {self.vars[d]!r} with {size} objects")
            clean.append(int(i))
        return ProbabilisticTensor._make(self.data[tuple(clean)], self.vars[len(clean) :], self.semantics, self.kind)

    def __len__(self) -> int:
        """Number of objects along the first variable."""
        if not self.vars:
            raise TypeError("len() of a 0-d ProbabilisticTensor")
        return self.data.shape[0]

    def __iter__(self) -> Iterator[ProbabilisticTensor]:
        """Iterate over the first variable."""
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        """True when the (0-d) value is > 0.5."""
        return self._scalar("bool()") > 0.5

    def __float__(self) -> float:
        return self._scalar("float()")

    def __int__(self) -> int:
        return int(round(self._scalar("int()")))

    def __round__(self, ndigits: int | None = None) -> int | float:
        return round(self._scalar("round()"), ndigits)

    def __format__(self, spec: str) -> str:
        if self.data.dim() == 0:
            return format(float(self.data.detach()), spec)
        return format(repr(self), spec)

    def item(self) -> float:
        """The value of a 0-d tensor as a float."""
        return self._scalar("item()")

    def argmax(self) -> int:
        """Index of the largest value of a 1-d tensor."""
        if self.data.dim() != 1:
            raise TypeError(f"argmax() needs a tensor over one variable, got variables {self.vars}: reduce it first")
        if self.data.shape[0] == 0:
            raise ValueError("argmax() of a tensor with no objects")
        return int(torch.argmax(self.data))

    def tolist(self) -> float | list:
        """The values as (nested) python floats."""
        return self.data.detach().cpu().tolist()

    def __repr__(self) -> str:
        values: object
        if self.data.numel() <= _REPR_LIMIT:
            values = torch.round(self.data.detach().cpu().double(), decimals=4).tolist()
        else:
            values = f"<shape {tuple(self.data.shape)}>"
        return f"ProbabilisticTensor({values}, vars={self.vars}, kind={self.kind!r})"


def _soft_eq(a: torch.Tensor, b: torch.Tensor, sem: Semantics, shift: float) -> torch.Tensor:
    return torch.sigmoid(sem.tau * (sem.gamma - torch.abs(a - b)) / sem.gamma)


def _soft_ne(a: torch.Tensor, b: torch.Tensor, sem: Semantics, shift: float) -> torch.Tensor:
    return 1 - _soft_eq(a, b, sem, shift)


def _soft_gt(a: torch.Tensor, b: torch.Tensor, sem: Semantics, shift: float) -> torch.Tensor:
    return torch.sigmoid(sem.tau * (a - b + (shift - 1 + sem.gamma)))


def _threshold_gt(a: torch.Tensor, b: torch.Tensor, sem: Semantics) -> torch.Tensor:
    return torch.sigmoid(sem.threshold_sharpness * (a - b))


def _check_names(names: Sequence[str], ndim: int) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"variable names must be non-empty strings, got {name!r}")
    if len(names) != ndim:
        raise ValueError(f"expected {ndim} variable names (one per axis), got {len(names)}: {names}")
    return names
