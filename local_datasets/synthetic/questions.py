"""CLEVR-style question generation: templates -> (English, functional program, answer).

Families (``meta["family"]``, from the program's last function): ``exist``, ``count``,
``query`` (query_<attr>), ``compare_attribute`` (equal_<attr> of two query_<attr>,
or equal_object) and ``compare_integer`` (equal_integer / less_than / greater_than
of two counts). Object references nest relate / same_<attr> hops (up to two) and
sets can be unions or intersections. About 40% of programs use the fused forms.

Like CLEVR's generator, a question is rejected when its program fails on the scene
(e.g. unique() of a non-singleton), when it is degenerate (the queried or compared
attribute is already named in the description, two compared descriptions are the
same, the two compared objects are the same object), or when it repeats a question
already asked about the scene. Answers come from the reference executor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from local_datasets.synthetic.descriptions import (
    ATTR_ORDER,
    ObjDesc,
    Unsatisfiable,
    emit_obj,
    emit_set,
    obj_text,
    sample_obj,
    sample_set,
    set_text,
)
from local_datasets.synthetic.reference_executor import ProgramExecutionError, execute_program, family_of

# question_family_index -> template name
TEMPLATES: tuple[str, ...] = (
    "exist",
    "count",
    *(f"query_{a}" for a in ATTR_ORDER),
    *(f"equal_{a}" for a in ATTR_ORDER),
    "equal_object",
    "equal_integer",
    "less_than",
    "greater_than",
)
_WEIGHTS = {"exist": 3, "count": 3, "query": 3, "equal": 2, "equal_object": 0.7, "compare_integer": 2}
FUSE_PROBABILITY = 0.4

_EXIST = ("Are there any {s}?", "Are any {s} visible?", "Do any {s} exist?")
_COUNT = ("How many {s} are there?", "What number of {s} are there?", "How many {s} are visible?")
_QUERY = {
    "size": ("What size is {o}?", "What is the size of {o}?", "How big is {o}?"),
    "color": ("What color is {o}?", "What is the color of {o}?", "What colour is {o}?"),
    "material": ("What material is {o}?", "What is {o} made of?", "What is the material of {o}?"),
    "shape": ("What shape is {o}?", "What is the shape of {o}?"),
}
_EQUAL = (
    "Does {a} have the same {attr} as {b}?",
    "Is the {attr} of {a} the same as that of {b}?",
    "Do {a} and {b} have the same {attr}?",
)
_EQUAL_OBJECT = ("Is {a} the same object as {b}?", "Are {a} and {b} the same object?")
_INTEGER = {
    "equal_integer": (
        "Are there the same number of {a} and {b}?",
        "Is the number of {a} the same as the number of {b}?",
    ),
    "less_than": ("Are there fewer {a} than {b}?", "Is the number of {a} less than the number of {b}?"),
    "greater_than": ("Are there more {a} than {b}?", "Is the number of {a} greater than the number of {b}?"),
}


@dataclass
class Question:
    text: str
    program: list[dict]
    answer: str
    family_index: int

    @property
    def family(self) -> str:
        return family_of(self.program)


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _depth(rng: random.Random) -> int:
    return rng.choices([0, 1, 2], weights=[3, 4, 2])[0]


def _sample_one(scene: dict, rng: random.Random) -> tuple[str, list[dict], str]:
    """One candidate (text, program, template); raises Unsatisfiable when degenerate."""
    fuse = rng.random() < FUSE_PROBABILITY
    prog: list[dict] = []
    kind = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
    if kind in ("exist", "count"):
        s = sample_set(scene, rng, _depth(rng))
        if s.kind in ("union", "intersect") and s.parts[0] == s.parts[1]:
            raise Unsatisfiable("identical operands")
        emit_set(s, prog, fuse, kind)
        return rng.choice(_EXIST if kind == "exist" else _COUNT).format(s=set_text(s, rng)), prog, kind
    if kind == "query":
        attr = rng.choice(ATTR_ORDER)
        o = sample_obj(scene, rng, _depth(rng), forbid={attr})
        _add_on_top(prog, "query_" + attr, [emit_obj(o, prog, fuse)])
        return _cap(rng.choice(_QUERY[attr]).format(o=obj_text(o, rng))), prog, f"query_{attr}"
    if kind in ("equal", "equal_object"):
        attr = rng.choice(ATTR_ORDER) if kind == "equal" else ""
        forbid = {attr} if attr else set()
        a = sample_obj(scene, rng, _depth(rng), forbid=forbid)
        b = sample_obj(scene, rng, _depth(rng), forbid=forbid)
        if _same_desc(a, b) or (kind == "equal" and a.obj == b.obj):
            raise Unsatisfiable("degenerate comparison")
        ia = emit_obj(a, prog, fuse)
        if kind == "equal_object":
            _add_on_top(prog, "equal_object", [ia, emit_obj(b, prog, fuse)])
            text = rng.choice(_EQUAL_OBJECT).format(a=obj_text(a, rng), b=obj_text(b, rng))
            return _cap(text), prog, "equal_object"
        qa = _add_on_top(prog, f"query_{attr}", [ia])
        qb = _add_on_top(prog, f"query_{attr}", [emit_obj(b, prog, fuse)])
        _add_on_top(prog, f"equal_{attr}", [qa, qb])
        text = rng.choice(_EQUAL).format(a=obj_text(a, rng), b=obj_text(b, rng), attr=attr)
        return _cap(text), prog, f"equal_{attr}"
    op = rng.choice(list(_INTEGER))
    a = sample_set(scene, rng, _depth(rng), allow_combo=rng.random() < 0.3)
    b = sample_set(scene, rng, _depth(rng), allow_combo=rng.random() < 0.3)
    if a == b:
        raise Unsatisfiable("identical sets compared")
    ca = emit_set(a, prog, fuse, "count")
    cb = emit_set(b, prog, fuse, "count")
    _add_on_top(prog, op, [ca, cb])
    return rng.choice(_INTEGER[op]).format(a=set_text(a, rng), b=set_text(b, rng)), prog, op


def _add_on_top(prog: list[dict], fn: str, inputs: list[int]) -> int:
    prog.append({"function": fn, "inputs": inputs, "value_inputs": []})
    return len(prog) - 1


def _same_desc(a: ObjDesc, b: ObjDesc) -> bool:
    return a == b or (a.kind == b.kind == "scene" and set(a.values) == set(b.values))


def generate_questions(scene: dict, rng: random.Random, k: int, max_tries: int | None = None) -> list[Question]:
    """Up to ``k`` distinct valid questions about ``scene`` (fewer only if tries run out)."""
    out: list[Question] = []
    seen: set[str] = set()
    tries = max_tries if max_tries is not None else 40 * k + 20
    for _ in range(tries):
        if len(out) >= k:
            break
        try:
            text, prog, template = _sample_one(scene, rng)
            answer = execute_program(prog, scene)
        except (Unsatisfiable, ProgramExecutionError):
            continue
        if text in seen:
            continue
        seen.add(text)
        out.append(Question(text, prog, answer, TEMPLATES.index(template)))
    return out
