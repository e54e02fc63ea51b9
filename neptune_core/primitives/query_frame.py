"""``query_frame(question, frame, object_id=None)``: a short open answer about one frame (or one box in it)."""

from __future__ import annotations

import ast
from typing import Any

from neptune_core.executor.guards import AgentError
from neptune_core.primitives.base import CallContext, Limits, Primitive, check_question
from neptune_core.primitives.video_context import (
    arg_of,
    audit_call,
    frame_argument,
    resolve_frame,
    video_of,
)
from probabilistic_tensor import ProbabilisticTensor, Semantics

DOC = """Ask the vision model an open question about one frame; returns a short lower-case answer.

frame: a frame index (int; -1 is the last frame) or a tensor over "t" (its most probable frame,
e.g. from locate()). object_id: a box of that frame (int), or None for the whole frame.
e.g. query_frame("What is the man holding?", locate("Is the man standing up?"))"""

MAX_ANSWER_CHARS = 1000


def bind(
    limits: Limits,
    question: str,
    frame: int | ProbabilisticTensor,
    object_id: int | ProbabilisticTensor | None = None,
) -> dict[str, Any]:
    check_question("query_frame", question, limits)
    request: dict[str, Any] = {"question": question, "frame": frame_argument(frame, "query_frame")}
    if isinstance(object_id, ProbabilisticTensor):
        if len(object_id.vars) != 1:
            raise ValueError(f"query_frame() object_id tensor must have one variable, got vars {object_id.vars}")
        object_id = object_id.argmax()
    if object_id is not None and (isinstance(object_id, bool) or not isinstance(object_id, int) or object_id < 0):
        raise TypeError(
            f"query_frame() object_id must be a box index (int >= 0), a 1-d tensor or None, got {object_id!r:.80}"
        )
    request["object_id"] = object_id
    return request


def run(ctx: CallContext, request: dict[str, Any]) -> str:
    video = video_of(ctx, "query_frame")
    k = resolve_frame(video, request["frame"], "query_frame")
    boxes = video.frames.boxes[k]
    object_id = request["object_id"]
    if object_id is not None and not 0 <= object_id < len(boxes):
        raise IndexError(f"query_frame() object_id {object_id} is out of range: frame {k} has {len(boxes)} boxes")
    box = None if object_id is None else boxes[object_id]
    question = request["question"]
    agent = video.video_agent
    answer, info = ctx.agent_call("query_frame", question, lambda: agent.answer_frame(video.frames, k, box, question))
    if not isinstance(answer, str) or len(answer) > MAX_ANSWER_CHARS:
        raise AgentError(f"video agent '{agent.name}' returned {answer!r:.80} from answer_frame(), not a short str")
    entry: dict[str, Any] = {
        "primitive": "query_frame",
        "question": question,
        "frame": k,
        "time": round(video.frames.times[k], 3),
        "object_id": object_id,
        "answer": answer,
    }
    if info:
        entry["info"] = info
    ctx.record(entry)
    return answer


def wrap(request: dict[str, Any], reply: Any, semantics: Semantics) -> str:
    return str(reply)


def audit(call: ast.Call) -> list[str]:
    problems = audit_call(call, "query_frame", ("question", "frame", "object_id"), required=2)
    frame = arg_of(call, 1, "frame")
    if isinstance(frame, ast.Constant) and type(frame.value) is not int:
        problems.append(f"line {call.lineno}: query_frame's frame must be a frame index or a tensor over 't'")
    return problems


def render(entry: dict[str, Any]) -> str:
    from analysis.report_assets import esc

    return (
        f'<span class="q">{esc(entry.get("question", ""))}</span>'
        f' <span class="muted">frame {esc(entry.get("frame"))} (t={esc(entry.get("time"))}s),'
        f" object_id={esc(entry.get('object_id'))}</span>"
        f"<div>answer: <b>{esc(entry.get('answer', ''))}</b></div>"
    )


QUERY_FRAME = Primitive(
    name="query_frame", doc=DOC, returns="str", bind=bind, run=run, wrap=wrap, audit=audit, render=render
)
