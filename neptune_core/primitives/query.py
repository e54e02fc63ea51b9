"""``query(question, object_id=None, image=0)``: a short open answer about one box (or the whole image)."""

from __future__ import annotations

import ast
from typing import Any

from neptune_core.executor.guards import AgentError
from neptune_core.primitives import images
from neptune_core.primitives.base import CallContext, Limits, Primitive, check_question
from neptune_core.primitives.score import _arg
from probabilistic_tensor import ProbabilisticTensor, Semantics

DOC = (
    """Ask the vision model an open question; returns a short lower-case answer string.

object_id: a box index (int, 0 <= object_id < n) marked in red, or a 1-d ProbabilisticTensor
(its most probable box is used, e.g. the result of .iota()), or None for the whole image.
e.g. query("What color is the object in the red box?", target.iota())
"""
    + images.DOC
)

MAX_ANSWER_CHARS = 1000


def bind(
    limits: Limits, question: str, object_id: int | ProbabilisticTensor | None = None, image: int = 0
) -> dict[str, Any]:
    check_question("query", question, limits)
    images.check_image("query", image, limits)
    if isinstance(object_id, ProbabilisticTensor):
        if len(object_id.vars) != 1:
            raise ValueError(f"query() object_id tensor must have one variable, got vars {object_id.vars}")
        object_id = object_id.argmax()
    if object_id is not None:
        if isinstance(object_id, bool) or not isinstance(object_id, int):
            raise TypeError(f"query() object_id must be an int box index, a 1-d tensor or None, got {object_id!r:.80}")
        n = limits.boxes_in(image)
        if not 0 <= object_id < n:
            where = f" of image {image}" if limits.images > 1 else ""
            raise IndexError(f"query() object_id {object_id} is out of range for {n} boxes{where}")
    return {"question": question, "object_id": object_id, "image": image}


def run(ctx: CallContext, request: dict[str, Any]) -> str:
    question, object_id = request["question"], request["object_id"]
    image, boxes = ctx.view(request["image"])
    box = None if object_id is None else boxes[object_id]
    agent = ctx.agent
    answer, info = ctx.agent_call("query", question, lambda: agent.answer_with_info(image, box, question))
    if not isinstance(answer, str):
        raise AgentError(f"vision agent '{agent.name}' returned {answer.__class__.__name__} from answer(), not str")
    if len(answer) > MAX_ANSWER_CHARS:
        raise AgentError(f"vision agent '{agent.name}' returned an answer of {len(answer)} characters from answer()")
    entry: dict[str, Any] = {"primitive": "query", "question": question, "object_id": object_id, "answer": answer}
    if ctx.several_images:
        entry["image"] = request["image"]
    if info:
        entry["info"] = info
    ctx.record(entry)
    return answer


def wrap(request: dict[str, Any], reply: Any, semantics: Semantics) -> str:
    return str(reply)


def audit(call: ast.Call) -> list[str]:
    where = f"line {call.lineno}"
    problems = []
    if _arg(call, 0, "question") is None:
        problems.append(f"{where}: query(...) needs a question string")
    obj = _arg(call, 1, "object_id")
    if obj is None:
        problems.append(
            f"{where}: query needs an object index: query(question, object_id) "
            "(an int box index, a vector whose argmax is used, or None for the whole image)"
        )
    elif isinstance(obj, ast.Constant) and not (obj.value is None or type(obj.value) is int):
        problems.append(f"{where}: query's object_id must be a box index, got {ast.unparse(obj)}")
    extra = [kw.arg for kw in call.keywords if kw.arg not in ("question", "object_id", "image")]
    if extra or len(call.args) > 3:
        problems.append(f"{where}: query takes (question, object_id, image); got {extra or 'extra arguments'}")
    return problems + images.audit_image(call, "query", 2)


def render(entry: dict[str, Any]) -> str:
    from analysis.report_assets import esc

    return (
        f'<span class="q">{esc(entry.get("question", ""))}</span>'
        f' <span class="muted">object_id={esc(entry.get("object_id"))}{esc(images.image_label(entry))}</span>'
        f"<div>answer: <b>{esc(entry.get('answer', ''))}</b></div>"
    )


QUERY = Primitive(
    name="query", doc=DOC, returns="str", bind=bind, run=run, wrap=wrap, audit=audit, render=render, reuse=True
)
