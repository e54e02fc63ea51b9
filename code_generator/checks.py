"""Checks a generated program before it runs (the "SS-parser" idea).

:func:`check_program` returns a list of problems (empty: fine): the executor's own
whitelist (:func:`neptune_core.executor.check_source`: parses, known names and nodes,
defines execute(score, query, n)) plus semantic checks: no undefined variables,
``num_objects`` a literal 0, 1 or 2, ``query`` given an object index, every path of
``execute`` returns (sure fixes live in code_generator/repairs.py). Add a check: a function taking the parsed
module and returning messages, listed in ``_SEMANTIC_CHECKS``; checks of one primitive's calls
belong to that primitive's ``audit`` (neptune_core/primitives/).
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable

from neptune_core.primitives import EXECUTE_PARAMETERS, PRIMITIVE_NAMES
from neptune_core.pysource import parse_python

PRIMITIVES = (*PRIMITIVE_NAMES, "n")
SIGNATURE = f"execute({', '.join(EXECUTE_PARAMETERS)}, n)"


def _algebra_names() -> set[str]:
    from probabilistic_tensor import PROGRAM_API

    return set(PROGRAM_API)


def _whitelist_problems(source: str) -> list[str]:
    from neptune_core.executor import ProgramCheckError, check_source

    try:
        check_source(source)
    except ProgramCheckError as e:
        return [line.strip() for line in str(e).splitlines() if line.strip()]
    return []


# ---- scopes: undefined names ---------------------------------------------------------------
def _bound_in(node: ast.AST) -> set[str]:
    """Names bound directly in a function (or module) body, not inside nested functions."""
    bound: set[str] = set()
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(child.name)
            continue
        if isinstance(child, ast.Lambda):
            continue
        if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            bound.add(child.id)
        elif isinstance(child, ast.ExceptHandler) and child.name:
            bound.add(child.name)
        elif isinstance(child, ast.arg):
            bound.add(child.arg)
        stack.extend(ast.iter_child_nodes(child))
    return bound


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    return set(names)


def _undefined(tree: ast.Module) -> list[str]:
    known = set(PRIMITIVES) | _algebra_names() | set(dir(builtins))
    problems: list[str] = []

    def visit(scope: ast.AST, visible: set[str]) -> None:
        local = _bound_in(scope)
        if not isinstance(scope, ast.Module):
            local |= _params(scope)  # type: ignore[arg-type]
        names = visible | local
        stack = list(ast.iter_child_nodes(scope))
        while stack:
            child = stack.pop()
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, names)
                continue
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id not in names | known:
                msg = f"line {child.lineno}: name '{child.id}' is used but never defined"
                if msg not in problems:
                    problems.append(msg)
            stack.extend(ast.iter_child_nodes(child))

    visit(tree, set())
    return problems


_OWN_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _walk_same_scope(node: ast.AST) -> list[ast.AST]:
    """``node`` and its descendants, not entering nested functions or comprehensions."""
    out, stack = [], [node]
    while stack:
        cur = stack.pop()
        out.append(cur)
        stack.extend(c for c in ast.iter_child_nodes(cur) if not isinstance(c, _OWN_SCOPES))
    return out


def _use_before_assignment(fn: ast.FunctionDef) -> list[str]:
    """A name read in a top-level statement of ``fn`` before the statement that first assigns it."""
    first: dict[str, int] = {}
    for i, stmt in enumerate(fn.body):
        for node in _walk_same_scope(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                first.setdefault(node.id, i)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first.setdefault(node.name, i)
    params = _params(fn)
    problems = []
    for i, stmt in enumerate(fn.body):
        for node in _walk_same_scope(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                j = first.get(node.id)
                if j is not None and j > i and node.id not in params:
                    problems.append(f"line {node.lineno}: '{node.id}' is used before it is assigned")
    return sorted(set(problems))


# ---- primitive calls -------------------------------------------------------------------------
def _primitive_calls(tree: ast.Module) -> list[str]:
    """Each primitive's own static checks (its ``audit``, declared in neptune_core/primitives/)."""
    from neptune_core.primitives import all_primitives

    prims = all_primitives()
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in prims:
            problems += prims[node.func.id].audit(node)
    return problems


# ---- returns ---------------------------------------------------------------------------------
def _always_returns(body: list[ast.stmt]) -> bool:
    for stmt in body:
        if isinstance(stmt, (ast.Return, ast.Raise)):
            return True
        if isinstance(stmt, ast.If) and stmt.orelse and _always_returns(stmt.body) and _always_returns(stmt.orelse):
            return True
        if isinstance(stmt, ast.With) and _always_returns(stmt.body):
            return True
        if isinstance(stmt, ast.Try):
            if stmt.finalbody and _always_returns(stmt.finalbody):
                return True
            handlers_return = all(_always_returns(h.body) for h in stmt.handlers)
            if _always_returns(stmt.body + stmt.orelse) and handlers_return:
                return True
        if (
            isinstance(stmt, ast.While)
            and isinstance(stmt.test, ast.Constant)
            and stmt.test.value is True
            and not any(isinstance(x, ast.Break) for x in ast.walk(stmt))
        ):
            return True
    return False


def find_execute(tree: ast.Module) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "execute":
            return node
    return None


def _returns(tree: ast.Module) -> list[str]:
    fn = find_execute(tree)
    if fn is None:
        return [f"the program must define {SIGNATURE}"]
    problems = [] if _always_returns(fn.body) else ["execute does not return a value on every path"]
    return problems + _use_before_assignment(fn)


_SEMANTIC_CHECKS: list[Callable[[ast.Module], list[str]]] = [_undefined, _primitive_calls, _returns]


def check_program(source: str) -> list[str]:
    """All problems with ``source``, one message each; an empty list means it may run."""
    try:
        tree = parse_python(source)
    except SyntaxError as e:
        return [f"syntax error at line {e.lineno}: {e.msg}"]
    problems = _whitelist_problems(source)
    for check in _SEMANTIC_CHECKS:
        problems += [p for p in check(tree) if p not in problems]
    return problems
