"""Translate LEFT's first-order-logic programs (CLEVR-Transfer) into NePTune programs.

LEFT writes programs as Python-like lambda expressions, for example::

    point(Object, lambda x: small(x) and cylinder(x) and left(x, iota(Object, lambda y: sphere(y))))
    exists(Object, lambda x1: exists(Object, lambda x2: red(x1) and cube(x2) and behind(x1, x2)))

They are parsed with :mod:`ast` (never evaluated) and become the source of
``def execute(score, query, n)`` built from ``score`` and the tensor algebra:

- a unary concept ``c(v)`` (a CLEVR attribute value) -> ``score(unary_question(c), 1)`` renamed to v;
- a relation ``r(a, b)`` (left/right/front/behind) -> ``score(relation_question(r), 2)`` renamed to
  (a, b); ``same_<attribute>(a, b)`` -> ``score(same_question(attribute), 2)``;
- an argument that is an object (``iota(...)``) instead of a variable is contracted:
  ``r(x, iota(Object, lambda y: B))`` -> ``R("x", "y").contract(B.iota("y"))`` (r_x = sum_y p_y * R_xy);
- ``and`` / ``or`` / ``not`` -> ``&`` / ``|`` / ``~`` (aligned by variable name);
- ``exists`` / ``forall`` / ``count`` over ``Object`` -> ``.exists(v)`` / ``.forall(v)`` / ``.count(v)``;
- ``iota`` and ``point`` -> ``.iota(v)``: ``point`` at the top returns the 1-d distribution over
  boxes (referring expressions: the executor's ``to_answer`` turns it into a box index);
- ``equal`` / ``greater_than`` / ``less_than`` of two counts -> ``==`` / ``>`` / ``<``.

Each concept or relation is scored once and bound to a name (``c_red``, ``r_left``). A
top-level ``exists``/``forall`` answers yes/no. Add a construct: one branch in
:meth:`_Translator.call`. :class:`SymbolicLeftGenerator` (``program_generator:
"symbolic_left"``) translates each sample's ``program`` string.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neptune_core.clevr_vocab import (
    ATTRIBUTES,
    RELATIONS,
    SYNONYMS,
    VALUE_TO_ATTRIBUTE,
    relation_question,
    same_question,
    unary_question,
)
from neptune_core.errors import UserError
from neptune_core.pysource import parse_python
from neptune_core.types import Program, Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

QUANTIFIERS = ("exists", "forall", "count", "iota", "point")
COMPARISONS = {"equal": "==", "greater_than": ">", "less_than": "<"}
OBJECT_NAMES: list[str] = list(ATTRIBUTES["shape"])
"""What a detector is asked to find for a CLEVR-Transfer program: every CLEVR shape."""

_PROB, _OBJ, _NUM = "prob", "object", "number"


class LeftTranslationError(ValueError):
    """The LEFT program does not parse, or uses a function or construct outside the supported set."""


@dataclass
class _Expr:
    kind: str  # "prob" (truth values), "object" (an iota distribution), "number" (a count)
    code: str
    vars: tuple[str, ...]  # free tensor variables, in order of appearance
    var: str | None = None  # for "object": the variable the distribution is over


@dataclass
class _Var:
    name: str  # the tensor variable a lambda variable stands for


def _union(*groups: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for g in groups:
        out.extend(v for v in g if v not in out)
    return tuple(out)


def _lit(text: str) -> str:
    return f'"{text}"' if '"' not in text and "\\" not in text else repr(text)


class _Translator:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.bound: dict[str, str] = {}  # question -> bound name
        self.used_vars: set[str] = set()
        self.temps = 0

    # ---- names ---------------------------------------------------------------------
    def scored(self, prefix: str, key: str, question: str, arity: int) -> str:
        if question not in self.bound:
            name = f"{prefix}_{key}"
            self.bound[question] = name
            self.lines.append(f"{name} = score({_lit(question)}, {arity})")
        return self.bound[question]

    def fresh_var(self, wanted: str) -> str:
        name, k = wanted, 1
        while name in self.used_vars:
            k += 1
            name = f"{wanted}_{k}"
        self.used_vars.add(name)
        return name

    def temp(self, code: str) -> str:
        self.temps += 1
        name = f"o{self.temps}"
        self.lines.append(f"{name} = {code}")
        return name

    # ---- expressions -----------------------------------------------------------------
    def expr(self, node: ast.AST, env: dict[str, str]) -> _Expr | _Var:
        if isinstance(node, ast.Name):
            if node.id in env:
                return _Var(env[node.id])
            raise LeftTranslationError(f"unbound name {node.id!r} (only lambda variables can be arguments)")
        if isinstance(node, ast.BoolOp):
            parts = [self.prob(v, env, "and/or") for v in node.values]
            op = " & " if isinstance(node.op, ast.And) else " | "
            return _Expr(_PROB, "(" + op.join(p.code for p in parts) + ")", _union(*(p.vars for p in parts)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.prob(node.operand, env, "not")
            return _Expr(_PROB, f"(~{inner.code})", inner.vars)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            return self.call(node.func.id, node.args, env)
        raise LeftTranslationError(f"unsupported construct: {ast.unparse(node)[:120]!r}")

    def prob(self, node: ast.AST, env: dict[str, str], where: str) -> _Expr:
        e = self.expr(node, env)
        if not isinstance(e, _Expr) or e.kind != _PROB:
            raise LeftTranslationError(f"{where} needs truth values, got {ast.unparse(node)[:120]!r}")
        return e

    def lam(self, fn: str, args: list[ast.expr], env: dict[str, str]) -> tuple[str, _Expr | _Var]:
        """The variable and translated body of ``fn(Object, lambda v: body)``."""
        if len(args) != 2 or not isinstance(args[1], ast.Lambda):
            raise LeftTranslationError(f"{fn} expects (Object, lambda v: ...), got {len(args)} argument(s)")
        if not (isinstance(args[0], ast.Name) and args[0].id == "Object"):
            raise LeftTranslationError(f"{fn} ranges over {ast.unparse(args[0])!r}; only Object is supported")
        lam = args[1]
        if len(lam.args.args) != 1:
            raise LeftTranslationError(f"the lambda of {fn} must take exactly one variable")
        name = lam.args.args[0].arg
        var = self.fresh_var(name)
        return var, self.expr(lam.body, {**env, name: var})

    def call(self, fn: str, args: list[ast.expr], env: dict[str, str]) -> _Expr | _Var:  # noqa: C901
        if fn in QUANTIFIERS:
            var, body = self.lam(fn, args, env)
            if not isinstance(body, _Expr) or body.kind != _PROB:
                raise LeftTranslationError(f"the body of {fn} must be a condition on its variable")
            if var not in body.vars:
                raise LeftTranslationError(f"the body of {fn} does not use its variable {var!r}")
            rest = tuple(v for v in body.vars if v != var)
            if fn in ("iota", "point"):
                return _Expr(_OBJ, f'{body.code}.iota("{var}")', body.vars, var=var)
            kind = _NUM if fn == "count" else _PROB
            return _Expr(kind, f'{body.code}.{fn}("{var}")', rest)
        if fn in COMPARISONS:
            if len(args) != 2:
                raise LeftTranslationError(f"{fn} expects two counts")
            a, b = (self.expr(x, env) for x in args)
            if not all(isinstance(x, _Expr) and x.kind == _NUM for x in (a, b)):
                raise LeftTranslationError(
                    f"{fn} compares counts; got {ast.unparse(args[0])!r}, {ast.unparse(args[1])!r}"
                )
            return _Expr(_PROB, f"({a.code} {COMPARISONS[fn]} {b.code})", _union(a.vars, b.vars))
        concept = SYNONYMS.get(fn, fn)
        if concept in VALUE_TO_ATTRIBUTE:
            if len(args) != 1:
                raise LeftTranslationError(f"concept {fn!r} takes one argument, got {len(args)}")
            table = self.scored("c", concept, unary_question(concept), 1)
            return self.apply(table, [self.expr(args[0], env)], fn)
        if fn in RELATIONS or fn.startswith("same_"):
            if len(args) != 2:
                raise LeftTranslationError(f"relation {fn!r} takes two arguments, got {len(args)}")
            if fn in RELATIONS:
                table = self.scored("r", fn, relation_question(fn), 2)
            else:
                attr = fn.removeprefix("same_")
                if attr not in ATTRIBUTES:
                    raise LeftTranslationError(
                        f"unknown relation {fn!r}; same_<attribute> needs one of {list(ATTRIBUTES)}"
                    )
                table = self.scored("r", fn, same_question(attr), 2)
            return self.apply(table, [self.expr(a, env) for a in args], fn)
        known = sorted(VALUE_TO_ATTRIBUTE) + list(RELATIONS) + list(QUANTIFIERS) + list(COMPARISONS)
        raise LeftTranslationError(f"unknown LEFT function {fn!r}; supported: {', '.join(known)}, same_<attribute>")

    def apply(self, table: str, args: list[_Expr | _Var], fn: str) -> _Expr:
        """``table`` renamed to the argument variables; object arguments are contracted away."""
        names: list[str] = []
        objects: list[_Expr] = []
        for a in args:
            if isinstance(a, _Var):
                names.append(a.name)
            elif a.kind == _OBJ and a.var is not None:
                names.append(a.var)
                objects.append(a)
            else:
                raise LeftTranslationError(f"{fn} takes objects (variables or iota(...)), got a {a.kind}")
        code = f"{table}({', '.join(_lit(v) for v in names)})"
        free = tuple(dict.fromkeys(names))
        for obj in objects:
            ref = obj.code if obj.code.isidentifier() else self.temp(obj.code)
            code = f"{code}.contract({ref})"
            free = _union(tuple(v for v in free if v != obj.var), tuple(v for v in obj.vars if v != obj.var))
        return _Expr(_PROB, code, free)


def parse_left(program: str) -> ast.expr:
    """The expression tree of a LEFT program (a syntax error is a LeftTranslationError)."""
    if not isinstance(program, str) or not program.strip():
        raise LeftTranslationError(f"a LEFT program must be a non-empty string, got {program!r:.120}")
    try:
        return parse_python(program.strip(), mode="eval").body
    except SyntaxError as e:
        raise LeftTranslationError(f"LEFT program does not parse: {e.msg} (column {e.offset})") from None


def translate_left(program: str) -> str:
    """NePTune source (``def execute(score, query, n)``) for a LEFT first-order-logic program.

    ``point``/``iota`` at the top return the 1-d distribution over boxes; ``exists``/``forall``
    a 0-d truth value (yes/no); ``count`` a number.
    """
    tree = parse_left(program)
    t = _Translator()
    result = t.expr(tree, {})
    if not isinstance(result, _Expr):
        raise LeftTranslationError("a LEFT program cannot be a bare variable")
    expected = 1 if result.kind == _OBJ else 0
    if len(result.vars) != expected:
        raise LeftTranslationError(f"the program's result has free variables {result.vars}; quantify them")
    comment = " ".join(program.split())
    body = [f"# LEFT: {comment}", *t.lines, f"return {result.code}"]
    return "def execute(score, query, n):\n" + "\n".join("    " + line for line in body) + "\n"


class SymbolicLeftGenerator:
    """Translates each sample's LEFT first-order-logic program (CLEVR-Transfer ground truth)."""

    name = "symbolic_left"

    @classmethod
    def from_config(cls, config: RunConfig) -> SymbolicLeftGenerator:
        return cls()

    def check_samples(self, samples: list[Sample]) -> None:
        """Called once after loading: a dataset without LEFT programs fails before the first sample."""
        from code_generator.given import is_python_program, require_some_programs

        require_some_programs(
            samples,
            self.name,
            "LEFT first-order-logic programs",
            lambda p: isinstance(p, str) and not is_python_program(p),
        )

    def program_for(self, sample: Sample) -> Program:
        if not isinstance(sample.program, str) or not sample.program.strip():
            raise UserError(
                f"sample {sample.id} has no LEFT program; program_generator 'symbolic_left' needs a "
                "CLEVR-Transfer dataset (clevr_refexps, clevr_puzzle, clevr_rpm)"
            )
        return Program(source=translate_left(sample.program), origin="symbolic", object_names=list(OBJECT_NAMES))


__all__ = ["LeftTranslationError", "OBJECT_NAMES", "SymbolicLeftGenerator", "parse_left", "translate_left"]
