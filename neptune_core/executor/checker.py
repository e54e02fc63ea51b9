"""Static check of a program's source before it runs: whitelisted syntax and names.

:func:`check_source` reports every problem at once, one per line with its line
number, so a repair prompt can quote them. To allow a new syntax element, add its
node type to :data:`_ALLOWED_NODES` and teach the interpreter to evaluate it.
"""

from __future__ import annotations

import ast
import threading
from collections import OrderedDict

from neptune_core.executor.sandbox import (
    ALLOWED_ATTRIBUTES,
    EXCEPTION_NAMES,
    FORBIDDEN_NAMES,
    PRIMITIVE_NAMES,
    SAFE_BUILTIN_NAMES,
)
from neptune_core.primitives import EXECUTE_PARAMETERS
from neptune_core.pysource import parse_python
from probabilistic_tensor import PROGRAM_API

MAX_AST_DEPTH = 50
MAX_SOURCE_CHARS = 20_000
_CACHE_SIZE = 256  # programs that passed, most recently used kept
_CHECKED: OrderedDict[str, ast.Module] = OrderedDict()
_CACHE_LOCK = threading.Lock()

_ALLOWED_NODES: tuple[type, ...] = (
    ast.Module, ast.FunctionDef, ast.Lambda, ast.arguments, ast.arg, ast.Return, ast.Assign, ast.AugAssign,
    ast.AnnAssign, ast.If, ast.IfExp, ast.For, ast.While, ast.Break, ast.Continue, ast.Pass, ast.Expr,
    ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Call, ast.keyword, ast.Name, ast.Load, ast.Store,
    ast.Constant, ast.Attribute, ast.Subscript, ast.Slice, ast.List, ast.Tuple, ast.Dict, ast.Set,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension, ast.JoinedStr,
    ast.FormattedValue, ast.Try, ast.ExceptHandler, ast.Raise, ast.Assert,
    ast.And, ast.Or, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.BitAnd,
    ast.BitOr, ast.BitXor, ast.Not, ast.USub, ast.UAdd, ast.Invert, ast.Eq, ast.NotEq, ast.Lt, ast.LtE,
    ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
)  # fmt: skip

_WHY_NOT: dict[type, str] = {
    ast.Import: "import is not allowed",
    ast.ImportFrom: "import is not allowed",
    ast.Global: "global is not allowed",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.AsyncFunctionDef: "async functions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield (generators) is not allowed",
    ast.YieldFrom: "yield (generators) is not allowed",
    ast.With: "with-statements are not allowed",
    ast.AsyncWith: "with-statements are not allowed",
    ast.AsyncFor: "async for is not allowed",
    ast.Delete: "del is not allowed",
    ast.Starred: "starred unpacking (*x) is not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Match: "match statements are not allowed",
    ast.MatMult: "the @ operator is not allowed",
    ast.LShift: "shift operators are not allowed",
    ast.RShift: "shift operators are not allowed",
}

KNOWN_NAMES: frozenset[str] = frozenset(PRIMITIVE_NAMES + SAFE_BUILTIN_NAMES + EXCEPTION_NAMES) | set(PROGRAM_API)
# names a program may not rebind (builtins, algebra, forbidden names)
_PROTECTED: frozenset[str] = frozenset(SAFE_BUILTIN_NAMES + EXCEPTION_NAMES) | set(PROGRAM_API) | FORBIDDEN_NAMES


