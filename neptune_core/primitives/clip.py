"""``clip(frame, where="after", frames=2)``: the frames before / after / around a moment, as a mask over frames."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import torch

from neptune_core.primitives.base import CallContext, Limits, Primitive, rounded
from neptune_core.primitives.video_context import (
    FRAME_VAR,
    arg_of,
    audit_call,
    audit_literal,
    frame_argument,
    resolve_frame,
    video_of,
)
from probabilistic_tensor import ProbabilisticTensor, Semantics

DOC = """Clip the video before, after or around a moment; returns a mask over "t" (1 = in the clip).

frame: a frame index (int; -1 is the last) or a distribution over "t" from locate() (then the
mask is soft: before = probability that the event comes later than the frame).
where: "before" (strictly earlier frames), "after" (strictly later), "around" (within `frames`
frames of it, both sides), "at" (the frame itself). Combine with & and quantify over "t", or
pass it to query_video()/choose(), e.g.
    (score_frames("Is the cat eating?") & clip(locate("Is the dog in the room?"), "before")).exists("t")"""

WHERE = ("before", "after", "around", "at")


def bind(limits: Limits, frame: int | ProbabilisticTensor, where: str = "after", frames: int = 2) -> dict[str, Any]:
    if where not in WHERE:
        raise ValueError(f"clip() where must be one of {', '.join(WHERE)}, got {where!r:.80}")
    if isinstance(frames, bool) or not isinstance(frames, int) or not 0 <= frames <= 10_000:
        raise ValueError(f"clip() frames must be an int >= 0, got {frames!r:.80}")
    return {"frame": frame_argument(frame, "clip"), "where": where, "frames": frames}


def _mask(weights: torch.Tensor, where: str, width: int) -> torch.Tensor:
    """Soft mask from a distribution ``weights`` over frames (sums to 1)."""
    n = len(weights)
    idx = torch.arange(n)
    t, s = idx[:, None], idx[None, :]  # mask[t] = sum_s w_s * [t is <where> s]
    rel = {"before": t < s, "after": t > s, "around": (t - s).abs() <= width, "at": t == s}[where]
    return (rel.to(weights.dtype) * weights[None, :]).sum(1)


def run(ctx: CallContext, request: dict[str, Any]) -> torch.Tensor:
    video = video_of(ctx, "clip")
    n = len(video.frames)
    soft = isinstance(request["frame"], list)
    anchor = resolve_frame(video, request["frame"], "clip")  # checks the range / the length
    if soft:
        w = torch.tensor(request["frame"], dtype=torch.float32).clamp(min=0)
        w = w / w.sum() if float(w.sum()) > 0 else torch.full((n,), 1.0 / n)
    else:
        w = torch.zeros(n)
        w[anchor] = 1.0
    data = _mask(w, request["where"], request["frames"]).clamp(0, 1)
    if request["where"] == "at" and soft:
        data = data / data.max() if float(data.max()) > 0 else data
    chosen = [i for i, v in enumerate(data.tolist()) if v > 0.5]
    ctx.record(
        {
            "primitive": "clip",
            "where": request["where"],
            "frame": anchor,
            "time": round(video.frames.times[anchor], 3),
            "soft": soft,
            "times": [round(t, 3) for t in video.frames.times],
            "probs": rounded(data.tolist()),
            "frames_in_clip": chosen,
        }
    )
    return data


def wrap(request: dict[str, Any], reply: Any, semantics: Semantics) -> ProbabilisticTensor:
    data = reply if isinstance(reply, torch.Tensor) else torch.from_numpy(np.asarray(reply))
    return ProbabilisticTensor(data, vars=(FRAME_VAR,), semantics=semantics)


def audit(call: ast.Call) -> list[str]:
    problems = audit_call(call, "clip", ("frame", "where", "frames"))
    problems += audit_literal(call, "clip", 1, "where", WHERE)
    if isinstance(arg_of(call, 0, "frame"), ast.Constant) and type(arg_of(call, 0, "frame").value) is not int:  # type: ignore[union-attr]
        problems.append(f"line {call.lineno}: clip's frame must be a frame index or a tensor over 't' (from locate)")
    return problems


def render(entry: dict[str, Any]) -> str:
    from analysis.report_assets import bar, esc

    times = entry.get("times") or []
    bars = "".join(
        bar(f"t={times[k]:.1f}s" if k < len(times) else f"#{k}", v, v > 0.5)
        for k, v in enumerate(entry.get("probs") or [])
    )
    soft = " (soft: from a distribution over frames)" if entry.get("soft") else ""
    return (
        f'<span class="q">clip {esc(entry.get("where"))} frame {esc(entry.get("frame"))}</span>'
        f' <span class="muted">t={esc(entry.get("time"))}s{soft}; frames in the clip: '
        f"{esc(entry.get('frames_in_clip'))}</span><div>{bars}</div>"
    )


CLIP = Primitive(
    name="clip", doc=DOC, returns="ProbabilisticTensor", bind=bind, run=run, wrap=wrap, audit=audit, render=render
)
