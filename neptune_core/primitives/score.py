"""``score(question, num_objects=1, type=None, image=0)``: p(yes) of a yes/no question, as a ProbabilisticTensor."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import torch

from neptune_core.executor.guards import AgentError
from neptune_core.executor.lazy_score import LazyEntry, fetch_entries, lazy_relation
from neptune_core.primitives import images
from neptune_core.primitives.base import (
    CallContext,
    KnownCall,
    Limits,
    Primitive,
    SandboxRun,
    check_question,
    trace_probs,
)
from probabilistic_tensor import LazyPolicy, ProbabilisticTensor, Semantics
from vision_agents.base import MemoizedAgent
from vision_agents.prompting import class_question

DOC = (
    """Ask the vision model a yes/no question; returns p(yes) as a ProbabilisticTensor.

num_objects=0: a 0-d tensor about the whole image, e.g. score("Is it daytime?", 0).
num_objects=1: a tensor over variable "x", one value per box (box i marked in red),
    e.g. score("Is the object in the red box a cube?").
num_objects=2: a tensor over variables ("x", "y"), n x n (x = subject in the red box,
    y = object in the green box), e.g. score("Is the red-box object left of the green-box object?", 2).
type="class": the question is a class name (e.g. score("person", 1, type="class")) and the model
    is asked whether the box holds one; any other type is a label recorded in the trace.
"""
    + images.DOC
)

_VARS: dict[int, tuple[str, ...]] = {0: (), 1: ("x",), 2: ("x", "y")}


def bind(
    limits: Limits,
    question: str,
    num_objects: int = 1,
    type: str | None = None,  # noqa: A002
    image: int = 0,
) -> dict[str, Any]:
    check_question("score", question, limits)
    images.check_image("score", image, limits)
    if isinstance(num_objects, bool) or not isinstance(num_objects, int) or num_objects not in (0, 1, 2):
        raise ValueError(f"score() num_objects must be 0, 1 or 2, got {num_objects!r:.80}")
    if type is not None:
        check_question("score", type, limits, what="type")
        if type == "class" and not question.strip().rstrip("?").strip():
            raise ValueError("a class question needs a class name")
    return {"question": question, "num_objects": num_objects, "type": type, "image": image}


def run(ctx: CallContext, request: dict[str, Any]) -> torch.Tensor | dict[str, Any]:
    question, arity, kind = request["question"], request["num_objects"], request["type"]
    if kind == "class":
        question = class_question(question)
    image, boxes = ctx.view(request["image"])
    if arity == 2 and ctx.lazy is not None and boxes:  # a lazy relation: pairs come with score_pairs
        entry: dict[str, Any] = {"primitive": "score", "question": question, "arity": 2, "type": kind}
        if ctx.several_images:
            entry["image"] = request["image"]
        ctx.relations.append((question, LazyEntry(entry, len(boxes)), request["image"]))
        ctx.record(entry)
        return {"relation": len(ctx.relations) - 1, "n": len(boxes), "mass_threshold": ctx.lazy.mass_threshold}
    shape = (len(boxes),) * arity
    infos: list[dict[str, Any]] = [{}]
    if not boxes and arity > 0:
        data = torch.zeros(shape)
    else:
        agent = ctx.agent
        out, infos = ctx.agent_call("score", question, lambda: agent.score_with_info(image, boxes, [question], arity))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, *shape) or len(infos) != 1:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else out.__class__.__name__
            raise AgentError(f"vision agent '{agent.name}' returned {got} for score(); expected {(1, *shape)}")
        data = out[0]
    ctx.record(_entry(ctx, request, question, data, infos[0]))
    return data


def _entry(ctx: CallContext, request: dict[str, Any], question: str, data: torch.Tensor, info: dict[str, Any]) -> dict:
    """The trace entry of a (non-lazy) call: ``question`` as asked (a class question spelled out), its values."""
    entry = {
        "primitive": "score",
        "question": question,
        "arity": request["num_objects"],
        "type": request["type"],
        "probs": trace_probs(data),
    }
    if ctx.several_images:
        entry["image"] = request["image"]
    if info:
        entry["info"] = info
    return entry


def known_call(ctx: CallContext, request: dict[str, Any]) -> KnownCall | None:
    """What :func:`run` records and counts for ``request`` when the agent's memo holds its row, found
    without calling the agent (``Primitive.known``); None for a call that would reach the model, a
    lazy relation, or an agent that cannot say (not a MemoizedAgent)."""
    agent = ctx.agent
    image, boxes = ctx.view(request["image"])
    arity = request["num_objects"]
    if not isinstance(agent, MemoizedAgent) or (arity > 0 and not boxes) or (arity == 2 and ctx.lazy is not None):
        return None
    question = class_question(request["question"]) if request["type"] == "class" else request["question"]
    found = agent.held(image, boxes, question, arity)
    if found is None:
        return None
    row, hits, info = found
    return KnownCall("score", _entry(ctx, request, question, row, info), hits)


def predict(request: dict[str, Any], run: SandboxRun) -> dict[str, Any] | None:
    """A lazy relation's handle, as :func:`run` gives it: the run's next relation index, its image's boxes."""
    n = run.limits.boxes_in(request["image"])
    if request["num_objects"] != 2 or run.mass_threshold is None or n == 0:
        return None
    run.handles += 1
    return {"relation": run.handles - 1, "n": n, "mass_threshold": run.mass_threshold}


