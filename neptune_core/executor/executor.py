"""Executor: run a program against a VisionAgent, in a sandbox process or in-process, and
record the outcome (value, trace, error, operations, seconds). Never raises for a bad
program: every failure becomes ``outcome.error``.

``executor.isolation``:

- ``"process"`` (the default, for inference): the program runs in a sandbox process with OS
  limits and a watchdog (process.py); ``score``/``query`` are forwarded to this process, which
  holds the models. What the program returns comes back as data, so no gradient reaches the
  VLM through it.
- ``"in_process"``: the same interpreter and limits in this process, with the agent's tensors
  passed straight to the program, so gradients flow (training through programs). Only for
  trusted programs (e.g. a reviewed program cache): a single C-level operation cannot be
  interrupted here, and memory is bounded only by the interpreter's guards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from neptune_core.config import ISOLATIONS, ExecutorConfig
from neptune_core.executor.program import ProgramResult, run_program
from neptune_core.executor.score_ahead import bound_requests, can_score_ahead, planned_calls, score_ahead
from neptune_core.types import Box, ErrorRecord
from probabilistic_tensor import LazyPolicy, Semantics
from vision_agents.base import VisionAgent

if TYPE_CHECKING:  # imported where used: neptune_core.primitives imports this package's guards
    from neptune_core.primitives.base import CallContext


@dataclass
class ExecutionOutcome:
    """What one run produced.

    ``value``: what execute returned (None on error). ``trace``: one dict per primitive call
    (at most ``executor.max_trace_entries``, then a "truncated" marker). ``error``: ErrorRecord
    or None. ``operations``: evaluated AST nodes. ``seconds``: wall time of the run;
    ``primitive_seconds``: the part inside score/query. ``printed``: what the program print()ed
    (at most 100 lines).
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

    ``isolation`` overrides ``config.isolation`` (the training loop passes "in_process").
    With process isolation call :meth:`begin` before loading models and :meth:`start` when the
    sandbox is needed (it is also started on the first run) and :meth:`close` at the end (a garbage-collected Executor closes its sandbox).
    ``lazy``: relations (``score(q, 2)``) are evaluated lazily under this policy, pair by pair as
    the program reads them (neptune_core/executor/lazy_score.py); None: every pair at once.
    """

    def __init__(
        self,
        config: ExecutorConfig,
        semantics: Semantics,
        isolation: str | None = None,
        lazy: LazyPolicy | None = None,
    ) -> None:
        self.config = config
        self.semantics = semantics
        self.lazy = lazy
        self.isolation = isolation or config.isolation
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {self.isolation!r}")
        self._sandbox: Any = None

    @property
    def sandbox(self) -> Any:
        """The SandboxProcess (process isolation only)."""
        if self._sandbox is None and self.isolation == "process":
            from neptune_core.executor.process import SandboxProcess

            self._sandbox = SandboxProcess(self.config, self.semantics, lazy_relations=self.lazy is not None)
        return self._sandbox

    def begin(self) -> None:
        """Start the sandbox's fork server without waiting for it (no-op in-process): its start-up
        overlaps model loading and the preflight; :meth:`start` (or the first run) waits for it."""
        if self.isolation == "process":
            from neptune_core.executor.process import start_fork_server

            start_fork_server(wait=False)

    def start(self) -> None:
        """Start the sandbox process now (no-op in-process); SandboxStartError if it cannot start."""
        if self.isolation == "process":
            self.sandbox.start()

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()

    def prepare(self, source: str) -> None:
        """Say which program :meth:`run` will run next, as soon as it is known (a hint; nothing
        in-process): a sandbox process checks it, and plans its score calls to evaluate ahead, while
        this process gets the sample's boxes (or, asked during a run, right after it)."""
        if self.isolation != "process" or self._sandbox is None:
            return
        self._sandbox.prepare(source)

    def run(
        self,
        source: str,
        agent: VisionAgent,
        image: Image.Image,
        boxes: list[Box],
        *,
        more_images: Sequence[tuple[Image.Image, list[Box]]] = (),
        perception: Any = None,
        idle: Iterator[None] | None = None,
    ) -> ExecutionOutcome:
        """Check ``source`` and run its ``execute(score, query, len(boxes))``.

        ``more_images``: the sample's other images with their boxes (``image=1``, ``image=2``...).
        ``perception``: the run's masks, depths and marking (vision_agents/perception.py) for the
        primitives that use them (``closer``); None: those primitives say that none is configured.
        ``idle``: this process's own work, in steps, to do while a sandbox process runs the program
        (a step whenever this process would otherwise wait; the runner generates the next sample's
        program); not done in-process."""
        from neptune_core.primitives import get_primitive
        from neptune_core.primitives.base import CallContext

        ctx = CallContext(
            agent, image, list(boxes), self.config, lazy=self.lazy, more_images=more_images, perception=perception
        )
        ahead = can_score_ahead(ctx, self.config.score_ahead)
        if self.isolation == "process":
            result = self.sandbox.run(
                source, ctx, (lambda: self._score_ahead(source, ctx, False)) if ahead else None, idle=idle
            )
        else:
            if ahead:
                self._score_ahead(source, ctx, True)

            def call(name: str, request: dict[str, Any], program_seconds: float) -> Any:
                return get_primitive(name).call(ctx, request, trusted=True)

            result = run_program(source, ctx.limits.counts or ctx.limits.n, self.config, self.semantics, call)
        return _outcome(result, ctx)

    def _score_ahead(self, source: str, ctx: CallContext, checker_cache: bool) -> list[tuple[dict[str, Any], Any]]:
        """The program's planned score calls, evaluated into the agent's memo (score_ahead.py)."""
        cap, lazy = self.config.score_ahead, self.lazy is not None
        calls = self._sandbox.planned(source) if self.isolation == "process" else None  # planned in its check
        if calls is None:
            calls = planned_calls(source, cap, lazy, checker_cache=checker_cache)
        return score_ahead(ctx, bound_requests(calls, ctx.limits, cap, lazy)) if calls else []


def _outcome(result: ProgramResult, ctx: CallContext) -> ExecutionOutcome:
    return ExecutionOutcome(
        value=result.value if result.error is None else None,
        trace=ctx.finished_trace(),
        error=result.error,
        operations=result.operations,
        seconds=result.seconds,
        primitive_seconds=result.primitive_seconds,
        printed=result.printed,
    )
