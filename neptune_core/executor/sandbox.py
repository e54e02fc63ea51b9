"""What a program may touch: the builtins, the attribute whitelist per type, and the
size-guarded operators and methods the interpreter uses.

To allow a new builtin, add it to :data:`SAFE_BUILTIN_NAMES` and :func:`make_builtins`
(guard anything that can allocate). To allow a new method, add its name to
:data:`TYPE_METHODS`; methods that can grow a container or string also need an entry
in :data:`_GROWTH` so that the result size is checked before the call.
"""

from __future__ import annotations

import builtins
import operator
import re
from collections.abc import Callable
from typing import Any

from neptune_core.executor.guards import Budget, SandboxViolation, SizeLimitError, deep_size
from probabilistic_tensor import PROGRAM_API, PROGRAM_METHODS, ProbabilisticTensor

PRIMITIVE_NAMES: tuple[str, ...] = ("score", "query", "n")

SAFE_BUILTIN_NAMES: tuple[str, ...] = (
    "len", "range", "set", "list", "dict", "tuple", "min", "max", "sum", "sorted", "abs", "any", "all",
    "enumerate", "zip", "int", "float", "str", "bool", "round", "reversed", "isinstance", "print",
)  # fmt: skip

EXCEPTION_NAMES: tuple[str, ...] = (
    "Exception", "ValueError", "TypeError", "KeyError", "IndexError", "ZeroDivisionError",
    "AssertionError", "RuntimeError",
)  # fmt: skip

# Names that exist in Python but not in programs; the checker names them specifically.
FORBIDDEN_NAMES: frozenset[str] = frozenset(
    "eval exec compile open getattr setattr delattr hasattr globals locals vars dir type object "
    "__import__ input breakpoint help memoryview bytearray bytes super classmethod staticmethod "
    "property iter next id hash callable format repr ascii chr ord pow divmod issubclass exit quit "
    "map filter frozenset slice BaseException SystemExit KeyboardInterrupt GeneratorExit".split()
)

PT_ATTRIBUTES: frozenset[str] = frozenset(PROGRAM_METHODS) | {"vars", "kind"}

TYPE_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        "lower upper strip lstrip rstrip split rsplit splitlines startswith endswith find rfind index "
        "count isdigit isalpha isalnum isspace islower isupper title capitalize replace join partition "
        "rpartition".split()
    ),
    list: frozenset("append extend insert pop remove index count sort reverse copy".split()),
    dict: frozenset("get keys values items pop setdefault update copy".split()),
    set: frozenset(
        "add remove discard pop union intersection difference symmetric_difference update issubset "
        "issuperset isdisjoint copy".split()
    ),
    tuple: frozenset({"count", "index"}),
}

ALLOWED_ATTRIBUTES: frozenset[str] = PT_ATTRIBUTES.union(*TYPE_METHODS.values())


def _materialise(budget: Budget, values: Any, what: str) -> list:
    items = list(values)
    budget.check_size(len(items), what)
    return items


def _growth_extend(budget: Budget, obj: Any, args: tuple) -> tuple:
    if len(args) != 1:
        return args
    items = _materialise(budget, args[0], "extend() argument")
    budget.check_size(len(obj) + len(items), "the extended list")
    return (items,)


def _growth_update(budget: Budget, obj: Any, args: tuple) -> tuple:
    new = tuple(dict(a) if isinstance(a, dict) else _materialise(budget, a, "update()/union() argument") for a in args)
    budget.check_size(len(obj) + sum(len(a) for a in new), "the resulting set/dict")
    return new


def _growth_join(budget: Budget, obj: str, args: tuple) -> tuple:
    if len(args) != 1:
        return args
    items = _materialise(budget, args[0], "join() argument")
    total = sum(len(s) if isinstance(s, str) else 0 for s in items) + len(obj) * max(len(items) - 1, 0)
    budget.check_size(total, "the joined string")
    return (items,)


def _growth_replace(budget: Budget, obj: str, args: tuple) -> tuple:
    if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        hits = obj.count(args[0]) if args[0] else len(obj) + 1
        if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
            hits = min(hits, args[2])
        budget.check_size(len(obj) + hits * (len(args[1]) - len(args[0])), "the replaced string")
    return args


def _growth_copy(budget: Budget, obj: Any, args: tuple) -> tuple:
    budget.allocate(len(obj), "copy()")
    return args


_GROWTH: dict[str, Callable[[Budget, Any, tuple], tuple]] = {
    "extend": _growth_extend,
    "update": _growth_update,
    "union": _growth_update,
    "symmetric_difference": _growth_update,
    "join": _growth_join,
    "replace": _growth_replace,
    "copy": _growth_copy,
}


class BoundMethod:
    """A whitelisted method of a program value, with its size guard."""

    __slots__ = ("obj", "name", "func", "budget")

    def __init__(self, obj: Any, name: str, func: Callable, budget: Budget) -> None:
        self.obj, self.name, self.func, self.budget = obj, name, func, budget

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        growth = _GROWTH.get(self.name) if not isinstance(self.obj, ProbabilisticTensor) else None
        if growth is not None:
            args = growth(self.budget, self.obj, args)
        result = self.func(*args, **kwargs)
        if isinstance(result, (list, tuple, set, dict, str)) and result is not self.obj:
            self.budget.check_size(len(result), f"the result of .{self.name}()")
        return result

    def __repr__(self) -> str:
        return f"<method {type(self.obj).__name__}.{self.name}>"


