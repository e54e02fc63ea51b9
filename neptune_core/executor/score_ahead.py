"""Score calls a program will make, evaluated before it runs, in one batch per arity.

Most programs open with ``score("literal question", k)`` calls in straight-line code. Before
a run, the parent reads the program for such calls (:func:`planned_calls`, :func:`bound_requests`)
and has the agent evaluate them together (:func:`score_ahead`): one forwarded model call per
arity instead of one per question. With process isolation the replies travel to the sandbox
process right after the run request, while it sets the run up (child.py keeps them like reused
replies), so the program's calls need no round trip. The program's calls are then served from
the agent's memo: the trace and the row are what they would have been, except that
``model_calls`` counts the batch as one call and the program's calls as memo hits.

Only calls the program cannot skip are taken: statements of ``execute`` before its first
compound statement (if, for, while, try, def) or return, outside the branches of ``and``,
``or`` and ``x if c else y``, lambdas and comprehensions; question and ``num_objects`` as
literals, no other argument; none after a statement that rebinds ``score``. A call that can
still be skipped (an earlier call raises, or the program fails the checker, which runs in the
sandbox process) costs one wasted evaluation, at most ``executor.score_ahead`` per run (0 turns
this off); the plan is the same in both isolation modes, so are the rows. Only for agents whose
replies may be reused (:meth:`CallContext.reply_scope`): a memoising agent, no gradients.

A failure while evaluating ahead is not the sample's: nothing is kept, and the program's own
call meets the same error where it makes it (recorded on the row as usual).
"""

from __future__ import annotations

import ast
import logging
from typing import TYPE_CHECKING, Any

import torch

from neptune_core.executor.checker import MAX_AST_DEPTH, ProgramCheckError, parse_checked, parse_source
from neptune_core.executor.guards import SizeLimitError
from neptune_core.primitives import EXECUTE_PARAMETERS
from vision_agents.base import MemoizedAgent

if TYPE_CHECKING:
    from neptune_core.primitives.base import CallContext, Limits

log = logging.getLogger(__name__)

_STRAIGHT = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return)
_NOT_ENTERED = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def can_score_ahead(ctx: CallContext, cap: int) -> bool:
    """Whether evaluating ahead can help this run: a cap above 0 and an agent whose replies are reusable."""
    return cap > 0 and isinstance(ctx.agent, MemoizedAgent) and ctx.reply_scope() is not None


def planned_calls(source: str, cap: int, lazy_relations: bool, *, checker_cache: bool) -> list[tuple[str, int]]:
    """``(question, num_objects)`` of the literal ``score`` calls ``source`` makes before it can branch,
    each once, at most ``cap``; [] for a program that does not parse or has no ``execute(score, ...)``.
    ``lazy_relations``: arity-2 calls return a lazy relation's handle, so they are left to the program.
    ``checker_cache``: take the tree from the checker's cache (in-process, where the run checks the
    program right after), else parse it here; either way the plan is that of the parsed program."""
    try:
        tree = _parsed(source, checker_cache)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # the run reports why
    return plan_tree(tree, cap, lazy_relations)


def plan_tree(tree: ast.Module, cap: int, lazy_relations: bool) -> list[tuple[str, int]]:
    """:func:`planned_calls` of a parsed program (a sandbox process plans the program it has just parsed)."""
    defs = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "execute"]
    params = defs[-1].args.args if defs else []
    if len(params) <= EXECUTE_PARAMETERS.index("score"):
        return []
    execute, name = defs[-1], params[EXECUTE_PARAMETERS.index("score")].arg
    calls: dict[tuple[str, int], None] = {}
    for stmt in execute.body:
        if not isinstance(stmt, _STRAIGHT):
            break
        try:
            found, rebinds = _sure_calls(stmt, name)
        except RecursionError:
            break  # too deep for the checker: the run reports it
        for call in found:
            if len(calls) < cap and not (call[1] == 2 and lazy_relations):
                calls[call] = None
        if rebinds or isinstance(stmt, ast.Return) or len(calls) >= cap:
            break  # from here on ``score`` may not be the primitive
    return list(calls)


def _parsed(source: str, checker_cache: bool) -> ast.Module:
    """The parsed program; ProgramCheckError (a ValueError) when it is too long or does not parse."""
    if checker_cache:
        try:
            return parse_checked(source)
        except ProgramCheckError:
            pass  # not checked: parsed below, so that both isolation modes plan the same calls
    return parse_source(source)


def bound_requests(
    calls: list[tuple[str, int]], limits: Limits, cap: int, lazy_relations: bool
) -> list[dict[str, Any]]:
    """The ``score`` requests of ``calls`` (from :func:`planned_calls`) as the primitive binds them, at
    most ``cap``; a call whose arguments the primitive refuses (too long, blank) is left out (the
    program's own call reports it)."""
    from neptune_core.primitives import get_primitive

    score = get_primitive("score")
    requests = []
    for question, arity in calls[:cap]:
        if arity == 2 and lazy_relations:
            continue
        try:
            requests.append(score.request(limits, (question, arity), {}))
        except (TypeError, ValueError, SizeLimitError):
            continue
    return requests


