"""Reference executor for CLEVR functional programs over CLEVR scene dicts.

A program is the official node list: ``[{"function": str, "inputs": [int...],
"value_inputs": [str...]}, ...]``; each node's ``inputs`` index earlier nodes and the
last node is the answer. Semantics follow CLEVR's ``question_engine.py``:

* object sets are sorted lists of object indices, objects are indices;
* ``relate(o, rel)`` = ``scene["relationships"][rel][o]`` (the objects that are
  ``rel`` of ``o``); ``same_<attr>(o)`` = the *other* objects sharing ``o``'s attribute;
* ``equal_<attr>`` compares two attribute values (outputs of ``query_<attr>``),
  ``equal_object`` two objects, ``equal_integer``/``less_than``/``greater_than`` two counts.

Fused forms (as in CLEVR's templates) and their ``value_inputs``:

* ``filter``, ``filter_unique``, ``filter_count``, ``filter_exist``: one input (a set);
  ``value_inputs`` = attribute values to keep, in any order (e.g. ``["large", "red"]``);
  an empty list filters nothing.
* ``relate_filter``, ``relate_filter_unique``, ``relate_filter_count``,
  ``relate_filter_exist``: one input (an object); ``value_inputs`` = ``[relation,
  *attribute values]`` (e.g. ``["left", "metal", "cube"]``).

Answers are strings exactly as in CLEVR's question files: "yes"/"no", counts as
decimal strings, attribute values as themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from neptune_core.clevr_vocab import ATTRIBUTES, RELATIONS, VALUE_TO_ATTRIBUTE

CLEVR_FUNCTIONS: frozenset[str] = frozenset(
    {"scene", "unique", "union", "intersect", "count", "exist", "relate", "equal_integer", "less_than"}
    | {"greater_than", "equal_object"}
    | {f"{p}_{a}" for p in ("filter", "query", "equal", "same") for a in ATTRIBUTES}
    | {"filter", "filter_unique", "filter_count", "filter_exist"}
    | {"relate_filter", "relate_filter_unique", "relate_filter_count", "relate_filter_exist"}
)
assert len(CLEVR_FUNCTIONS) == 35

FAMILIES: tuple[str, ...] = ("exist", "count", "query", "compare_attribute", "compare_integer")


class ProgramExecutionError(ValueError):
    """A program cannot be executed on a scene (bad node, bad input, non-unique unique())."""


def family_of(program: Sequence[dict[str, Any]]) -> str:
    """The CLEVR question family from the last function of a program."""
    if not program:
        raise ProgramExecutionError("empty program has no family")
    fn = program[-1]["function"]
    if fn == "exist" or fn.endswith("_exist"):
        return "exist"
    if fn == "count" or fn.endswith("_count"):
        return "count"
    if fn.startswith("query_"):
        return "query"
    if fn in ("equal_integer", "less_than", "greater_than"):
        return "compare_integer"
    if fn.startswith("equal_"):
        return "compare_attribute"
    raise ProgramExecutionError(f"program ends in '{fn}', which does not produce an answer")


def _keep(scene: dict, objs: list[int], values: Sequence[str]) -> list[int]:
    out = objs
    for value in values:
        attr = VALUE_TO_ATTRIBUTE.get(value)
        if attr is None:
            raise ProgramExecutionError(f"unknown attribute value {value!r}")
        out = [i for i in out if scene["objects"][i][attr] == value]
    return out


def _filter_attr(scene: dict, objs: list[int], attr: str, value: str) -> list[int]:
    if VALUE_TO_ATTRIBUTE.get(value) != attr:
        raise ProgramExecutionError(f"filter_{attr} got {value!r}, which is not a {attr}")
    return _keep(scene, objs, [value])


def _unique(objs: list[int]) -> int:
    if not isinstance(objs, list):
        raise ProgramExecutionError(f"unique() expects an object set, got {objs!r}")
    if len(objs) != 1:
        raise ProgramExecutionError(f"unique() applied to a set of {len(objs)} objects {objs}, expected exactly 1")
    return objs[0]


def _relate(scene: dict, obj: int, rel: str) -> list[int]:
    if rel not in RELATIONS:
        raise ProgramExecutionError(f"unknown relation {rel!r}; known: {', '.join(RELATIONS)}")
    if not isinstance(obj, int) or isinstance(obj, bool):
        raise ProgramExecutionError(f"relate expects one object, got {obj!r}")
    return list(scene["relationships"][rel][obj])


def _same(scene: dict, obj: int, attr: str) -> list[int]:
    objects = scene["objects"]
    return [j for j in range(len(objects)) if j != obj and objects[j][attr] == objects[obj][attr]]


def _all(scene: dict) -> list[int]:
    return list(range(len(scene["objects"])))


def _set_op(op: Callable[[set, set], set]) -> Callable[..., list[int]]:
    return lambda scene, vals, a, b: sorted(op(set(a), set(b)))


def _attr_handlers() -> dict[str, Callable[..., Any]]:
    h: dict[str, Callable[..., Any]] = {}
    for attr in ATTRIBUTES:
        h[f"filter_{attr}"] = lambda scene, vals, objs, _a=attr: _filter_attr(scene, objs, _a, vals[0])
        h[f"query_{attr}"] = lambda scene, vals, o, _a=attr: scene["objects"][o][_a]
        h[f"equal_{attr}"] = lambda scene, vals, a, b: a == b
        h[f"same_{attr}"] = lambda scene, vals, o, _a=attr: _same(scene, o, _a)
    return h


_HANDLERS: dict[str, Callable[..., Any]] = {
    "scene": lambda scene, vals: _all(scene),
    "unique": lambda scene, vals, objs: _unique(objs),
    "union": _set_op(set.union),
    "intersect": _set_op(set.intersection),
    "count": lambda scene, vals, objs: len(objs),
    "exist": lambda scene, vals, objs: len(objs) > 0,
    "relate": lambda scene, vals, o: _relate(scene, o, vals[0]),
    "equal_integer": lambda scene, vals, a, b: a == b,
    "less_than": lambda scene, vals, a, b: a < b,
    "greater_than": lambda scene, vals, a, b: a > b,
    "equal_object": lambda scene, vals, a, b: a == b,
    "filter": lambda scene, vals, objs: _keep(scene, objs, vals),
    "filter_unique": lambda scene, vals, objs: _unique(_keep(scene, objs, vals)),
    "filter_count": lambda scene, vals, objs: len(_keep(scene, objs, vals)),
    "filter_exist": lambda scene, vals, objs: len(_keep(scene, objs, vals)) > 0,
    "relate_filter": lambda scene, vals, o: _keep(scene, _relate(scene, o, vals[0]), vals[1:]),
    "relate_filter_unique": lambda scene, vals, o: _unique(_keep(scene, _relate(scene, o, vals[0]), vals[1:])),
    "relate_filter_count": lambda scene, vals, o: len(_keep(scene, _relate(scene, o, vals[0]), vals[1:])),
    "relate_filter_exist": lambda scene, vals, o: len(_keep(scene, _relate(scene, o, vals[0]), vals[1:])) > 0,
    **_attr_handlers(),
}
_ARITY = {"scene": 0, "union": 2, "intersect": 2, "equal_integer": 2, "less_than": 2, "greater_than": 2}
_ARITY.update({"equal_object": 2, **{f"equal_{a}": 2 for a in ATTRIBUTES}})
_NEEDS_VALUE = {"relate", *(f"filter_{a}" for a in ATTRIBUTES), *(n for n in _HANDLERS if n.startswith("relate_"))}


def execute_program_raw(program: Sequence[dict[str, Any]], scene: dict) -> list[Any]:
    """Run every node; return the list of node outputs (sets, objects, ints, bools, values)."""
    if not program:
        raise ProgramExecutionError("empty program")
    outputs: list[Any] = []
    for k, node in enumerate(program):
        fn = node.get("function")
        handler = _HANDLERS.get(fn)
        if handler is None:
            raise ProgramExecutionError(f"node {k}: unknown function {fn!r}")
        inputs = list(node.get("inputs", []))
        vals = [str(v) for v in node.get("value_inputs", [])]
        if len(inputs) != _ARITY.get(fn, 1) or any(not 0 <= i < k for i in inputs):
            raise ProgramExecutionError(f"node {k} ({fn}): bad inputs {inputs}")
        if fn in _NEEDS_VALUE and not vals:
            raise ProgramExecutionError(f"node {k} ({fn}): needs value_inputs")
        outputs.append(handler(scene, vals, *(outputs[i] for i in inputs)))
    return outputs


def format_answer(value: Any) -> str:
    """A final node output as CLEVR writes answers."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise ProgramExecutionError(f"program ends in an object set or object ({value!r}), not an answer")


def execute_program(program: Sequence[dict[str, Any]], scene: dict) -> str:
    """The CLEVR answer string of ``program`` on ``scene``."""
    return format_answer(execute_program_raw(program, scene)[-1])
