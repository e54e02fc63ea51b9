"""Executor: check a program, run ``execute(score, query, n)`` in the interpreter, and
record the outcome (value, trace, error, operations, seconds). Never raises for a bad
program: every failure becomes ``outcome.error``."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from neptune_core.config import ExecutorConfig
from neptune_core.executor.checker import ProgramCheckError, parse_checked
from neptune_core.executor.guards import Budget, CallDepthError, SandboxViolation, SizeLimitError
from neptune_core.executor.interpreter import Interpreter, ProgramFunction
from neptune_core.executor.primitives import make_primitives
from neptune_core.executor.sandbox import make_builtins
from neptune_core.types import Box, ErrorRecord
from probabilistic_tensor import LazyPolicy, Semantics
from probabilistic_tensor.lazy import evaluated
from vision_agents.base import VisionAgent

# Python frames the interpreter may need per nested program call (see run()), and the
# highest recursion limit run() sets (beyond it the C stack of a thread is at risk).
_FRAMES_PER_CALL = 60
_MAX_RECURSION_LIMIT = 10_000


@dataclass
class ExecutionOutcome:
    """What one run produced.

    ``value``: what execute returned (None on error). ``trace``: one dict per score/query
    call. ``error``: ErrorRecord or None. ``operations``: evaluated AST nodes.
    ``seconds``: wall time of the run; ``primitive_seconds``: the part inside score/query.
    ``printed``: what the program print()ed (at most 100 lines).
    """

    value: Any = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    error: ErrorRecord | None = None
    operations: int = 0
    seconds: float = 0.0
    primitive_seconds: float = 0.0
    printed: list[str] = field(default_factory=list)


class Executor:
    """Runs checked programs against a VisionAgent under the limits of ``config``.

    ``lazy``: evaluate relations lazily under this policy (None: every pair at once).
    """

    def __init__(self, config: ExecutorConfig, semantics: Semantics, lazy: LazyPolicy | None = None) -> None:
        self.config = config
        self.semantics = semantics
        self.lazy = lazy

    def run(self, source: str, agent: VisionAgent, image: Image.Image, boxes: list[Box]) -> ExecutionOutcome:
        """Check ``source`` and run its ``execute(score, query, len(boxes))``."""
        t0 = time.perf_counter()
        outcome = ExecutionOutcome()
        budget = Budget(self.config)
        # the interpreter recurses in Python; make room for max_call_depth nested calls
        needed = min(_FRAMES_PER_CALL * (budget.max_call_depth + 2) + 200, _MAX_RECURSION_LIMIT)
        previous_limit = sys.getrecursionlimit()
        interp: Interpreter | None = None
        try:
            tree = parse_checked(source)
            score, query = make_primitives(
                agent, image, list(boxes), self.semantics, outcome.trace, budget, lazy=self.lazy
            )
            interp = Interpreter(budget, make_builtins(budget, outcome.printed))
            interp.allow_callable(score)
            interp.allow_callable(query)
            if previous_limit < needed:
                sys.setrecursionlimit(min(needed + _current_depth(), _MAX_RECURSION_LIMIT))
            interp.run_module(tree)
            execute = interp.globals.vars.get("execute")
            if not isinstance(execute, ProgramFunction):
                raise SandboxViolation("the program did not define a function 'execute' at top level")
            # a lazy relation in the result is evaluated here, inside the run (trace, limits, errors)
            outcome.value = evaluated(interp.call(execute, score, query, len(boxes)))
        except ProgramCheckError as e:
            outcome.error = ErrorRecord.from_exception(e)
        except Exception as e:
            if isinstance(e, RecursionError):
                e = CallDepthError("program nesting too deep for the interpreter (recursion?)")
            elif isinstance(e, MemoryError):
                e = SizeLimitError("the program ran out of memory")
            outcome.value = None
            where = f"line {interp.lineno}: " if interp is not None and interp.lineno else ""
            outcome.error = ErrorRecord(type=type(e).__name__, message=f"{where}{e}"[:2000])
        finally:
            if sys.getrecursionlimit() != previous_limit:
                sys.setrecursionlimit(previous_limit)
        outcome.operations = budget.operations
        outcome.primitive_seconds = budget.primitive_seconds
        outcome.seconds = time.perf_counter() - t0
        return outcome


def _current_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth
