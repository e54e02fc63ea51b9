"""Runtime guards of the program sandbox: the limit errors, the per-run budget
(operations, program time, call depth, sizes) and the size checks that refuse an
allocation before it happens.

Errors deriving from :class:`SandboxAbort` end the run: a program's ``try/except``
never catches them (the interpreter re-raises them past every handler).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from neptune_core.config import ExecutorConfig
from probabilistic_tensor import ProbabilisticTensor

# Largest integer (in bits) that ** and * may produce; 10**1000 is ~3300 bits.
MAX_INT_BITS = 10_000
# Total elements all guarded allocations of one run may create, as a multiple of
# max_sequence_length (bounds memory even when each single allocation is small).
TOTAL_ALLOCATION_FACTOR = 20


class SandboxAbort(Exception):
    """Ends the run; a program cannot catch it."""


class ExecutionLimitError(SandboxAbort):
    """A resource limit of the sandbox was reached."""


class OperationLimitError(ExecutionLimitError):
    """The program evaluated more AST nodes than ``executor.max_operations``."""


class TimeLimitError(ExecutionLimitError):
    """The program's own time (not counting score/query calls) passed ``executor.time_limit_s``."""


class CallDepthError(ExecutionLimitError):
    """Function calls nested deeper than ``executor.max_call_depth``."""


class SizeLimitError(ExecutionLimitError):
    """A sequence, string, integer or tensor would have been too large."""


class PrimitiveLimitError(ExecutionLimitError):
    """The program made more primitive calls than ``executor.max_primitive_calls``."""


def call_limit_error(name: str, max_calls: int) -> PrimitiveLimitError:
    """The error of a program's call to ``name`` beyond ``executor.max_primitive_calls`` (the same on both sides of the pipe)."""
    return PrimitiveLimitError(
        f"{name}(): the program made more than {max_calls} primitive calls (executor.max_primitive_calls)"
    )


class ProgramTimeout(ExecutionLimitError):
    """The watchdog stopped the sandbox process: program time (or CPU time) ran far past the limit,
    for example inside one long C-level operation the interpreter cannot interrupt."""


class ProgramMemoryError(ExecutionLimitError):
    """The program ran out of memory (the sandbox's ``executor.memory_mb``, or the host's)."""


class SandboxViolation(SandboxAbort):
    """The program tried something the sandbox forbids (attribute, call, subscript)."""


class SandboxCrash(SandboxAbort):
    """The sandbox process died, or broke the protocol with the parent, while running the program."""


class AgentError(SandboxAbort):
    """The vision agent failed inside score() or query()."""


class Budget:
    """Per-run counters: evaluated nodes, program time, call depth and allocated elements."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.max_operations = int(config.max_operations)
        self.time_limit_s = float(config.time_limit_s)
        self.max_sequence_length = int(config.max_sequence_length)
        self.max_call_depth = int(config.max_call_depth)
        self.max_total_allocation = TOTAL_ALLOCATION_FACTOR * self.max_sequence_length
        self.operations = 0
        self.depth = 0
        self.allocated = 0
        self.primitive_seconds = 0.0
        self.start = time.perf_counter()

    # ---- operations and time ------------------------------------------------------
    def check(self) -> None:
        """Raise when the operation budget or the program-time deadline is exceeded."""
        if self.operations > self.max_operations:
            raise OperationLimitError(
                f"program exceeded the operation budget of {self.max_operations} evaluated nodes "
                "(executor.max_operations)"
            )
        if self.program_seconds() > self.time_limit_s:
            raise TimeLimitError(
                f"program ran longer than {self.time_limit_s:g} s of its own time (executor.time_limit_s)"
            )

    def program_seconds(self) -> float:
        """Seconds since the start, minus the time spent inside score/query."""
        return time.perf_counter() - self.start - self.primitive_seconds

    @contextmanager
    def primitive_time(self) -> Iterator[None]:
        """Time spent in this block does not count against the time limit."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.primitive_seconds += time.perf_counter() - t0

    # ---- call depth ---------------------------------------------------------------
    def enter_call(self, name: str) -> None:
        self.depth += 1
        if self.depth > self.max_call_depth:
            raise CallDepthError(
                f"calls nested deeper than {self.max_call_depth} levels in '{name}' "
                "(unbounded recursion?; executor.max_call_depth)"
            )

    def exit_call(self) -> None:
        self.depth -= 1

    # ---- sizes --------------------------------------------------------------------
    def check_size(self, size: int, what: str, allocate: bool = True) -> None:
        """Refuse ``what`` if it would hold more than max_sequence_length elements."""
        if size > self.max_sequence_length:
            raise SizeLimitError(
                f"{what} would hold {size} elements; the limit is {self.max_sequence_length} "
                "(executor.max_sequence_length)"
            )
        if allocate:
            self.allocate(size, what)

    def allocate(self, size: int, what: str) -> None:
        """Count ``size`` newly created elements against the run's total allocation."""
        self.allocated += size
        if self.allocated > self.max_total_allocation:
            raise SizeLimitError(
                f"{what}: the program created more than {self.max_total_allocation} elements in total "
                f"({TOTAL_ALLOCATION_FACTOR} x executor.max_sequence_length)"
            )

    def check_int(self, bits: int, what: str) -> None:
        if bits > MAX_INT_BITS:
            raise SizeLimitError(f"{what} would be an integer of about {bits} bits; the limit is {MAX_INT_BITS}")


