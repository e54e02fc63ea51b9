"""``score_frames(question, num_objects=0)``: p(yes) of a yes/no question in every frame of a video."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import torch

from neptune_core.primitives.base import CallContext, Limits, Primitive, check_question, trace_probs
from neptune_core.primitives.video_context import (
    FRAME_VAR,
    OBJECT_VARS,
    audit_call,
    audit_literal,
    video_of,
)
from probabilistic_tensor import ProbabilisticTensor, Semantics

DOC = """Ask a yes/no question about every frame of the video; returns p(yes) over frames (variable "t").

num_objects=0: a tensor over "t", one value per frame, e.g. score_frames("Is there a dog?").
num_objects=1: over ("t", "x"): each box found in that frame (marked in red); boxes are found
    per frame, so use .exists("x") or .count("x") to ask about a frame, e.g.
    score_frames("Is this a person?", 1).count("x") is the number of people per frame.
num_objects=2: over ("t", "x", "y") (red box, green box) in each frame.
Frames are in time order: t[0] is the earliest. Reduce over "t" with .exists("t") ("at some
frame"), .forall("t"), or combine with locate() and clip() ("before the frame where ...")."""


def bind(limits: Limits, question: str, num_objects: int = 0) -> dict[str, Any]:
    check_question("score_frames", question, limits)
    if isinstance(num_objects, bool) or not isinstance(num_objects, int) or num_objects not in (0, 1, 2):
        raise ValueError(f"score_frames() num_objects must be 0, 1 or 2, got {num_objects!r:.80}")
    return {"question": question, "num_objects": num_objects}


def run(ctx: CallContext, request: dict[str, Any]) -> torch.Tensor:
    video = video_of(ctx, "score_frames")
    question, arity = request["question"], request["num_objects"]
    data, infos = video.frame_scores(question, arity)
    entry: dict[str, Any] = {
        "primitive": "score_frames",
        "question": question,
        "arity": arity,
        "times": [round(t, 3) for t in video.frames.times],
        "probs": trace_probs(data),
    }
    notes = [dict(info, frame=k) for k, info in enumerate(infos) if info]
    if notes:  # the report and the summary read "unknown_concepts" of the whole call
        unknown = list(dict.fromkeys(w for n in notes for w in n.get("unknown_concepts", [])))
        entry["info"] = {"unknown_concepts": unknown, "per_frame": notes} if unknown else {"per_frame": notes}
    ctx.record(entry)
    return data


def wrap(request: dict[str, Any], reply: Any, semantics: Semantics) -> ProbabilisticTensor:
    data = reply if isinstance(reply, torch.Tensor) else torch.from_numpy(np.asarray(reply))
    return ProbabilisticTensor(data, vars=(FRAME_VAR, *OBJECT_VARS[: request["num_objects"]]), semantics=semantics)


def audit(call: ast.Call) -> list[str]:
    return audit_call(call, "score_frames", ("question", "num_objects")) + audit_literal(
        call, "score_frames", 1, "num_objects", (0, 1, 2)
    )


def render(entry: dict[str, Any]) -> str:
    from analysis.report_assets import bar, esc

    probs, times = entry.get("probs") or [], entry.get("times") or []
    per_frame = [_frame_value(p) for p in probs]
    label = "" if entry.get("arity", 0) == 0 else " (max over the boxes of each frame)"
    bars = "".join(
        bar(f"t={times[k]:.1f}s" if k < len(times) else f"#{k}", v, v > 0.5) for k, v in enumerate(per_frame)
    )
    return (
        f'<span class="q">{esc(entry.get("question", ""))}</span>'
        f' <span class="muted">per frame, arity={esc(entry.get("arity"))}{label}</span><div>{bars}</div>'
    )


def _frame_value(p: Any) -> float:
    while isinstance(p, list):
        p = max((_frame_value(v) for v in p), default=0.0)
    return float(p)


SCORE_FRAMES = Primitive(
    name="score_frames", doc=DOC, returns="ProbabilisticTensor", bind=bind, run=run, wrap=wrap, audit=audit,
    render=render,
)  # fmt: skip
