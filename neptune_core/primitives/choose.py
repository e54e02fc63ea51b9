"""``choose(question, options, clip=None)``: how likely each option answers the question (VLAgent's SELECT)."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import torch

from neptune_core.executor.guards import AgentError
from neptune_core.primitives.base import CallContext, Limits, Primitive, check_question, trace_probs
from neptune_core.primitives.video_context import arg_of, audit_call, frames_in, mask_argument, times_of, video_of
from probabilistic_tensor import ProbabilisticTensor, Semantics

DOC = """Choose among the options of a multiple-choice question by watching the video (or a clip);
returns a tensor over variable "o": the probability that each option is right. Return it (the
most probable option is the answer) or combine it with your own evidence.
options: the option texts, in the question's order. clip: None or a mask over "t" (from clip()).
e.g. return choose("Why did the girl shake her container?", ["to wash it", "to dry it"], after)"""

MAX_OPTIONS = 10


def bind(limits: Limits, question: str, options: list[str], clip: ProbabilisticTensor | None = None) -> dict[str, Any]:
    check_question("choose", question, limits)
    if not isinstance(options, (list, tuple)) or not 2 <= len(options) <= MAX_OPTIONS:
        raise ValueError(f"choose() options must be a list of 2 to {MAX_OPTIONS} strings, got {options!r:.120}")
    for o in options:
        check_question("choose", o, limits, what="option")
    return {"question": question, "options": list(options), "clip": mask_argument(clip, "choose")}


def run(ctx: CallContext, request: dict[str, Any]) -> torch.Tensor:
    video = video_of(ctx, "choose")
    indices = frames_in(video, request["clip"], "choose")
    question, options = request["question"], request["options"]
    agent = video.video_agent
    out, info = ctx.agent_call("choose", question, lambda: agent.choose(video.frames, indices, question, options))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(options),):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else out.__class__.__name__
        raise AgentError(f"video agent '{agent.name}' returned {got} from choose(); expected ({len(options)},)")
    entry: dict[str, Any] = {
        "primitive": "choose",
        "question": question,
        "options": options,
        "frames": indices,
        "times": times_of(video, indices),
        "as_video": bool(getattr(agent, "takes_video", False)),
        "probs": trace_probs(out),
        "chosen": int(torch.argmax(out)),
    }
    if info:
        entry["info"] = info
    ctx.record(entry)
    return out


def wrap(request: dict[str, Any], reply: Any, semantics: Semantics) -> ProbabilisticTensor:
    data = reply if isinstance(reply, torch.Tensor) else torch.from_numpy(np.asarray(reply))
    return ProbabilisticTensor(data, vars=("o",), semantics=semantics)


def audit(call: ast.Call) -> list[str]:
    problems = audit_call(call, "choose", ("question", "options", "clip"), required=2)
    options = arg_of(call, 1, "options")
    if isinstance(options, (ast.List, ast.Tuple)) and len(options.elts) < 2:
        problems.append(f"line {call.lineno}: choose needs at least two options")
    if isinstance(options, ast.Constant):
        problems.append(f"line {call.lineno}: choose's options must be a list of the option texts")
    return problems


def render(entry: dict[str, Any]) -> str:
    from analysis.report_assets import bar, esc

    how = "as a video" if entry.get("as_video") else "frame by frame"
    opts = entry.get("options") or []
    bars = "".join(
        bar(str(opts[i]) if i < len(opts) else f"#{i}", v, i == entry.get("chosen"))
        for i, v in enumerate(entry.get("probs") or [])
    )
    return (
        f'<span class="q">{esc(entry.get("question", ""))}</span>'
        f' <span class="muted">{len(entry.get("frames") or [])} frames ({how})</span><div>{bars}</div>'
    )


CHOOSE = Primitive(
    name="choose", doc=DOC, returns="ProbabilisticTensor", bind=bind, run=run, wrap=wrap, audit=audit, render=render
)