class ProgramCheckError(ValueError):
    """A program failed the static check; the message lists the problems, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


_ALLOWED_SET: frozenset[type] = frozenset(_ALLOWED_NODES)
# the nodes the second pass (_node_problems) looks at
_INSPECTED: frozenset[type] = frozenset(
    {
        ast.Name,
        ast.Attribute,
        ast.FunctionDef,
        ast.Lambda,
        ast.ExceptHandler,
        ast.keyword,
        ast.Dict,
        ast.Raise,
        ast.Constant,
    }
)
_ANNOTATION_FIELDS = ("annotation", "returns")
# each node type's fields that may hold nodes ("ctx" is only Load/Store; Name's "id" is a string)
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {ast.Name: ()}


def _line(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')}"


def _collect(tree: ast.Module) -> tuple[list[tuple[ast.AST, bool]], set[str], list[str]]:
    """One pass over the tree: the (node, in_annotation) pairs the second pass inspects, names the
    program binds, and the problems found on the way (forbidden nodes, nesting depth, misplaced
    return/break/continue). Nothing inside a forbidden node is visited."""
    nodes: list[tuple[ast.AST, bool]] = []
    bound: set[str] = set()
    problems: list[str] = []
    allowed, inspected = _ALLOWED_SET, _INSPECTED
    # node, depth, in_annotation, in_loop, in_function
    stack: list[tuple[ast.AST, int, bool, bool, bool]] = [(tree, 0, False, False, False)]
    while stack:
        node, depth, in_ann, in_loop, in_func = stack.pop()
        kind = type(node)
        if depth > MAX_AST_DEPTH:
            return [], set(), [f"{_line(node)}: expressions/blocks nested more than {MAX_AST_DEPTH} deep"]
        if kind not in allowed:
            problems.append(f"{_line(node)}: {_WHY_NOT.get(kind, f'{kind.__name__} is not allowed')}")
            continue
        if kind in inspected:
            nodes.append((node, in_ann))
        if kind is ast.Name:
            if type(node.ctx) is ast.Store:
                bound.add(node.id)
        elif kind is ast.FunctionDef:
            bound.add(node.name)
        elif kind is ast.arg:
            bound.add(node.arg)
        elif kind is ast.ExceptHandler:
            if node.name:
                bound.add(node.name)
        elif kind is ast.Break or kind is ast.Continue:
            if not in_loop:
                problems.append(f"{_line(node)}: '{kind.__name__.lower()}' outside a loop")
        elif kind is ast.Return and not in_func:
            problems.append(f"{_line(node)}: 'return' outside a function")
        elif kind is ast.Constant:
            continue  # a leaf (its value is no node)
        fields = _CHILD_FIELDS.get(kind)
        if fields is None:
            fields = _CHILD_FIELDS[kind] = tuple(f for f in kind._fields if f != "ctx")
        if not fields:
            continue  # operators, and names once noted above
        if kind is ast.FunctionDef or kind is ast.Lambda:
            in_loop, in_func = False, True
        loop_body = {id(b) for b in node.body} if kind is ast.For or kind is ast.While else None
        children: list[tuple[ast.AST, int, bool, bool, bool]] = []
        for name in fields:
            value = getattr(node, name, None)
            if value is None:
                continue
            ann = in_ann or name in _ANNOTATION_FIELDS
            if isinstance(value, list):
                for v in value:
                    if isinstance(v, ast.AST):
                        child_loop = in_loop or (loop_body is not None and id(v) in loop_body)
                        children.append((v, depth + 1, ann, child_loop, in_func))
            elif isinstance(value, ast.AST):
                children.append((value, depth + 1, ann, in_loop, in_func))
        children.reverse()
        stack.extend(children)
    return nodes, bound, problems


def _node_problems(tree: ast.Module) -> list[str]:
    nodes, bound, problems = _collect(tree)
    known = KNOWN_NAMES | bound
    for node, in_annotation in nodes:
        line = _line(node)
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                problems.append(f"{line}: name '{node.id}' is not allowed (dunder names are forbidden)")
            elif isinstance(node.ctx, ast.Store) and node.id in _PROTECTED:
                problems.append(f"{line}: cannot assign to the built-in name '{node.id}'")
            elif in_annotation:
                pass
            elif node.id in FORBIDDEN_NAMES:
                problems.append(f"{line}: '{node.id}' is not available in programs")
            elif node.id not in known:
                problems.append(f"{line}: unknown name '{node.id}'")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                problems.append(f"{line}: attribute '{node.attr}' is not allowed (names starting with '_')")
            elif not isinstance(node.ctx, ast.Load):
                problems.append(f"{line}: assigning to attributes is not allowed")
            elif node.attr not in ALLOWED_ATTRIBUTES and not in_annotation:
                problems.append(f"{line}: attribute '.{node.attr}' is not allowed")
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
            args = node.args
            if args.vararg or args.kwarg:
                problems.append(f"{line}: *args/**kwargs parameters are not allowed")
            for a in args.posonlyargs + args.args + args.kwonlyargs:
                if a.arg.startswith("__") or a.arg in _PROTECTED:
                    problems.append(f"{line}: parameter name '{a.arg}' is not allowed")
            if isinstance(node, ast.FunctionDef):
                if node.decorator_list:
                    problems.append(f"{line}: decorators are not allowed")
                if node.name.startswith("__") or node.name in _PROTECTED:
                    problems.append(f"{line}: function name '{node.name}' is not allowed")
        elif isinstance(node, ast.ExceptHandler) and node.name and node.name in _PROTECTED:
            problems.append(f"{line}: cannot bind the built-in name '{node.name}'")
        elif isinstance(node, ast.keyword) and node.arg is None:
            problems.append(f"{line}: keyword unpacking (**x) is not allowed")
        elif isinstance(node, ast.Dict) and any(k is None for k in node.keys):
            problems.append(f"{line}: dict unpacking (**x) is not allowed")
        elif isinstance(node, ast.Raise) and (node.exc is None or node.cause is not None):
            problems.append(f"{line}: only 'raise SomeError(...)' is allowed (no bare raise, no 'from')")
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (str, int, float, bool, type(None))):
            problems.append(f"{line}: constants of type {type(node.value).__name__} are not allowed")
    return problems


def _execute_problems(tree: ast.Module) -> list[str]:
    defs = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "execute"]
    if not defs:
        return ["line 1: the program must define a top-level function 'def execute(score, query, n):'"]
    args = defs[-1].args
    names = [a.arg for a in args.posonlyargs + args.args]
    expected = [*EXECUTE_PARAMETERS, "n"]
    if names != expected or args.kwonlyargs:
        return [f"line {defs[-1].lineno}: execute must take exactly ({', '.join(expected)}), got ({', '.join(names)})"]
    return []


def _line_of(problem: str) -> int:
    head = problem.split(":", 1)[0].removeprefix("line ")
    return int(head) if head.isdigit() else 0


def check_source(source: str) -> None:
    """Raise :class:`ProgramCheckError` listing every problem of ``source`` (one per line)."""
    parse_checked(source)


def parse_checked(source: str, tree: ast.Module | None = None) -> ast.Module:
    """The parsed module of a program that passes :func:`check_source` (cached by source;
    the interpreter never mutates the tree). ``tree``: the program already parsed by
    :func:`parse_source` (it is checked, not parsed again)."""
    if not isinstance(source, str):
        raise ProgramCheckError([f"line 1: the program must be a string, got {type(source).__name__}"])
    with _CACHE_LOCK:
        hit = _CHECKED.get(source)
        if hit is not None:
            _CHECKED.move_to_end(source)
            return hit
    if tree is None:
        tree = parse_source(source)
    problems = tree_problems(tree)
    if problems:
        raise ProgramCheckError(problems)
    with _CACHE_LOCK:
        _CHECKED[source] = tree
        if len(_CHECKED) > _CACHE_SIZE:
            _CHECKED.popitem(last=False)
    return tree


def parse_source(source: str) -> ast.Module:
    """``source`` parsed, unchecked; ProgramCheckError when it is too long or does not parse."""
    if len(source) > MAX_SOURCE_CHARS:
        raise ProgramCheckError([f"line 1: the program has {len(source)} characters; the limit is {MAX_SOURCE_CHARS}"])
    try:
        return parse_python(source)
    except SyntaxError as e:
        raise ProgramCheckError([f"line {e.lineno}: syntax error: {e.msg}"]) from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise ProgramCheckError([f"line 1: the program cannot be parsed ({type(e).__name__}: {e})"]) from None


def tree_problems(tree: ast.Module) -> list[str]:
    """Every problem of a parsed program, in line order ([] when it passes)."""
    problems = _node_problems(tree) + _execute_problems(tree)
    return sorted(dict.fromkeys(problems), key=_line_of)
