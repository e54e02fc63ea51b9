"""What a program may touch: the builtins, the attribute whitelist per type, and the
size-guarded methods the interpreter uses (guarded operators: ``operators.py``).

To allow a new builtin, add it to :data:`SAFE_BUILTIN_NAMES` and :func:`make_builtins`
(guard anything that can allocate or walk its argument, see ``operators.py``). To allow a new
method, add its name to :data:`TYPE_METHODS`; methods that can grow a container or string
also need an entry in :data:`_GROWTH` so that the result size is checked before the call, and
methods that compare or hash elements one in :data:`_WALKING`.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable
from typing import Any

from neptune_core.executor.guards import Budget, SandboxViolation
from neptune_core.executor.operators import (
    _MISSING,
    add_exception_guards,
    check_stringify,
    guard_elements,
    guarded_extreme,
    guarded_sorted,
    guarded_sum,
    materialise,
)
from neptune_core.primitives import PRIMITIVE_NAMES as _PRIMITIVES
from probabilistic_tensor import PROGRAM_API, PROGRAM_METHODS, ProbabilisticTensor

PRIMITIVE_NAMES: tuple[str, ...] = (*_PRIMITIVES, "n")

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


def _growth_extend(budget: Budget, obj: Any, args: tuple) -> tuple:
    if len(args) != 1:
        return args
    items = materialise(budget, args[0], "extend() argument")
    budget.check_size(len(obj) + len(items), "the extended list")
    return (items,)


def _growth_update(budget: Budget, obj: Any, args: tuple) -> tuple:
    new = tuple(dict(a) if isinstance(a, dict) else materialise(budget, a, "update()/union() argument") for a in args)
    budget.check_size(len(obj) + sum(len(a) for a in new), "the resulting set/dict")
    return new


def _growth_join(budget: Budget, obj: str, args: tuple) -> tuple:
    if len(args) != 1:
        return args
    items = materialise(budget, args[0], "join() argument")
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
_WALKED_ARGS = (list, tuple, set, frozenset, dict, ProbabilisticTensor)
# methods of containers that compare or hash the elements of their receiver and arguments
_WALKING: frozenset[str] = frozenset(
    "index count remove union update intersection difference symmetric_difference issubset issuperset "
    "isdisjoint".split()
)


class BoundMethod:
    """A whitelisted method of a program value, with its size guard."""

    __slots__ = ("obj", "name", "func", "budget")

    def __init__(self, obj: Any, name: str, func: Callable, budget: Budget) -> None:
        self.obj, self.name, self.func, self.budget = obj, name, func, budget

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj = self.obj
        if not isinstance(obj, ProbabilisticTensor):
            growth = _GROWTH.get(self.name)
            if growth is not None:
                args = growth(self.budget, obj, args)
            if type(obj) is not str and self.name in _WALKING and any(isinstance(a, _WALKED_ARGS) for a in args):
                guard_elements(self.budget, (obj, *args), f".{self.name}()")
            if self.name == "sort" and type(obj) is list:
                if args:
                    raise TypeError("sort() takes no positional arguments")
                obj[:] = guarded_sorted(self.budget, obj, **kwargs)
                return None
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
        return guarded_sum(budget, iterable, start)

    def sorted_(iterable: Any, *, key: Any = None, reverse: bool = False) -> list:
        return guarded_sorted(budget, iterable, key, reverse)

    def min_(*args: Any, key: Any = None, default: Any = _MISSING) -> Any:
        return guarded_extreme(budget, "min", min, args, key, default)

    def max_(*args: Any, key: Any = None, default: Any = _MISSING) -> Any:
        return guarded_extreme(budget, "max", max, args, key, default)

    def print_(*args: Any, sep: str | None = " ", end: str | None = "\n") -> None:
        if sep is None:
            sep = " "
        if not isinstance(sep, str) or not (end is None or isinstance(end, str)):
            raise TypeError("print() sep and end must be None or strings")
        pieces: list[str] = []
        length = 0
        for a in args:
            check_stringify(budget, a, "print() argument")
            pieces.append(str(a))
            length += len(pieces[-1]) + len(sep)
            if length > _PRINT_CHARS:
                break
        if len(printed) < 100:
            printed.append(sep[:_PRINT_CHARS].join(pieces)[:_PRINT_CHARS])

    table = dict(_shared_builtins())
    table.update(min=min_, max=max_, sorted=sorted_, range=range_, sum=sum_, print=print_)
    return table


# the builtins that are harmless as they are (make_builtins wraps the others, per run)
_PLAIN_BUILTINS = {
    "len": len, "set": set, "list": list, "dict": dict, "tuple": tuple, "abs": abs, "any": any, "all": all,
    "enumerate": enumerate, "zip": zip, "int": int, "float": float, "str": str, "bool": bool, "round": round,
    "reversed": reversed, "isinstance": isinstance,
}  # fmt: skip


@functools.cache
def _shared_builtins() -> dict[str, Any]:
    """What every run's builtins share (make_builtins copies it): the plain builtins, the exception
    classes and the algebra's API."""
    table: dict[str, Any] = dict(_PLAIN_BUILTINS)
    table.update((name, getattr(builtins, name)) for name in EXCEPTION_NAMES)
    table.update(PROGRAM_API)
    return table


_PRINT_CHARS = 1000  # kept per print() line

# builtins whose result is a new container/string: counted against the allocation budget
ALLOCATING_CALLS: frozenset[type] = frozenset({list, tuple, set, dict})
EXCEPTION_CLASSES: tuple[type, ...] = tuple(getattr(builtins, n) for n in EXCEPTION_NAMES)
add_exception_guards(EXCEPTION_CLASSES)