def wrap(request: dict[str, Any], reply: Any, semantics: Semantics, forward: Any) -> ProbabilisticTensor:
    if isinstance(reply, dict):  # a lazy relation (the parent's reply comes from trusted code)
        relation = int(reply["relation"])

        def fetch(entries: list[tuple[int, ...]], dropped_mass: float) -> torch.Tensor:
            pairs = [[int(i), int(j)] for i, j in entries]
            values = forward(
                "score_pairs",
                {"relation": relation, "entries": pairs, "dropped_mass": dropped_mass, "image": request["image"]},
            )
            return values if isinstance(values, torch.Tensor) else torch.as_tensor(values)

        return lazy_relation(int(reply["n"]), fetch, semantics, LazyPolicy(float(reply["mass_threshold"])))
    data = reply if isinstance(reply, torch.Tensor) else torch.from_numpy(np.asarray(reply))
    return ProbabilisticTensor(data, vars=_VARS[request["num_objects"]], semantics=semantics)


# ---- score_pairs: a lazy relation's follow-up request (not callable by programs) ----------------------
PAIRS_DOC = "Internal: the (subject, object) pairs a lazy relation of this run needs, evaluated now."


def bind_pairs(
    limits: Limits, relation: int, entries: list, dropped_mass: float = 0.0, image: int = 0
) -> dict[str, Any]:
    if isinstance(relation, bool) or not isinstance(relation, int) or relation < 0:
        raise ValueError(f"score_pairs: relation must be an index, got {relation!r:.40}")
    n = limits.boxes_in(images.check_image("score_pairs", image, limits))  # the boxes of the relation's image
    if not isinstance(entries, list) or not 0 < len(entries) <= n * n:
        raise ValueError(f"score_pairs: entries must be a list of 1 to {n * n} pairs")
    pairs = []
    for e in entries:
        if not (isinstance(e, (list, tuple)) and len(e) == 2 and all(type(v) is int and 0 <= v < n for v in e)):
            raise ValueError(f"score_pairs: a pair must be two box indices below {n}, got {e!r:.40}")
        pairs.append((e[0], e[1]))
    if isinstance(dropped_mass, bool) or not isinstance(dropped_mass, (int, float)) or not 0 <= dropped_mass <= 1:
        raise ValueError(f"score_pairs: dropped_mass must be in [0, 1], got {dropped_mass!r:.40}")
    return {"relation": relation, "entries": pairs, "dropped_mass": float(dropped_mass), "image": image}


def run_pairs(ctx: CallContext, request: dict[str, Any]) -> torch.Tensor:
    k = request["relation"]
    if not k < len(ctx.relations):
        raise ValueError(f"score_pairs: this run has no lazy relation {k}")
    question, record, image = ctx.relations[k]
    if request["image"] != image:
        raise ValueError(f"score_pairs: lazy relation {k} is about image {image}, not {request['image']}")
    entries = request["entries"]
    picture, boxes = ctx.view(image)
    values, info = fetch_entries(ctx.agent, picture, boxes, question, entries)
    record.add(entries, values, info, request["dropped_mass"])
    return values


def wrap_pairs(request: dict[str, Any], reply: Any, semantics: Semantics) -> torch.Tensor:
    return reply if isinstance(reply, torch.Tensor) else torch.as_tensor(reply)


def _arg(call: ast.Call, pos: int, name: str) -> ast.expr | None:
    if len(call.args) > pos:
        return call.args[pos]
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def audit(call: ast.Call) -> list[str]:
    where = f"line {call.lineno}"
    problems = []
    if _arg(call, 0, "question") is None:
        problems.append(f"{where}: score(...) needs a question string")
    extra = [kw.arg for kw in call.keywords if kw.arg not in ("question", "num_objects", "type", "image")]
    if extra or len(call.args) > 4:
        problems.append(f"{where}: score takes (question, num_objects, type, image); got {extra or 'extra arguments'}")
    k = _arg(call, 1, "num_objects")
    if k is not None and not (isinstance(k, ast.Constant) and type(k.value) is int and k.value in (0, 1, 2)):
        problems.append(f"{where}: num_objects must be the literal 0, 1 or 2, got {ast.unparse(k)}")
    return problems + images.audit_image(call, "score", 3)


def render(entry: dict[str, Any]) -> str:
    from analysis.report_assets import esc, prob_bars

    typ = f" type={esc(entry['type'])}" if entry.get("type") else ""
    return (
        f'<span class="q">{esc(entry.get("question", ""))}</span>'
        f' <span class="muted">arity={esc(entry.get("arity"))}{typ}{esc(images.image_label(entry))}</span>'
        f"<div>{prob_bars(entry.get('probs'))}</div>"
    )


SCORE = Primitive(
    name="score", doc=DOC, returns="ProbabilisticTensor", bind=bind, run=run, wrap=wrap, audit=audit, render=render,
    reuse=True, predict=predict, known=known_call,
)  # fmt: skip
SCORE_PAIRS = Primitive(name="score_pairs", doc=PAIRS_DOC, returns="Tensor", bind=bind_pairs, run=run_pairs,
                        wrap=wrap_pairs)  # fmt: skip
