"""Size-guarded operators and element walks: what the interpreter checks before handing a value
to a C-level operation it cannot interrupt.

A single C call (a comparison, a hash, a sort, ``repr``, ``round``, a tensor broadcast) runs to
its end without returning to the interpreter, so the operation budget and the time limit cannot
stop it. Each such call is refused beforehand when the work or the result would be too large:
containers are walked with shared parts counted every time they occur (``a = [a, a]`` repeated
is exponentially large to compare), tensors reached inside containers are checked for the size
of their broadcast, and integers for their bit length. What slips through is still bounded by
the sandbox process's OS limits and the parent's watchdog (neptune_core/executor/process.py).
"""

from __future__ import annotations

import math
import operator
import re
import types
from collections.abc import Callable, Iterable
from typing import Any

from neptune_core.executor.guards import Budget, SandboxViolation, SizeLimitError, deep_size
from probabilistic_tensor import ProbabilisticTensor

_SEQ = (str, list, tuple)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_WALKED = (list, tuple, set, frozenset, dict, ProbabilisticTensor, BaseException)
_SPEC_NUMBER = re.compile(r"\d+")
MAX_ROUND_DIGITS = 1000


def check_stringify(budget: Budget, value: Any, what: str) -> None:
    """Refuse turning a huge (or hugely aliased) value into a string."""
    budget.check_size(deep_size(value, budget.max_sequence_length), what)


def check_format_spec(budget: Budget, spec: str) -> None:
    for m in _SPEC_NUMBER.finditer(spec):
        if len(m.group()) > 9 or int(m.group()) > budget.max_sequence_length:
            raise SizeLimitError(f"format width/precision {m.group()} is larger than executor.max_sequence_length")


def _check_vars(budget: Budget, sizes: dict[str, int], what: str, allocate: bool) -> None:
    total = 1
    for s in sizes.values():
        total *= s
    budget.check_size(total, f"{what} over variables {tuple(sizes)}", allocate=allocate)


def check_pt_size(budget: Budget, operands: list[Any]) -> None:
    """Refuse an algebra operation whose aligned result would be too large."""
    sizes: dict[str, int] = {}
    for t in operands:
        if isinstance(t, ProbabilisticTensor):
            sizes.update(zip(t.vars, (int(s) for s in t.shape), strict=False))  # a lazy relation stays lazy
    _check_vars(budget, sizes, "a tensor", allocate=True)


def guard_elements(budget: Budget, values: Iterable[Any], what: str) -> None:
    """Before a C-level walk over ``values`` (comparing, hashing, sorting, searching them):
    refuse when the walk would visit too many elements or broadcast tensors too large."""
    for v in values:
        if isinstance(v, _WALKED):
            break
    else:
        return  # flat scalars: each comparison or hash is cheap
    sizes: dict[str, int] = {}
    limit = budget.max_sequence_length
    total = deep_size(values if isinstance(values, (list, tuple)) else list(values), limit, sizes)
    if total > limit:
        raise SizeLimitError(
            f"{what} would walk more than {limit} elements (shared parts counted each time they occur; "
            "executor.max_sequence_length)"
        )
    if len(sizes) > 1:
        _check_vars(budget, sizes, f"{what}: comparing tensors", allocate=False)


def guard_new_tuple(budget: Budget, value: tuple) -> tuple:
    """A tuple holding containers must stay small to hash and compare (tuples do not cache hashes)."""
    for v in value:
        if isinstance(v, _CONTAINERS):
            guard_elements(budget, value, "a tuple")
            break
    return value


def _repeat_size(budget: Budget, seq: Any, times: int) -> None:
    if times > 0:
        per = deep_size(seq, budget.max_sequence_length) if isinstance(seq, (list, tuple)) else len(seq)
        budget.check_size(per * times, "sequence repetition")


_UNIONS = (operator.or_, operator.ior, operator.xor, operator.ixor)
_SUBSETS = (operator.and_, operator.iand, operator.sub, operator.isub)


