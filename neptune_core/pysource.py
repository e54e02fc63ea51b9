"""Python source parsed safely from several threads: :func:`parse_python`.

CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state. When two
threads parse at once (program-generation threads beside the run loop's checker and score planner)
and one is switched out in the middle of building its tree (a garbage collection that runs Python
code can do that), the other's parse overwrites that depth, and the first fails with
``SystemError: AST constructor recursion depth mismatch`` (python/cpython#106905; 3.12 no longer
collects garbage there). Every parse in NePTune goes through :func:`parse_python`, which holds one
process-wide lock while CPython builds the tree (tens of microseconds for a program).
"""

from __future__ import annotations

import ast
import threading
from typing import Literal, overload

_PARSE_LOCK = threading.Lock()


@overload
def parse_python(source: str, mode: Literal["exec"] = "exec") -> ast.Module: ...
@overload
def parse_python(source: str, mode: Literal["eval"]) -> ast.Expression: ...


def parse_python(source: str, mode: Literal["exec", "eval"] = "exec") -> ast.Module | ast.Expression:
    """``ast.parse(source, mode=mode)``, one thread at a time. Raises what ``ast.parse`` raises
    (SyntaxError, ValueError, RecursionError, MemoryError)."""
    with _PARSE_LOCK:
        return ast.parse(source, mode=mode)
