"""Object and object-set descriptions: sampled against a scene, emitted as CLEVR programs and English.

An :class:`ObjDesc` names exactly one object (filters over the whole scene, over the
objects related to another described object, or over the objects sharing an
attribute with it); a :class:`SetDesc` names a set (the same bases, plus union of two
sets and intersection of two relate-sets). Both are emitted as official CLEVR node
lists, either in CLEVR's primitive form (``scene, filter_color, unique, ...``) or in
the fused form (``filter_unique``, ``relate_filter_count``, ...; value_inputs as in
:mod:`local_datasets.synthetic.reference_executor`).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from neptune_core.clevr_vocab import ATTRIBUTES, RELATION_PHRASES, RELATIONS, VALUE_TO_ATTRIBUTE

ATTR_ORDER: tuple[str, ...] = ("size", "color", "material", "shape")  # CLEVR's filter order
WORDS: dict[str, tuple[str, ...]] = {  # surface forms (first = canonical); all resolve via clevr_vocab.SYNONYMS
    "large": ("large", "big"),
    "small": ("small", "tiny"),
    "metal": ("metal", "metallic", "shiny"),
    "rubber": ("rubber", "matte"),
    "sphere": ("sphere", "ball"),
    "cube": ("cube", "block"),
}


class Unsatisfiable(Exception):
    """The sampled description cannot be realised in this scene (the caller samples again)."""


@dataclass
class ObjDesc:
    obj: int
    kind: str  # scene | relate | same
    values: tuple[str, ...] = ()
    anchor: ObjDesc | None = None
    rel: str = ""  # relation (relate) or attribute (same)


@dataclass
class SetDesc:
    kind: str  # scene | relate | same | union | intersect
    values: tuple[str, ...] = ()
    anchor: ObjDesc | None = None
    rel: str = ""
    parts: list[SetDesc] = field(default_factory=list)


def _sorted(values: Any) -> tuple[str, ...]:
    return tuple(sorted(values, key=lambda v: ATTR_ORDER.index(VALUE_TO_ATTRIBUTE[v])))


def _keep(scene: dict, objs: list[int], values: tuple[str, ...]) -> list[int]:
    return [i for i in objs if all(scene["objects"][i][VALUE_TO_ATTRIBUTE[v]] == v for v in values)]


def _same(scene: dict, o: int, attr: str) -> list[int]:
    objs = scene["objects"]
    return [j for j in range(len(objs)) if j != o and objs[j][attr] == objs[o][attr]]


def identify(
    scene: dict, o: int, candidates: list[int], rng: random.Random, forbid: set[str], min_values: int
) -> tuple[str, ...]:
    """Attribute values of ``o`` that single it out among ``candidates`` (a random minimal set, sometimes one more)."""
    attrs = [a for a in ATTR_ORDER if a not in forbid]
    obj = scene["objects"][o]
    for k in range(min_values, len(attrs) + 1):
        combos = list(itertools.combinations(attrs, k))
        rng.shuffle(combos)
        for combo in combos:
            values = tuple(obj[a] for a in combo)
            if _keep(scene, candidates, values) == [o]:
                extra = [a for a in attrs if a not in combo]
                if extra and rng.random() < 0.25:
                    values += (obj[rng.choice(extra)],)
                return _sorted(values)
    raise Unsatisfiable(f"object {o} cannot be singled out")


def sample_obj(scene: dict, rng: random.Random, depth: int, forbid: set[str] = frozenset()) -> ObjDesc:  # type: ignore[assignment]
    """A description of one object, with up to ``depth`` nested relate/same hops."""
    n = len(scene["objects"])
    kind = "scene" if depth <= 0 else rng.choices(["scene", "relate", "same"], weights=[2, 5, 1.2])[0]
    if kind == "scene":
        o = rng.randrange(n)
        return ObjDesc(o, "scene", identify(scene, o, list(range(n)), rng, set(forbid), 1))
    anchor = sample_obj(scene, rng, depth - 1)
    if kind == "relate":
        rel = rng.choice(RELATIONS)
        cands = list(scene["relationships"][rel][anchor.obj])
    else:
        rel = rng.choice([a for a in ATTR_ORDER if a not in forbid])
        cands = _same(scene, anchor.obj, rel)
    if not cands:
        raise Unsatisfiable("empty relation")
    o = rng.choice(cands)
    values = identify(scene, o, cands, rng, set(forbid) | ({rel} if kind == "same" else set()), 0)
    return ObjDesc(o, kind, values, anchor, rel)


def _random_values(scene: dict, rng: random.Random, k: int, forbid: set[str] = frozenset()) -> tuple[str, ...]:  # type: ignore[assignment]
    attrs = [a for a in ATTR_ORDER if a not in forbid]
    chosen = rng.sample(attrs, min(k, len(attrs)))
    if rng.random() < 0.6:  # borrow from a real object: the set is more likely non-empty
        obj = rng.choice(scene["objects"])
        return _sorted(obj[a] for a in chosen)
    return _sorted(rng.choice(ATTRIBUTES[a]) for a in chosen)


def sample_set(scene: dict, rng: random.Random, depth: int, allow_combo: bool = True) -> SetDesc:
    """A description of a set of objects (for exist / count / compare_integer)."""
    kinds = ["scene", "relate", "same", "union", "intersect"] if allow_combo else ["scene", "relate", "same"]
    weights = [4, 4 if depth > 0 else 0, 1.2 if depth > 0 else 0, 1.3, 1.3 if depth > 0 else 0][: len(kinds)]
    kind = rng.choices(kinds, weights=weights)[0]
    if kind == "scene":
        return SetDesc("scene", _random_values(scene, rng, rng.choice([1, 1, 2, 2, 3])))
    if kind in ("relate", "same"):
        anchor = sample_obj(scene, rng, depth - 1)
        rel = rng.choice(RELATIONS) if kind == "relate" else rng.choice(ATTR_ORDER)
        forbid = {rel} if kind == "same" else set()
        return SetDesc(kind, _random_values(scene, rng, rng.choice([0, 1, 1, 2]), forbid), anchor, rel)
    if kind == "union":
        parts = [sample_set(scene, rng, min(depth, 1), allow_combo=False) for _ in range(2)]
        parts = [p if p.kind != "same" else SetDesc("scene", _random_values(scene, rng, 1)) for p in parts]
        return SetDesc("union", (), parts=parts)
    parts = [SetDesc("relate", (), sample_obj(scene, rng, depth - 1), rng.choice(RELATIONS)) for _ in range(2)]
    return SetDesc("intersect", _random_values(scene, rng, rng.choice([0, 1, 1])), parts=parts)


# ---- programs -----------------------------------------------------------------------
def _add(prog: list[dict], fn: str, inputs: list[int] | None = None, values: list[str] | None = None) -> int:
    prog.append({"function": fn, "inputs": list(inputs or []), "value_inputs": list(values or [])})
    return len(prog) - 1


def _filters(prog: list[dict], base: int, values: tuple[str, ...], fuse: bool, term: str) -> int:
    suffix = f"_{term}" if term else ""
    if fuse and values:
        return _add(prog, "filter" + suffix, [base], list(values))
    for v in values:
        base = _add(prog, f"filter_{VALUE_TO_ATTRIBUTE[v]}", [base], [v])
    return _add(prog, term, [base]) if term else base


def emit_obj(d: ObjDesc, prog: list[dict], fuse: bool) -> int:
    """Append nodes computing the described object; return the index of the last one."""
    return emit_set(SetDesc(d.kind, d.values, d.anchor, d.rel), prog, fuse, "unique")


def emit_set(d: SetDesc, prog: list[dict], fuse: bool, term: str = "") -> int:
    """Append nodes for the set (then ``term``: "", unique, count or exist); return the last index."""
    if d.kind == "scene":
        base = _add(prog, "scene")
    elif d.kind == "relate":
        anchor = emit_obj(d.anchor, prog, fuse)  # type: ignore[arg-type]
        if fuse:
            return _add(prog, "relate_filter" + (f"_{term}" if term else ""), [anchor], [d.rel, *d.values])
        base = _add(prog, "relate", [anchor], [d.rel])
    elif d.kind == "same":
        base = _add(prog, f"same_{d.rel}", [emit_obj(d.anchor, prog, fuse)])  # type: ignore[arg-type]
    else:
        a, b = (emit_set(p, prog, fuse) for p in d.parts)
        base = _add(prog, d.kind, [a, b])
    return _filters(prog, base, d.values, fuse, term)


# ---- English ------------------------------------------------------------------------
def _word(v: str, rng: random.Random, plural: bool = False) -> str:
    w = rng.choice(WORDS.get(v, (v,))) if rng.random() < 0.3 else v
    return w + "s" if plural else w


def noun_phrase(values: tuple[str, ...], rng: random.Random, plural: bool) -> str:
    adjs = [_word(v, rng) for v in values if VALUE_TO_ATTRIBUTE[v] != "shape"]
    shapes = [v for v in values if VALUE_TO_ATTRIBUTE[v] == "shape"]
    noun = (
        _word(shapes[0], rng, plural)
        if shapes
        else rng.choice(["things", "objects"] if plural else ["thing", "object"])
    )
    return " ".join([*adjs, noun])


def obj_text(d: ObjDesc, rng: random.Random) -> str:
    """'the red cube', 'the small thing that is left of the metal sphere', ..."""
    np_ = noun_phrase(d.values, rng, plural=False)
    if d.kind == "scene":
        return f"the {np_}"
    anchor = obj_text(d.anchor, rng)  # type: ignore[arg-type]
    if d.kind == "relate":
        that = rng.choice(["that is ", ""])
        return f"the {np_} {that}{RELATION_PHRASES[d.rel]} {anchor}"
    return f"the other {np_} that has the same {d.rel} as {anchor}"


def set_text(d: SetDesc, rng: random.Random) -> str:
    """Plural phrase without article: 'red cubes', 'things that are either ... or ...'."""
    np_ = noun_phrase(d.values, rng, plural=True)
    if d.kind == "scene":
        return np_
    if d.kind == "relate":
        that = rng.choice(["that are ", ""])
        return f"{np_} {that}{RELATION_PHRASES[d.rel]} {obj_text(d.anchor, rng)}"  # type: ignore[arg-type]
    if d.kind == "same":
        return f"other {np_} that have the same {d.rel} as {obj_text(d.anchor, rng)}"  # type: ignore[arg-type]
    if d.kind == "union":
        return f"things that are either {set_text(d.parts[0], rng)} or {set_text(d.parts[1], rng)}"
    a, b = d.parts
    return (
        f"{np_} that are both {RELATION_PHRASES[a.rel]} {obj_text(a.anchor, rng)} "  # type: ignore[arg-type]
        f"and {RELATION_PHRASES[b.rel]} {obj_text(b.anchor, rng)}"  # type: ignore[arg-type]
    )
