"""``query_video(question, clip=None)``: an open answer about a clip of the video (VLAgent's VIDQA)."""

from __future__ import annotations

import ast
from typing import Any

from neptune_core.executor.guards import AgentError
from neptune_core.primitives.base import CallContext, Limits, Primitive, check_question
from neptune_core.primitives.video_context import audit_call, frames_in, mask_argument, times_of, video_of
from probabilistic_tensor import ProbabilisticTensor, Semantics

DOC = """Ask the video model an open question about the video, or about a clip of it; returns a
short lower-case answer. clip: None (the whole video the program sees) or a mask over "t"
(from clip(); the frames where it is > 0.5). A model that takes video gets the clip as a video;
others answer frame by frame and the most frequent answer wins.
e.g. query_video("What does the boy do?", clip(locate("Does the boy fall down?"), "after"))"""

MAX_ANSWER_CHARS = 1000


def bind(limits: Limits, question: str, clip: ProbabilisticTensor | None = None) -> dict[str, Any]:
    check_question("query_video", question, limits)
    return {"question": question, "clip": mask_argument(clip, "query_video")}


def run(ctx: CallContext, request: dict[str, Any]) -> str:
    video = video_of(ctx, "query_video")
    indices = frames_in(video, request["clip"], "query_video")
    question = request["question"]
    agent = video.video_agent
    answer, info = ctx.agent_call("query_video", question, lambda: agent.answer_clip(video.frames, indices, question))
    if not isinstance(answer, str) or len(answer) > MAX_ANSWER_CHARS:
        raise AgentError(f"video agent '{agent.name}' returned {answer!r:.80} from answer_clip(), not a short str")
    entry: dict[str, Any] = {
        "primitive": "query_video",
        "question": question,
        "frames": indices,
        "times": times_of(video, indices),
        "as_video": bool(getattr(agent, "takes_video", False)),
        "answer": answer,
    }
    if info:
        entry["info"] = info
    ctx.record(entry)
    return answer


def wrap(request: dict[str, Any], reply: Any, semantics: Semantics) -> str:
    return str(reply)


def audit(call: ast.Call) -> list[str]:
    return audit_call(call, "query_video", ("question", "clip"))


def render(entry: dict[str, Any]) -> str:
    from analysis.report_assets import esc

    how = "as a video" if entry.get("as_video") else "frame by frame"
    return (
        f'<span class="q">{esc(entry.get("question", ""))}</span>'
        f' <span class="muted">{len(entry.get("frames") or [])} frames ({how}), t={esc(entry.get("times"))}</span>'
        f"<div>answer: <b>{esc(entry.get('answer', ''))}</b></div>"
    )


QUERY_VIDEO = Primitive(
    name="query_video", doc=DOC, returns="str", bind=bind, run=run, wrap=wrap, audit=audit, render=render
)