def binary_op(budget: Budget, op: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    """Apply ``op`` after refusing results that would be too large."""
    if op in (operator.mul, operator.imul):
        if isinstance(a, _SEQ) and isinstance(b, int):
            _repeat_size(budget, a, b)
        elif isinstance(b, _SEQ) and isinstance(a, int):
            _repeat_size(budget, b, a)
        elif type(a) is int and type(b) is int:
            budget.check_int(a.bit_length() + b.bit_length(), "a product")
    elif op in (operator.add, operator.iadd) and isinstance(a, _SEQ) and isinstance(b, _SEQ):
        budget.check_size(len(a) + len(b), "concatenation")
        if type(a) is tuple and type(b) is tuple and any(isinstance(v, _CONTAINERS) for v in a + b):
            guard_elements(budget, (a, b), "a tuple")
    elif op in (operator.pow, operator.ipow) and isinstance(a, int) and isinstance(b, int) and b > 0:
        if abs(a) > 1:
            budget.check_int(b * abs(a).bit_length(), "a power")
    elif op in (operator.mod, operator.imod) and isinstance(a, str):
        raise SandboxViolation("%-formatting of strings is not supported; use an f-string")
    elif isinstance(a, (set, frozenset, dict)) and isinstance(b, (set, frozenset, dict)):
        if op in _UNIONS:
            budget.check_size(len(a) + len(b), "a set/dict union")
        elif op in _SUBSETS:
            budget.check_size(len(a), "a set difference/intersection")
    if isinstance(a, ProbabilisticTensor) and isinstance(b, ProbabilisticTensor):
        check_pt_size(budget, [a, b])
    return op(a, b)


# ---- builtins that walk their arguments ----------------------------------------------------
def materialise(budget: Budget, values: Any, what: str) -> list:
    items = list(values)
    budget.check_size(len(items), what)
    return items


def guarded_sorted(budget: Budget, iterable: Any, key: Any = None, reverse: bool = False) -> list:
    """``sorted``, with the keys checked before C compares them (each key computed once, as sorted does)."""
    items = materialise(budget, iterable, "sorted() argument")
    if key is None:
        guard_elements(budget, items, "sorting")
        return sorted(items, reverse=reverse)
    keys = [key(x) for x in items]
    guard_elements(budget, keys, "sorting")
    order = sorted(range(len(items)), key=keys.__getitem__, reverse=reverse)
    return [items[i] for i in order]


_MISSING = object()


def guarded_extreme(budget: Budget, name: str, pick: Callable, args: tuple, key: Any, default: Any) -> Any:
    """``min`` / ``max`` with the compared values checked first; same result as the builtin."""
    if not args:
        raise TypeError(f"{name} expected at least 1 argument, got 0")
    if len(args) == 1:
        items = materialise(budget, args[0], f"{name}() argument")
    elif default is not _MISSING:
        raise TypeError(f"Cannot specify a default for {name}() with multiple positional arguments")
    else:
        items = list(args)
    keys = items if key is None else [key(x) for x in items]
    guard_elements(budget, keys, f"{name}()")
    if not items:
        if default is _MISSING:
            raise ValueError(f"{name}() arg is an empty sequence")
        return default
    return items[pick(range(len(items)), key=keys.__getitem__)]


def guarded_sum(budget: Budget, iterable: Any, start: Any = 0) -> Any:
    if isinstance(start, bool) or not isinstance(start, (int, float, ProbabilisticTensor)):
        raise TypeError("sum() adds numbers or tensors only; build lists with comprehensions instead")
    total = start
    for x in iterable:
        total = binary_op(budget, operator.add, total, x)
    return total


# ---- checks before calling a builtin type or function (keyed by the callable) ---------------
def _pre_int(budget: Budget, args: list, kwargs: dict) -> list:
    if args and isinstance(args[0], str):
        base = args[1] if len(args) > 1 else kwargs.get("base", 10)
        bits_per_char = math.log2(base) if isinstance(base, int) and base >= 2 else 4.0
        budget.check_int(int(len(args[0].strip()) * bits_per_char), f"int() of a {len(args[0])}-character string")
    return args


def _pre_round(budget: Budget, args: list, kwargs: dict) -> list:
    digits = args[1] if len(args) > 1 else kwargs.get("ndigits")
    if isinstance(digits, int) and abs(digits) > MAX_ROUND_DIGITS:
        raise SizeLimitError(f"round() ndigits {digits} is out of range; use -{MAX_ROUND_DIGITS}..{MAX_ROUND_DIGITS}")
    return args


def _is_classinfo(c: Any) -> bool:
    return isinstance(c, (type, types.UnionType))


def _pre_isinstance(budget: Budget, args: list, kwargs: dict) -> list:
    if len(args) == 2 and isinstance(args[1], tuple):
        if len(args[1]) > 64 or not all(_is_classinfo(c) for c in args[1]):
            raise TypeError("isinstance() takes a type or a flat tuple of (at most 64) types")
    return args


def _pre_hashing(kind: str) -> Callable[[Budget, list, dict], list]:
    def pre(budget: Budget, args: list, kwargs: dict) -> list:
        if args and not isinstance(args[0], (str, range, set, frozenset, dict)):
            args = [materialise(budget, args[0], f"{kind}() argument"), *args[1:]]
            guard_elements(budget, args[0], f"{kind}()")
        return args

    return pre


def _pre_exception(budget: Budget, args: list, kwargs: dict) -> list:
    check_stringify(budget, args, "an exception message")
    return args


def _pre_str(budget: Budget, args: list, kwargs: dict) -> list:
    if args:
        check_stringify(budget, args[0], "str()")
    return args


PRE_CALL: dict[Any, Callable[[Budget, list, dict], list]] = {
    int: _pre_int,
    round: _pre_round,
    isinstance: _pre_isinstance,
    set: _pre_hashing("set"),
    dict: _pre_hashing("dict"),
    tuple: _pre_hashing("tuple"),
    str: _pre_str,
}


def add_exception_guards(classes: Iterable[type]) -> None:
    for cls in classes:
        PRE_CALL[cls] = _pre_exception
