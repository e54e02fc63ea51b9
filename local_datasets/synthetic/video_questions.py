"""Temporal multiple-choice questions about a synthetic video, and their reference answers.

A question is ``{"question", "options", "answer_index", "family", "qtype", "program"}``; its
``program`` (``{"op": family, "target": ..., "options": [...]}``) is what the symbolic
translator (code_generator/video_translator.py) turns into a program over frames, and what
:func:`reference_answer` evaluates on the *annotation's events* (never on per-frame
perception), so a run that reproduces the reference answers checks the whole video path.

Families (``qtype``: the NeXT-QA question type each one mirrors):

- ``enter_first`` (TP): "Which object enters the scene first?"
- ``left_before`` (TP): "Which object leaves the scene before the X enters?"
- ``moving_while`` (TC): "Which object is moving when the X enters the scene?"
- ``entered_after`` (TN): "Which object enters the scene after the X starts moving?"
- ``why_moving`` (CW): "Why does the X start moving?" (options: "the Y hits it")
- ``count_when`` (DC): "How many objects are in the scene when the X leaves?"

A question is only asked when exactly one option is right with a margin of frames (no other
event within two frames of the ones compared), so perception that is right frame by frame gets
it right. Add a family: its text and options in :func:`_candidates`, its semantics in
:data:`_REFERENCE`, its translation in the translator, and its qtype in :data:`FAMILIES`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

FAMILIES: dict[str, str] = {
    "enter_first": "TP",
    "left_before": "TP",
    "moving_while": "TC",
    "entered_after": "TN",
    "why_moving": "CW",
    "count_when": "DC",
}
MARGIN = 2  # frames between the events a question compares
NUM_OPTIONS = 4


class NoAnswer(ValueError):
    """The question has no single right option on this video."""


def _desc(obj: dict[str, Any]) -> str:
    return str(obj["name"])


class _Video:
    """Read access to one annotation: objects by description, events, per-frame presence and motion."""

    def __init__(self, ann: dict[str, Any]) -> None:
        self.ann = ann
        self.T = int(ann["num_frames"])
        self.by_desc = {_desc(o): o for o in ann["objects"]}
        self.present = [{o["id"] for o in f["objects"]} for f in ann["frames"]]
        self.moving = [{o["id"] for o in f["objects"] if o["moving"]} for f in ann["frames"]]

    def obj(self, desc: str) -> dict[str, Any]:
        if desc not in self.by_desc:
            raise NoAnswer(f"no {desc} in this video")
        return self.by_desc[desc]

    def event(self, kind: str, obj_id: int) -> int | None:
        frames = [e["frame"] for e in self.ann["events"] if e["type"] == kind and e["object"] == obj_id]
        return frames[0] if frames else None

    def moving_around(self, obj_id: int, k: int) -> bool:
        return all(obj_id in self.moving[j] for j in range(max(0, k - 1), min(self.T, k + 2)))

    def still_around(self, obj_id: int, k: int) -> bool:
        return all(obj_id not in self.moving[j] for j in range(max(0, k - 1), min(self.T, k + 2)))


def _only(hits: list[bool]) -> int:
    if sum(hits) != 1:
        raise NoAnswer(f"{sum(hits)} options are right")
    return hits.index(True)


def _enter_first(v: _Video, prog: dict[str, Any]) -> int:
    enters = [v.event("enter", v.obj(d)["id"]) for d in prog["options"]]
    entered = [e for e in enters if e is not None]
    if not entered:
        raise NoAnswer("no option enters")
    first = min(entered)
    if any(e != first and e - first <= MARGIN for e in entered):
        raise NoAnswer("two options enter at about the same time")
    return _only([e == first for e in enters])


def _left_before(v: _Video, prog: dict[str, Any]) -> int:
    k = v.event("enter", v.obj(prog["target"])["id"])
    if k is None:
        raise NoAnswer("the target never enters")
    leaves = [v.event("leave", v.obj(d)["id"]) for d in prog["options"]]
    if any(x is not None and abs(x - k) <= MARGIN for x in leaves):
        raise NoAnswer("an option leaves about when the target enters")
    return _only([x is not None and x < k for x in leaves])


def _moving_while(v: _Video, prog: dict[str, Any]) -> int:
    k = v.event("enter", v.obj(prog["target"])["id"])
    if k is None:
        raise NoAnswer("the target never enters")
    ids = [v.obj(d)["id"] for d in prog["options"]]
    if any(not v.moving_around(i, k) and not v.still_around(i, k) for i in ids):
        raise NoAnswer("an option starts or stops about when the target enters")
    return _only([v.moving_around(i, k) for i in ids])


def _entered_after(v: _Video, prog: dict[str, Any]) -> int:
    k = v.event("start", v.obj(prog["target"])["id"])
    if k is None:
        raise NoAnswer("the target never moves")
    enters = [v.event("enter", v.obj(d)["id"]) for d in prog["options"]]
    if any(e is not None and abs(e - k) <= MARGIN for e in enters):
        raise NoAnswer("an option enters about when the target starts moving")
    return _only([e is not None and e > k for e in enters])


def _why_moving(v: _Video, prog: dict[str, Any]) -> int:
    target = v.obj(prog["target"])["id"]
    hitters = {e["object"] for e in v.ann["events"] if e["type"] == "collide" and e.get("other") == target}
    if v.event("start", target) is None:
        raise NoAnswer("the target never moves")
    return _only([v.obj(d)["id"] in hitters for d in prog["options"]])


def _count_when(v: _Video, prog: dict[str, Any]) -> int:
    k = v.event("leave", v.obj(prog["target"])["id"])
    if k is None:
        raise NoAnswer("the target never leaves")
    last = k - 1
    if any(
        abs(e["frame"] - k) <= MARGIN for e in v.ann["events"] if e["type"] in ("enter", "leave") and e["frame"] != k
    ):
        raise NoAnswer("another object enters or leaves about then")
    count = len(v.present[last])
    return _only([int(o) == count for o in prog["options"]])


_REFERENCE: dict[str, Callable[[_Video, dict[str, Any]], int]] = {
    "enter_first": _enter_first,
    "left_before": _left_before,
    "moving_while": _moving_while,
    "entered_after": _entered_after,
    "why_moving": _why_moving,
    "count_when": _count_when,
}


def reference_answer(program: dict[str, Any], ann: dict[str, Any]) -> int:
    """The index of the right option of ``program`` on the video annotated by ``ann`` (from its events)."""
    return _REFERENCE[program["op"]](_Video(ann), program)


# ---- question texts and options ------------------------------------------------------
def _object_options(rng: random.Random, v: _Video, must: list[str], exclude: set[str]) -> list[str]:
    others = [d for d in v.by_desc if d not in must and d not in exclude]
    rng.shuffle(others)
    options = list(dict.fromkeys(must)) + others
    options = options[: max(NUM_OPTIONS, len(must))]
    rng.shuffle(options)
    return options


def _candidates(rng: random.Random, v: _Video, family: str) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(question text, program, option texts) candidates of one family on one video."""
    descs = list(v.by_desc)
    enterers = [d for d in descs if v.event("enter", v.by_desc[d]["id"]) is not None]
    leavers = [d for d in descs if v.event("leave", v.by_desc[d]["id"]) is not None]
    movers = [d for d in descs if v.event("start", v.by_desc[d]["id"]) is not None]
    out: list[tuple[str, dict[str, Any], list[str]]] = []

    def objects(text: str, op: str, target: str | None, must: list[str], exclude: set[str]) -> None:
        opts = _object_options(rng, v, must, exclude)
        prog = {"op": op, "target": target, "options": opts}
        out.append((text, prog, [f"the {d}" for d in opts]))

    if family == "enter_first" and len(enterers) >= 2:
        objects("Which object enters the scene first?", family, None, enterers, set())
    for x in enterers:
        if family == "left_before":
            objects(f"Which object leaves the scene before the {x} enters?", family, x, leavers, {x})
        if family == "moving_while":
            objects(f"Which object is moving when the {x} enters the scene?", family, x, movers, {x})
    for x in movers:
        if family == "entered_after":
            objects(f"Which object enters the scene after the {x} starts moving?", family, x, enterers, {x})
        if family == "why_moving" and any(e["type"] == "collide" and e.get("other") == v.by_desc[x]["id"]
                                          for e in v.ann["events"]):  # fmt: skip
            opts = _object_options(rng, v, [], {x})
            hitter = next(e["object"] for e in v.ann["events"] if e["type"] == "collide")
            hit_desc = _desc(next(o for o in v.ann["objects"] if o["id"] == hitter))
            if hit_desc not in opts:
                opts[rng.randrange(len(opts))] = hit_desc
            prog = {"op": family, "target": x, "options": opts}
            out.append((f"Why does the {x} start moving?", prog, [f"the {d} hits it" for d in opts]))
    if family == "count_when":
        for x in leavers:
            k = v.event("leave", v.by_desc[x]["id"])
            count = len(v.present[k - 1])  # type: ignore[operator]
            low = max(1, count - rng.randint(0, NUM_OPTIONS - 1))
            nums = [str(n) for n in range(low, low + NUM_OPTIONS)]
            prog = {"op": family, "target": x, "options": nums}
            out.append((f"How many objects are in the scene when the {x} leaves?", prog, nums))
    return out


def generate_questions(ann: dict[str, Any], rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Up to ``count`` questions about one video, from different families first, answers from the reference."""
    v = _Video(ann)
    families = list(FAMILIES)
    rng.shuffle(families)
    pool: list[list[dict[str, Any]]] = []
    for family in families:
        found = []
        for text, prog, options in _candidates(rng, v, family):
            try:
                answer = reference_answer(prog, ann)
            except NoAnswer:
                continue
            found.append(
                {
                    "question": text,
                    "options": options,
                    "answer_index": answer,
                    "family": family,
                    "qtype": FAMILIES[family],
                    "program": prog,
                }  # fmt: skip
            )
        if found:
            pool.append(found)
    out: list[dict[str, Any]] = []
    while len(out) < count and any(pool):
        for found in pool:  # one per family, round robin
            if found and len(out) < count:
                out.append(found.pop(rng.randrange(len(found))))
    return out


__all__ = ["FAMILIES", "NoAnswer", "generate_questions", "reference_answer"]