_CONTAINERS = (list, tuple, set, frozenset, dict)


def deep_size(obj: Any, limit: int, tensor_vars: dict[str, int] | None = None) -> int:
    """Elements reachable from ``obj``: container lengths plus string lengths plus tensor sizes,
    counting shared sub-containers every time they occur (what a C-level compare, hash or repr
    walks). Exceptions count their arguments. Stops early once above ``limit``. When
    ``tensor_vars`` is given, it collects each ProbabilisticTensor variable's largest size."""
    return _size(obj, 0, limit, {}, tensor_vars)


def _size(x: Any, depth: int, limit: int, memo: dict[int, int], tensor_vars: dict[str, int] | None) -> int:
    """:func:`deep_size` of ``x`` at ``depth``; ``memo``: container id -> its size (module-level, not
    a closure calling itself, which would leave a reference cycle per call)."""
    if isinstance(x, str):
        return len(x)
    if isinstance(x, ProbabilisticTensor):
        shape = x.shape  # .shape, not .data: a lazy relation is measured without being evaluated
        if tensor_vars is not None:
            for v, objects in zip(x.vars, shape, strict=False):
                tensor_vars[v] = max(tensor_vars.get(v, 0), int(objects))
        return math.prod(shape)
    if isinstance(x, BaseException):
        x = x.args
    elif not isinstance(x, _CONTAINERS):
        return 0
    key = id(x)
    if key in memo:
        return memo[key]
    if depth > 50:
        return limit + 1
    memo[key] = limit + 1  # a container reaching itself counts as too large
    items = list(x.items()) if isinstance(x, dict) else list(x)
    total = len(items)
    for item in items:
        if total > limit:
            break
        if isinstance(item, tuple) and isinstance(x, dict):
            total += _size(item[0], depth + 1, limit, memo, tensor_vars) + _size(
                item[1], depth + 1, limit, memo, tensor_vars
            )
        else:
            total += _size(item, depth + 1, limit, memo, tensor_vars)
    memo[key] = total
    return total


def is_out_of_memory(exc: BaseException) -> bool:
    """A MemoryError, or torch's CPU allocator failing (a RuntimeError naming DefaultCPUAllocator)."""
    return isinstance(exc, MemoryError) or (type(exc) is RuntimeError and "can't allocate memory" in str(exc)[:300])


def safe_message(exc: BaseException, limit: int = 100_000) -> str:
    """``str(exc)``, unless its arguments are too large (or too aliased) to print quickly."""
    size = deep_size(exc, limit)
    if size > limit:
        return f"<{type(exc).__name__} whose message holds more than {limit} elements; not printed>"
    try:
        return str(exc)[:2000]
    except Exception as e:  # a message that cannot be printed is reported, not raised
        return f"<{type(exc).__name__} whose message cannot be printed: {type(e).__name__}>"
