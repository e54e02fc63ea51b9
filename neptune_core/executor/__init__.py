"""The program sandbox: static check, AST-walking interpreter, sandbox process, primitives.

    executor = Executor(config.executor, config.semantics)   # isolation from the config
    executor.start()                                          # before loading models
    outcome = executor.run(source, agent, image, boxes)
    answer = to_answer(outcome.value)  # when outcome.error is None

Two lines of defence. The interpreter (``checker``: static whitelist of syntax and names;
``interpreter``: evaluates the AST node by node under a
:class:`~neptune_core.executor.guards.Budget`; ``sandbox``: builtins and attribute
whitelist; ``operators``: size-guarded operators and the checks before C-level walks) gives
ordinary bugs and most hostile programs a clear error. The sandbox process (``process``,
``child``, ``wire``) is the line no program can cross: OS limits on memory and CPU time, no
inherited file descriptors, a watchdog on program time in the parent, and a fresh process
after any kill. ``program.run_program`` is the same code on both sides; ``answers`` has
to_answer; ``score_ahead`` evaluates the score calls a program cannot skip, in one batch, before
it runs (:meth:`Executor.prepare` hands a sandbox process the program as soon as it is known, and
plans those calls; ``executor.run(..., idle=steps)`` does the caller's own work, such as the next
sample's program, while the sandbox runs). The primitives (score, query, ...) are declared in neptune_core/primitives/.

To give programs a new builtin or method, add it in ``sandbox.py`` (and guard it in
``operators.py`` if it allocates or walks its argument); a new syntax element needs a node
in ``checker._ALLOWED_NODES`` and an ``_eval_``/``_exec_`` method in the interpreter; a new
primitive is one declaration in neptune_core/primitives/.
"""

from neptune_core.executor.answers import to_answer
from neptune_core.executor.checker import ProgramCheckError, check_source
from neptune_core.executor.executor import ExecutionOutcome, Executor
from neptune_core.executor.guards import (
    AgentError,
    CallDepthError,
    ExecutionLimitError,
    OperationLimitError,
    PrimitiveLimitError,
    ProgramMemoryError,
    ProgramTimeout,
    SandboxAbort,
    SandboxCrash,
    SandboxViolation,
    SizeLimitError,
    TimeLimitError,
)
from neptune_core.executor.sandbox import EXCEPTION_NAMES, SAFE_BUILTIN_NAMES

__all__ = [
    "EXCEPTION_NAMES",
    "SAFE_BUILTIN_NAMES",
    "AgentError",
    "CallDepthError",
    "ExecutionLimitError",
    "ExecutionOutcome",
    "Executor",
    "OperationLimitError",
    "PrimitiveLimitError",
    "ProgramCheckError",
    "ProgramMemoryError",
    "ProgramTimeout",
    "SandboxAbort",
    "SandboxCrash",
    "SandboxViolation",
    "SizeLimitError",
    "TimeLimitError",
    "check_source",
    "to_answer",
]
