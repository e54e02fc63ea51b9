"""The program sandbox: static check, AST-walking interpreter, perception primitives.

    outcome = Executor(config.executor, config.semantics).run(source, agent, image, boxes)
    answer = to_answer(outcome.value)  # when outcome.error is None

Modules: ``checker`` (static whitelist of syntax and names), ``interpreter`` (evaluates
the AST node by node under a :class:`~neptune_core.executor.guards.Budget`),
``sandbox`` (builtins, attribute whitelist, size-guarded operators), ``guards``
(limits and errors), ``primitives`` (score/query and their prompt docs), ``answers``
(to_answer). To give programs a new builtin or method, add it in ``sandbox.py``; a new
syntax element needs a node in ``checker._ALLOWED_NODES`` and an ``_eval_``/``_exec_``
method in the interpreter; a new primitive goes in ``primitives.make_primitives``,
``sandbox.PRIMITIVE_NAMES`` and the ``execute`` signature check.
"""

from neptune_core.executor.answers import to_answer
from neptune_core.executor.checker import ProgramCheckError, check_source
from neptune_core.executor.executor import ExecutionOutcome, Executor
from neptune_core.executor.guards import (
    AgentError,
    CallDepthError,
    ExecutionLimitError,
    OperationLimitError,
    SandboxAbort,
    SandboxViolation,
    SizeLimitError,
    TimeLimitError,
)
from neptune_core.executor.primitives import PRIMITIVE_DOCS, PRIMITIVE_SIGNATURES
from neptune_core.executor.sandbox import EXCEPTION_NAMES, SAFE_BUILTIN_NAMES

__all__ = [
    "EXCEPTION_NAMES",
    "PRIMITIVE_DOCS",
    "PRIMITIVE_SIGNATURES",
    "SAFE_BUILTIN_NAMES",
    "AgentError",
    "CallDepthError",
    "ExecutionLimitError",
    "ExecutionOutcome",
    "Executor",
    "OperationLimitError",
    "ProgramCheckError",
    "SandboxAbort",
    "SandboxViolation",
    "SizeLimitError",
    "TimeLimitError",
    "check_source",
    "to_answer",
]
