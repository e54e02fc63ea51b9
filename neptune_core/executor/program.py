"""Running one program: check it, interpret ``execute(score, query, n)``, bound its result.

:func:`run_program` is the same code in both isolation modes: in the sandbox process (the
primitives forward each call to the parent over the pipe) and in-process (they call the
parent side directly). It never raises for a bad program: every failure is ``result.error``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neptune_core.config import ExecutorConfig
from neptune_core.executor.checker import ProgramCheckError, parse_checked
from neptune_core.executor.guards import (
    Budget,
    CallDepthError,
    ProgramMemoryError,
    SandboxViolation,
    SizeLimitError,
    deep_size,
    is_out_of_memory,
    safe_message,
)
from neptune_core.executor.interpreter import Interpreter, ProgramFunction
from neptune_core.executor.sandbox import make_builtins
from neptune_core.types import ErrorRecord
from probabilistic_tensor import Semantics
from probabilistic_tensor.lazy import evaluated

if TYPE_CHECKING:  # imported where used: neptune_core.primitives imports this package's guards
    from neptune_core.primitives.base import Limits, Primitive

# Python frames the interpreter may need per nested program call, and the highest recursion
# limit a run sets (beyond it the C stack of a thread is at risk).
_FRAMES_PER_CALL = 60
_MAX_RECURSION_LIMIT = 10_000

# (primitive name, request, program seconds so far) -> reply: what the primitive's ``run`` returned
CallPrimitive = Callable[[str, dict[str, Any], float], Any]


@dataclass
class ProgramResult:
    """What one run of a program produced (see ExecutionOutcome for the fields).

    ``fresh_process``: the run hit a memory error, so a sandbox process should not be reused.
    """

    value: Any = None
    error: ErrorRecord | None = None
    operations: int = 0
    seconds: float = 0.0
    primitive_seconds: float = 0.0
    printed: list[str] = field(default_factory=list)
    fresh_process: bool = False


def _forwarder(budget: Budget, call: CallPrimitive) -> Callable[[str, dict[str, Any]], Any]:
    def forward(name: str, request: dict[str, Any]) -> Any:
        """A request to the parent (a primitive call, or a value's follow-up such as a lazy relation's pairs)."""
        program_seconds = budget.program_seconds()
        with budget.primitive_time():
            return call(name, request, program_seconds)

    return forward


def _program_callable(prim: Primitive, run: _RunLimits, semantics: Semantics, forward: Callable[..., Any]):
    def primitive(*args: Any, **kwargs: Any) -> Any:
        request = prim.request(run.limits, args, kwargs)
        reply = forward(prim.name, request)
        return prim.wrap(request, reply, semantics, forward) if prim.forwards else prim.wrap(request, reply, semantics)

    primitive.__name__ = prim.name
    primitive.__doc__ = prim.doc
    return primitive


class _RunLimits:
    """The limits of the run the primitives' callables belong to (set when the run starts)."""

    __slots__ = ("limits",)

    def __init__(self) -> None:
        self.limits: Limits | None = None


@dataclass
class RunSetup:
    """What one run needs besides its program: a budget, the builtins, the primitives' callables and
    an interpreter over them, all its own. :func:`prepare_run` builds it; a sandbox process builds
    the next run's while it waits for the program, so that a run starts with its program."""

    budget: Budget
    printed: list[str]
    names: dict[str, Any]
    run: _RunLimits
    interp: Interpreter
    call: CallPrimitive


def prepare_run(config: ExecutorConfig, semantics: Semantics, call: CallPrimitive) -> RunSetup:
    """A fresh :class:`RunSetup` for one :func:`run_program` (``call``: as there)."""
    from neptune_core.primitives import all_primitives

    budget = Budget(config)
    printed: list[str] = []
    names = make_builtins(budget, printed)
    forward = _forwarder(budget, call)
    run = _RunLimits()
    for name, prim in all_primitives().items():
        names[name] = _program_callable(prim, run, semantics, forward)
    return RunSetup(budget, printed, names, run, Interpreter(budget, names), call)


def run_program(
    source: str,
    n: int | tuple[int, ...],
    config: ExecutorConfig,
    semantics: Semantics,
    call: CallPrimitive,
    setup: RunSetup | None = None,
) -> ProgramResult:
    """Check ``source`` and run its ``execute(score, query, n)`` under the limits of ``config``.

    ``n``: the number of boxes, or a tuple of them, one per image, for a sample with several
    images (the program's ``n`` is then the first image's; ``image=k`` arguments are checked
    against the tuple). ``setup``: this run's, from :func:`prepare_run` with the same ``config``,
    ``semantics`` and ``call`` (used once; built here when None)."""
    from neptune_core.primitives.base import Limits

    t0 = time.perf_counter()
    setup = setup if setup is not None else prepare_run(config, semantics, call)
    if setup.call is not call:
        raise ValueError("run_program: the setup was prepared for another call")
    budget = setup.budget
    budget.start = t0  # program time counts from here, however long ago the setup was built
    result = ProgramResult(printed=setup.printed)
    needed = min(_FRAMES_PER_CALL * (budget.max_call_depth + 2) + 200, _MAX_RECURSION_LIMIT)
    previous_limit = sys.getrecursionlimit()
    interp: Interpreter | None = None
    try:
        tree = parse_checked(source)
        limits = setup.run.limits = Limits.of(n, config.max_question_chars)
        n = limits.n
        interp = setup.interp
        names = setup.names
        if previous_limit < needed:
            sys.setrecursionlimit(min(needed + _current_depth(), _MAX_RECURSION_LIMIT))
        interp.run_module(tree)
        execute = interp.globals.vars.get("execute")
        if not isinstance(execute, ProgramFunction):
            raise SandboxViolation("the program did not define a function 'execute' at top level")
        value = interp.call(execute, names["score"], names["query"], n)
        size = deep_size(value, config.max_result_size)
        if size > config.max_result_size:
            raise SizeLimitError(
                f"execute returned a value of more than {config.max_result_size} elements (items, characters or "
                "tensor values; executor.max_result_size)"
            )
        # a lazy relation in the result is evaluated here, inside the run (its limits, trace and errors)
        result.value = evaluated(value)
    except ProgramCheckError as e:
        result.error = ErrorRecord.from_exception(e)
    except Exception as e:
        if isinstance(e, RecursionError):
            e = CallDepthError("program nesting too deep for the interpreter (recursion?)")
        elif is_out_of_memory(e):
            e = ProgramMemoryError("the program ran out of memory")
        result.fresh_process = isinstance(e, ProgramMemoryError)
        where = f"line {interp.lineno}: " if interp is not None and interp.lineno else ""
        result.error = ErrorRecord(type=type(e).__name__, message=f"{where}{safe_message(e)}"[:2000])
    finally:
        if interp is not None:
            interp.release()
        if sys.getrecursionlimit() != previous_limit:
            sys.setrecursionlimit(previous_limit)
    result.operations = budget.operations
    result.primitive_seconds = budget.primitive_seconds
    result.seconds = time.perf_counter() - t0
    return result


def _current_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth
