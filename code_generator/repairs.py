"""Automatic repairs of generated programs, only where the intended meaning is certain.

:func:`repair` rewrites the AST and returns the new source with one note per fix:
- ``p == 'yes'`` / ``p == True`` / ``p != 'no'`` on a soft truth value -> ``p``; the
  opposite comparisons -> ``~p`` (a score is a probability, never the string 'yes');
- ``a and b`` / ``a or b`` / ``not a`` on soft truth values -> ``a & b`` / ``a | b`` / ``~a``
  (python's boolean operators cannot combine tensors);
- ``num_objects="1"`` (a number written as a string) -> ``num_objects=1``;
- ``def execute(score, query)`` -> ``def execute(score, query, n)``.
Anything else goes back to the LLM. Add a repair: a NodeTransformer method below that
records a note; keep it to rewrites that cannot change a correct program's meaning.
"""

from __future__ import annotations

import ast

from code_generator.checks import find_execute
from neptune_core.pysource import parse_python

_PT_METHODS = {"exists", "forall", "iota", "implies", "contract"}
_PT_FUNCS = {"score", "exists", "forall", "implies", "and_op", "or_op", "not_op", "iota"}
_YES = ("yes", "true", True)
_NO = ("no", "false", False)


def _truth_literal(node: ast.expr) -> bool | None:
    """True for 'yes'/True, False for 'no'/False, None for anything else."""
    if not isinstance(node, ast.Constant):
        return None
    value = node.value.strip().lower() if isinstance(node.value, str) else node.value
    if isinstance(value, bool) or isinstance(value, str):
        if value in _YES:
            return True
        if value in _NO:
            return False
    return None


class _Repairer(ast.NodeTransformer):
    def __init__(self, soft_names: set[str]) -> None:
        self.soft_names = soft_names
        self.notes: list[str] = []

    def is_soft(self, node: ast.expr) -> bool:
        """Whether ``node`` surely evaluates to a soft truth value (a ProbabilisticTensor of kind prob)."""
        if isinstance(node, ast.Name):
            return node.id in self.soft_names
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                return f.id in _PT_FUNCS
            if isinstance(f, ast.Attribute):
                return f.attr in _PT_METHODS and self.is_soft(f.value)
            return False
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            return self.is_soft(node.left) and self.is_soft(node.right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
            return self.is_soft(node.operand)
        if isinstance(node, ast.Subscript):
            return self.is_soft(node.value)
        return False

    def visit_Compare(self, node: ast.Compare) -> ast.AST:  # noqa: N802
        self.generic_visit(node)
        if len(node.ops) != 1 or not isinstance(node.ops[0], (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)):
            return node
        left, right = node.left, node.comparators[0]
        for value, literal in ((left, right), (right, left)):
            truth = _truth_literal(literal)
            if truth is not None and self.is_soft(value):
                positive = truth == isinstance(node.ops[0], (ast.Eq, ast.Is))
                new = value if positive else ast.UnaryOp(op=ast.Invert(), operand=value)
                self.notes.append(
                    f"compared a score to {ast.unparse(literal)}: {ast.unparse(node)} -> {ast.unparse(new)}"
                )
                return ast.copy_location(new, node)
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:  # noqa: N802
        self.generic_visit(node)
        if not all(self.is_soft(v) for v in node.values):
            return node
        op: ast.operator = ast.BitAnd() if isinstance(node.op, ast.And) else ast.BitOr()
        new = node.values[0]
        for v in node.values[1:]:
            new = ast.BinOp(left=new, op=op, right=v)
        self.notes.append(f"python boolean operator on scores: {ast.unparse(node)} -> {ast.unparse(new)}")
        return ast.copy_location(new, node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:  # noqa: N802
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self.is_soft(node.operand):
            new = ast.UnaryOp(op=ast.Invert(), operand=node.operand)
            self.notes.append(f"'not' on a score: {ast.unparse(node)} -> {ast.unparse(new)}")
            return ast.copy_location(new, node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:  # noqa: N802
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "score":
            slots = node.args[1:2] + [kw.value for kw in node.keywords if kw.arg == "num_objects"]
            for k in slots:
                if isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value.strip() in ("0", "1", "2"):
                    self.notes.append(f"num_objects written as a string: {k.value!r} -> {k.value.strip()}")
                    k.value = int(k.value.strip())
        return node


def _soft_names(tree: ast.Module) -> set[str]:
    """Names whose every assignment is a soft truth value (iterated to a fixed point)."""
    assigns: dict[str, list[ast.expr]] = {}
    other: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    assigns.setdefault(t.id, []).append(node.value)
                else:
                    other |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.comprehension, ast.NamedExpr)):
            target = node.target
            other |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.arg):
            other.add(node.arg)
    soft: set[str] = set()
    changed = True
    while changed:
        changed = False
        checker = _Repairer(soft)
        for name, values in assigns.items():
            if name not in soft and name not in other and all(checker.is_soft(v) for v in values):
                soft.add(name)
                changed = True
    return soft


def repair(source: str) -> tuple[str, list[str]]:
    """(repaired source, notes); the source unchanged with no notes when nothing was sure to fix.

    A source that does not parse is returned unchanged.
    """
    try:
        tree = parse_python(source)
    except SyntaxError:
        return source, []
    notes: list[str] = []
    fn = find_execute(tree)
    if fn is not None:
        names = [a.arg for a in fn.args.args]
        if names == ["score", "query"] and not fn.args.vararg and not fn.args.kwonlyargs:
            fn.args.args.append(ast.arg(arg="n"))
            notes.append("execute(score, query) -> execute(score, query, n)")
    repairer = _Repairer(_soft_names(tree))
    tree = repairer.visit(tree)
    notes += repairer.notes
    if not notes:
        return source, []
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n", notes
