"""``locate(question, which="first")``: when an event happens, as a distribution over frames (VLAgent's LOC in time)."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import torch

from neptune_core.primitives.base import CallContext, Limits, Primitive, check_question, trace_probs
from neptune_core.primitives.video_context import (
    FRAME_VAR,
    audit_call,
    audit_literal,
    first_occurrence,
    last_occurrence,
    video_of,
)
from probabilistic_tensor import ProbabilisticTensor, Semantics

DOC = """Locate an event in time: the frame where a yes/no question about the whole frame becomes
true. Returns a tensor over "t" with the probability that each frame is that frame.

which="first": the first frame where it holds (p_t * prod of (1 - p_s) before it); "last": the
last one; "peak": the frames where it holds most (normalised). Use the result with clip(),
query_frame() or .argmax() (the frame index), e.g.
    when = locate("Is the girl's container full of water?")
    after = clip(when, "after")"""

WHICH = ("first", "last", "peak")


def bind(limits: Limits, question: str, which: str = "first") -> dict[str, Any]:
    check_question("locate", question, limits)
    if which not in WHICH:
        raise ValueError(f"locate() which must be one of {', '.join(WHICH)}, got {which!r:.80}")
    return {"question": question, "which": which}


def run(ctx: CallContext, request: dict[str, Any]) -> torch.Tensor:
    video = video_of(ctx, "locate")
    question, which = request["question"], request["which"]
    p, _ = video.frame_scores(question, 0)
    if which == "first":
        data = first_occurrence(p)
    elif which == "last":
        data = last_occurrence(p)
    else:
        low = p.min()
        span = p.max() - low
        data = (p - low) / span if float(span) > 0 else torch.full_like(p, 1.0)
        data = data / data.sum()
    data = data.clamp(0, 1)
    k = int(torch.argmax(data))
    ctx.record(
        {
            "primitive": "locate",
            "question": question,
            "which": which,
            "times": [round(t, 3) for t in video.frames.times],
            "p_event": trace_probs(p),
            "probs": trace_probs(data),
            "frame": k,
            "time": round(video.frames.times[k], 3),
            "found": bool(float(p.max()) > 0.5),
        }
    )
    return data


def wrap(request: dict[str, Any], reply: Any, semantics: Semantics) -> ProbabilisticTensor:
    data = reply if isinstance(reply, torch.Tensor) else torch.from_numpy(np.asarray(reply))
    return ProbabilisticTensor(data, vars=(FRAME_VAR,), semantics=semantics)


def audit(call: ast.Call) -> list[str]:
    return audit_call(call, "locate", ("question", "which")) + audit_literal(call, "locate", 1, "which", WHICH)


def render(entry: dict[str, Any]) -> str:
    from analysis.report_assets import bar, esc

    times = entry.get("times") or []
    bars = "".join(
        bar(f"t={times[k]:.1f}s" if k < len(times) else f"#{k}", v, k == entry.get("frame"))
        for k, v in enumerate(entry.get("probs") or [])
    )
    found = "" if entry.get("found", True) else ' <b class="err">never holds (p &lt;= 0.5 in every frame)</b>'
    return (
        f'<span class="q">{esc(entry.get("question", ""))}</span>'
        f' <span class="muted">{esc(entry.get("which"))} frame: {esc(entry.get("frame"))}'
        f" (t={esc(entry.get('time'))}s)</span>{found}<div>{bars}</div>"
    )


LOCATE = Primitive(
    name="locate", doc=DOC, returns="ProbabilisticTensor", bind=bind, run=run, wrap=wrap, audit=audit, render=render
)