def get_attribute(obj: Any, name: str, budget: Budget) -> Any:
    """``obj.name`` if the type of ``obj`` allows it, else SandboxViolation."""
    if name.startswith("_"):
        raise SandboxViolation(f"attribute '{name}' is not allowed (names starting with '_' are forbidden)")
    if isinstance(obj, ProbabilisticTensor):
        allowed = PT_ATTRIBUTES
    else:
        allowed = TYPE_METHODS.get(type(obj))
        if allowed is None:
            raise SandboxViolation(f"attribute access '.{name}' on {describe(obj)} is not allowed")
    if name not in allowed:
        raise SandboxViolation(
            f"'.{name}' is not an allowed attribute of {describe(obj)}; allowed: {', '.join(sorted(allowed))}"
        )
    value = getattr(obj, name)
    return BoundMethod(obj, name, value, budget) if callable(value) else value


def describe(obj: Any) -> str:
    if isinstance(obj, ProbabilisticTensor):
        return "a ProbabilisticTensor"
    if callable(obj):
        return f"the callable '{getattr(obj, '__name__', type(obj).__name__)}'"
    return f"a value of type {type(obj).__name__}"


# ---- guarded operators -------------------------------------------------------------------
_SEQ = (str, list, tuple)
_SPEC_NUMBER = re.compile(r"\d+")


def check_stringify(budget: Budget, value: Any, what: str) -> None:
    """Refuse turning a huge (or hugely aliased) value into a string."""
    budget.check_size(deep_size(value, budget.max_sequence_length), what)


def check_format_spec(budget: Budget, spec: str) -> None:
    for m in _SPEC_NUMBER.finditer(spec):
        if len(m.group()) > 9 or int(m.group()) > budget.max_sequence_length:
            raise SizeLimitError(f"format width/precision {m.group()} is larger than executor.max_sequence_length")


def check_pt_size(budget: Budget, operands: list[Any]) -> None:
    """Refuse an algebra operation whose aligned result would be too large."""
    sizes: dict[str, int] = {}
    for t in operands:
        if isinstance(t, ProbabilisticTensor):
            sizes.update(zip(t.vars, (int(s) for s in t.shape), strict=False))  # a lazy relation stays lazy
    total = 1
    for s in sizes.values():
        total *= s
    budget.check_size(total, f"a tensor over variables {tuple(sizes)}")


def _repeat_size(budget: Budget, seq: Any, times: int) -> None:
    if times > 0:
        per = deep_size(seq, budget.max_sequence_length) if isinstance(seq, (list, tuple)) else len(seq)
        budget.check_size(per * times, "sequence repetition")


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
    elif op is operator.pow and isinstance(a, int) and isinstance(b, int) and b > 0:
        if abs(a) > 1:
            budget.check_int(b * abs(a).bit_length(), "a power")
    elif op in (operator.mod, operator.imod) and isinstance(a, str):
        raise SandboxViolation("%-formatting of strings is not supported; use an f-string")
    if isinstance(a, ProbabilisticTensor) and isinstance(b, ProbabilisticTensor):
        check_pt_size(budget, [a, b])
    return op(a, b)


# ---- builtins ----------------------------------------------------------------------------
def make_builtins(budget: Budget, printed: list[str]) -> dict[str, Any]:
    """The builtins of one run: real ones where harmless, guarded wrappers elsewhere."""

    def range_(*args: int) -> range:
        r = range(*args)
        try:
            length = len(r)
        except OverflowError:
            length = budget.max_sequence_length + 1
        budget.check_size(length, f"range{args}", allocate=False)
        return r

    def sum_(iterable: Any, start: Any = 0) -> Any:
        if isinstance(start, bool) or not isinstance(start, (int, float, ProbabilisticTensor)):
            raise TypeError("sum() adds numbers or tensors only; build lists with comprehensions instead")
        return sum(iterable, start)

    def print_(*args: Any, sep: str = " ", end: str = "") -> None:
        for a in args:
            check_stringify(budget, a, "print() argument")
        if len(printed) < 100:
            printed.append(str(sep).join(str(a) for a in args)[:1000])

    table: dict[str, Any] = {
        "len": len, "set": set, "list": list, "dict": dict, "tuple": tuple, "min": min, "max": max,
        "sorted": sorted, "abs": abs, "any": any, "all": all, "enumerate": enumerate, "zip": zip,
        "int": int, "float": float, "str": str, "bool": bool, "round": round, "reversed": reversed,
        "isinstance": isinstance, "range": range_, "sum": sum_, "print": print_,
    }  # fmt: skip
    for name in EXCEPTION_NAMES:
        table[name] = getattr(builtins, name)
    table.update(PROGRAM_API)
    missing = set(SAFE_BUILTIN_NAMES) - set(table)
    assert not missing, missing
    return table


# builtins whose result is a new container/string: counted against the allocation budget
ALLOCATING_CALLS: frozenset[type] = frozenset({list, tuple, set, dict})
EXCEPTION_CLASSES: tuple[type, ...] = tuple(getattr(builtins, n) for n in EXCEPTION_NAMES)