# the parts of common nodes that are evaluated whenever the node is (others: every child node)
_EVALUATED: dict[type, tuple[str, ...]] = {
    ast.Assign: ("value", "targets"),
    ast.Expr: ("value",),
    ast.Return: ("value",),
    ast.Call: ("func", "args", "keywords"),
    ast.keyword: ("value",),
    ast.BinOp: ("left", "right"),
    ast.UnaryOp: ("operand",),
    ast.Attribute: ("value",),
    ast.Compare: ("left", "comparators"),
    ast.Subscript: ("value", "slice"),
    ast.IfExp: ("test",),  # one branch or the other
    ast.Tuple: ("elts",),
    ast.List: ("elts",),
}  # names and constants end the walk in _sure_calls


def _sure_calls(stmt: ast.stmt, name: str) -> tuple[list[tuple[str, int]], bool]:
    """``(question, num_objects)`` of the literal ``name(...)`` calls that evaluating ``stmt`` always
    reaches, in evaluation order, and whether ``stmt`` binds ``name`` (lambdas and comprehensions
    are not entered). RecursionError for a statement nested deeper than the checker allows."""
    found: list[tuple[str, int]] = []
    rebinds = _visit(stmt, name, found, 0)
    return found, rebinds


def _visit(node: Any, name: str, found: list[tuple[str, int]], depth: int) -> bool:
    """Walk ``node`` for :func:`_sure_calls`, appending to ``found``; whether it binds ``name``.
    (A module-level function, not a closure calling itself: that would be a reference cycle per
    call, left to the garbage collector.)"""
    if depth > MAX_AST_DEPTH:  # the checker refuses the program; its plan does not matter
        raise RecursionError(f"nested more than {MAX_AST_DEPTH} deep")
    depth += 1
    kind = type(node)
    if kind is ast.Call and type(node.func) is ast.Name and node.func.id == name:
        literal = _literal_call(node)
        if literal is not None:
            found.append(literal)
    elif kind is ast.Name:
        return node.id == name and type(node.ctx) is not ast.Load
    elif kind is ast.Constant or kind in _NOT_ENTERED:
        return False
    elif kind is ast.BoolOp:  # the other values only when the first does not decide
        return _visit(node.values[0], name, found, depth)
    rebinds = False
    fields = _EVALUATED.get(kind)
    if fields is None:
        for child in ast.iter_child_nodes(node):
            rebinds |= _visit(child, name, found, depth)
        return rebinds
    for f in fields:
        part = getattr(node, f)
        if type(part) is list:
            for child in part:
                rebinds |= _visit(child, name, found, depth)
        elif part is not None:
            rebinds |= _visit(part, name, found, depth)
    return rebinds


def _literal_call(call: ast.Call) -> tuple[str, int] | None:
    """``(question, num_objects)`` of ``score("q")``, ``score("q", k)`` or ``score("q", num_objects=k)``;
    None for any other form (a non-literal argument, ``type=``, ``image=``)."""
    args = list(call.args)
    for kw in call.keywords:
        if kw.arg != "num_objects" or len(args) != 1:
            return None
        args.append(kw.value)
    if not 1 <= len(args) <= 2 or not all(isinstance(a, ast.Constant) for a in args):
        return None
    question = args[0].value  # type: ignore[attr-defined]
    arity = args[1].value if len(args) == 2 else 1  # type: ignore[attr-defined]
    if not isinstance(question, str) or type(arity) is not int or arity not in (0, 1, 2):
        return None
    return question, arity


def score_ahead(ctx: CallContext, requests: list[dict[str, Any]]) -> list[tuple[dict[str, Any], torch.Tensor]]:
    """Evaluate ``requests`` (from :func:`bound_requests`) into the agent's memo, one call per arity;
    each request with the reply ``score`` will give for it. [] when the agent fails (see the module doc)."""
    agent = ctx.agent
    assert isinstance(agent, MemoizedAgent)
    image, boxes = ctx.view(0)
    out: list[tuple[dict[str, Any], torch.Tensor]] = []
    for arity in (0, 1, 2):
        batch = [r for r in requests if r["num_objects"] == arity]
        if not batch or (arity > 0 and not boxes):
            continue
        try:
            rows = agent.warm(image, boxes, [r["question"] for r in batch], arity)
        except Exception as e:  # noqa: BLE001 - not this sample's error: the program's own call meets it
            log.debug("scoring ahead failed (%s: %.200s); the program's calls will ask", type(e).__name__, e)
            return out
        out.extend((r, row) for r, row in zip(batch, rows, strict=True) if row is not None)
    return out


__all__ = ["bound_requests", "can_score_ahead", "plan_tree", "planned_calls", "score_ahead"]
