"""Translate CLEVR functional programs into NePTune Python programs.

A CLEVR program is a list of nodes ``{"function", "inputs", "value_inputs"}`` (the
CLEVR v1.0 format); the generator's older format (``"type"``, ``"side_inputs"``) and
the bracket form (``"filter_color[red]"``) are accepted too. :func:`translate_clevr`
returns the source of ``def execute(score, query, n)``, one line per node, with the
CLEVR node as a comment. Questions sent to ``score``/``query`` are exactly the
canonical phrasings of :mod:`neptune_core.clevr_vocab`.

Mapping (a set of objects is a 1-d prob tensor over ``x``; an object is its ``iota``):

- ``scene``: all objects. Kept symbolic (no perception call): ``filter`` on the scene
  is the score vector itself, ``count``/``exist`` of the scene are ``n`` / ``n > 0``,
  ``union`` with the scene is the scene, ``intersect`` with it is the other operand.
  Only where an explicit vector of all objects is unavoidable (``unique``, ``relate``
  etc. of the scene, which valid CLEVR questions never do) it is materialised as
  ``score(OBJECT_QUESTION, 1)`` ("Is there an object in the red box?"), which asks
  perception whether the box holds an object: an honest, answerable question.
- ``filter_<attr>[v]``: ``s & score(unary_question(v), 1)``
- ``unique``: ``s.iota()`` -- exact (a one-hot) for 0/1 scores under the default
  ``Semantics(iota="minmax")`` and, to float precision, under ``iota="softmax"`` (over logits)
- ``relate[r]``: ``score(relation_question(r), 2).contract(o("y")) & ~o`` (objects x
  that are r of o, the object itself excluded)
  (with ``depth_relations``, front / behind use ``closer()`` / ``closer(farther=True)`` instead)
- ``same_<attr>``: ``score(same_question(attr), 2).contract(o("y")) & ~o``
- ``query_<attr>``: ``query(query_question(attr), o)`` (a string)
- ``count`` / ``exist`` / ``union`` / ``intersect``: ``.count()`` / ``.exists()`` / ``|`` / ``&``
- ``equal_<attr>``: string equality of two query answers (a bool)
- ``equal_integer`` / ``less_than`` / ``greater_than``: soft comparisons of counts
  (``==``, ``<``, ``>``), exact for integer counts with the default tau = gamma = 0.25
- ``equal_object``: ``(o1 & o2).exists()``
- fused forms ``filter``, ``filter_unique|count|exist``, ``relate_filter[_unique|_count|_exist]``
  are the compositions of the above; their ``value_inputs`` are an optional relation
  (a value in ``clevr_vocab.RELATIONS``) followed by attribute values.

To support a new CLEVR function, add a branch to :meth:`_Translator.node`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from neptune_core.clevr_vocab import (
    RELATIONS,
    SUBJECT,
    VALUE_TO_ATTRIBUTE,
    query_question,
    relation_question,
    same_question,
    unary_question,
)

DEPTH_RELATIONS = {"front": "closer()", "behind": "closer(farther=True)"}
"""CLEVR relations the depth model can answer: x in front of y = x closer to the camera than y."""

OBJECT_QUESTION = f"Is there an object in {SUBJECT.removeprefix('the object in ')}?"
"""'Is there an object in the red box?' -- used only to materialise the whole scene."""

CLEVR_FUNCTIONS: tuple[str, ...] = (
    "scene",
    "unique",
    "union",
    "intersect",
    "count",
    "exist",
    "filter_color",
    "filter_shape",
    "filter_size",
    "filter_material",
    "relate",
    "query_shape",
    "query_color",
    "query_size",
    "query_material",
    "equal_color",
    "equal_shape",
    "equal_size",
    "equal_material",
    "equal_integer",
    "equal_object",
    "less_than",
    "greater_than",
    "same_size",
    "same_color",
    "same_material",
    "same_shape",
    "filter",
    "filter_unique",
    "filter_count",
    "filter_exist",
    "relate_filter",
    "relate_filter_unique",
    "relate_filter_count",
    "relate_filter_exist",
)
"""The 35 functions :func:`translate_clevr` accepts (27 basic + 8 fused)."""

# the kinds of values a node produces (used to check the program's wiring)
_SET, _OBJ, _NUM, _BOOL, _STR = "set", "object", "count", "bool", "answer"
_BRACKET = re.compile(r"^([a-z_]+)\[([^\]]*)\]$")
_ALL = "<all objects>"  # the symbolic scene


class ClevrTranslationError(ValueError):
    """The CLEVR program is malformed or uses an unknown function or value."""


@dataclass
class _Value:
    kind: str
    expr: str  # a variable name, an expression, or _ALL for the symbolic scene


def normalise_node(node: Any, index: int) -> tuple[str, list[int], list[str]]:
    """(function, inputs, value_inputs) of a node in any accepted CLEVR format."""
    if not isinstance(node, dict):
        raise ClevrTranslationError(f"CLEVR node {index} must be a dict, got {type(node).__name__}")
    fn = node.get("function", node.get("type"))
    if not isinstance(fn, str):
        raise ClevrTranslationError(f"CLEVR node {index} has no 'function' (or 'type'): {node!r}")
    values = node.get("value_inputs", node.get("side_inputs")) or []
    m = _BRACKET.match(fn)
    if m:
        fn, inner = m.group(1), m.group(2)
        values = [v for v in inner.split(",")] + list(values)
    inputs = node.get("inputs") or []
    if not all(isinstance(i, int) and 0 <= i < index for i in inputs):
        raise ClevrTranslationError(
            f"CLEVR node {index} ({fn}) has bad inputs {inputs!r} (must be earlier node indices)"
        )
    return fn, list(inputs), [str(v).strip().lower() for v in values if str(v).strip()]


def _lit(text: str) -> str:
    """A string literal, double-quoted when that is safe (the questions never hold quotes)."""
    return f'"{text}"' if '"' not in text and "\\" not in text else repr(text)


class _Translator:
    def __init__(self, depth_relations: bool = False) -> None:
        self.depth_relations = depth_relations  # front / behind from the depth model's closer()
        self.lines: list[str] = []
        self.values: list[_Value] = []
        self.objects_var: str | None = None

    # ---- helpers -------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("    " + line)

    def materialise(self, v: _Value) -> str:
        """The expression of a set; the symbolic scene becomes score(OBJECT_QUESTION, 1)."""
        if v.expr != _ALL:
            return v.expr
        if self.objects_var is None:
            self.objects_var = "objects"
            self.emit(f"objects = score({_lit(OBJECT_QUESTION)}, 1)  # all objects")
        return self.objects_var

    def arg(self, idx: int, inputs: list[int], kind: str, fn: str) -> _Value:
        if len(inputs) <= idx:
            raise ClevrTranslationError(
                f"CLEVR node {len(self.values)} ({fn}) needs {idx + 1} input(s), got {inputs!r}"
            )
        v = self.values[inputs[idx]]
        if v.kind != kind:
            raise ClevrTranslationError(
                f"CLEVR node {len(self.values)} ({fn}) expects a {kind} as input {idx}, node {inputs[idx]} gives a {v.kind}"
            )
        return v

    @staticmethod
    def check_value(value: str, fn: str, attribute: str | None = None) -> str:
        if value not in VALUE_TO_ATTRIBUTE:
            raise ClevrTranslationError(f"unknown CLEVR attribute value {value!r} in {fn}")
        if attribute is not None and VALUE_TO_ATTRIBUTE[value] != attribute:
            raise ClevrTranslationError(
                f"{fn} got {value!r}, which is a {VALUE_TO_ATTRIBUTE[value]}, not a {attribute}"
            )
        return value

    def filtered(self, base: _Value, values: list[str]) -> str:
        """Expression of ``base`` filtered by every value (the scene stays implicit)."""
        scores = [f"score({_lit(unary_question(v))}, 1)" for v in values]
        if base.expr == _ALL and not scores:
            return _ALL
        parts = ([] if base.expr == _ALL else [base.expr]) + scores
        return " & ".join(parts)

    @staticmethod
    def relate_expr(question: str, obj: str) -> str:
        return f'score({_lit(question)}, 2).contract({obj}("y")) & ~{obj}'

    # ---- one node --------------------------------------------------------------------
    def node(self, i: int, fn: str, inputs: list[int], values: list[str]) -> _Value:
        name = f"{i}"
        if fn == "scene":
            return _Value(_SET, _ALL)
        if fn in ("filter_color", "filter_shape", "filter_size", "filter_material"):
            attr = fn.removeprefix("filter_")
            if len(values) != 1:
                raise ClevrTranslationError(f"{fn} needs exactly one value, got {values!r}")
            value = self.check_value(values[0], fn, attr)
            return self.bind(_SET, "s" + name, self.filtered(self.arg(0, inputs, _SET, fn), [value]))
        if fn in ("filter", "filter_unique", "filter_count", "filter_exist"):
            vals = [self.check_value(v, fn) for v in values]
            s = self.filtered(self.arg(0, inputs, _SET, fn), vals)
            return self.finish(fn.removeprefix("filter"), name, s)
        if fn in ("relate", "relate_filter", "relate_filter_unique", "relate_filter_count", "relate_filter_exist"):
            obj = self.arg(0, inputs, _OBJ, fn).expr
            rels = [v for v in values if v in RELATIONS]
            if len(rels) != 1 or values[0] != rels[0] or (fn == "relate" and len(values) != 1):
                raise ClevrTranslationError(
                    f"{fn} needs one relation {RELATIONS} first in value_inputs, got {values!r}"
                )
            vals = [self.check_value(v, fn) for v in values[1:]]
            if self.depth_relations and rels[0] in DEPTH_RELATIONS:
                rel = f'{DEPTH_RELATIONS[rels[0]]}.contract({obj}("y")) & ~{obj}'
            else:
                rel = self.relate_expr(relation_question(rels[0]), obj)
            if fn == "relate":
                return self.bind(_SET, "s" + name, rel)
            s = self.filtered(_Value(_SET, rel), vals)
            return self.finish(fn.removeprefix("relate_filter"), name, s)
        if fn in ("same_color", "same_shape", "same_size", "same_material"):
            obj = self.arg(0, inputs, _OBJ, fn).expr
            return self.bind(_SET, "s" + name, self.relate_expr(same_question(fn.removeprefix("same_")), obj))
        if fn == "unique":
            return self.bind(_OBJ, "o" + name, f"{self.materialise(self.arg(0, inputs, _SET, fn))}.iota()")
        if fn in ("count", "exist"):
            return self.finish("_" + fn, name, self.arg(0, inputs, _SET, fn).expr)
        if fn in ("union", "intersect"):
            a, b = self.arg(0, inputs, _SET, fn), self.arg(1, inputs, _SET, fn)
            if _ALL in (a.expr, b.expr):  # scene | s = scene; scene & s = s
                keep = a if (a.expr == _ALL) == (fn == "union") else b
                self.emit(f"# (the scene {fn} a set is {'the scene' if keep.expr == _ALL else keep.expr})")
                return keep
            return self.bind(_SET, "s" + name, f"{a.expr} {'|' if fn == 'union' else '&'} {b.expr}")
        if fn in ("query_color", "query_shape", "query_size", "query_material"):
            obj = self.arg(0, inputs, _OBJ, fn).expr
            return self.bind(_STR, "a" + name, f"query({_lit(query_question(fn.removeprefix('query_')))}, {obj})")
        if fn in ("equal_color", "equal_shape", "equal_size", "equal_material"):
            a, b = self.arg(0, inputs, _STR, fn), self.arg(1, inputs, _STR, fn)
            return self.bind(_BOOL, "b" + name, f"{a.expr} == {b.expr}")
        if fn in ("equal_integer", "less_than", "greater_than"):
            a, b = self.arg(0, inputs, _NUM, fn), self.arg(1, inputs, _NUM, fn)
            op = {"equal_integer": "==", "less_than": "<", "greater_than": ">"}[fn]
            return self.bind(_BOOL, "b" + name, f"{a.expr} {op} {b.expr}")
        if fn == "equal_object":
            a, b = self.arg(0, inputs, _OBJ, fn), self.arg(1, inputs, _OBJ, fn)
            return self.bind(_BOOL, "b" + name, f"({a.expr} & {b.expr}).exists()")
        raise ClevrTranslationError(f"unknown CLEVR function {fn!r}; known: {', '.join(CLEVR_FUNCTIONS)}")

    def finish(self, suffix: str, name: str, s: str) -> _Value:
        """Bind set expression ``s`` and apply the fused tail: '', '_unique', '_count', '_exist'."""
        if s == _ALL:
            if suffix == "_count":
                return self.bind(_NUM, "c" + name, "n")
            if suffix == "_exist":
                return self.bind(_BOOL, "b" + name, "n > 0")
            if suffix == "":
                return _Value(_SET, _ALL)
            s = self.materialise(_Value(_SET, _ALL))
        if suffix == "":
            return self.bind(_SET, "s" + name, s)
        method = {"_unique": ("iota", _OBJ, "o"), "_count": ("count", _NUM, "c"), "_exist": ("exists", _BOOL, "b")}
        if suffix not in method:
            raise ClevrTranslationError(f"unknown fused suffix {suffix!r}")
        meth, kind, prefix = method[suffix]
        return self.bind(kind, prefix + name, f"{s if s.isidentifier() else f'({s})'}.{meth}()")

    def bind(self, kind: str, var: str, expr: str) -> _Value:
        self.emit(f"{var} = {expr}")
        return _Value(kind, var)


def translate_clevr(program: list[dict], depth_relations: bool = False) -> str:
    """NePTune source (``def execute(score, query, n)``) for a CLEVR functional program.

    ``depth_relations``: "in front of" / "behind" become the depth model's ``closer()`` /
    ``closer(farther=True)`` instead of a VLM relation question (config ``depth.symbolic_relations``).

    The last node is the answer: a bool (yes/no), a string (query), a count tensor or
    ``n`` (count). Raises :class:`ClevrTranslationError` for a malformed program.
    """
    if not isinstance(program, list) or not program:
        raise ClevrTranslationError(f"a CLEVR program must be a non-empty list of nodes, got {program!r:.200}")
    t = _Translator(depth_relations)
    for i, node in enumerate(program):
        fn, inputs, values = normalise_node(node, i)
        shown = f"{fn}[{', '.join(values)}]" if values else fn
        t.emit(f"# [{i}] {shown}" + (f" <- {', '.join(f'[{j}]' for j in inputs)}" if inputs else ""))
        t.values.append(t.node(i, fn, inputs, values))
    out = t.values[-1]
    result = t.materialise(out) if out.kind == _SET else out.expr
    t.emit(f"return {result}")
    return "def execute(score, query, n):\n" + "\n".join(t.lines) + "\n"


__all__ = ["CLEVR_FUNCTIONS", "OBJECT_QUESTION", "ClevrTranslationError", "normalise_node", "translate_clevr"]
