"""``closer(farther=False, image=0)``: the soft "closer to the camera than" relation over the boxes, from depths.

Each box gets one depth from the run's depth model (vision_agents/perception.py: the median of
the depth map over the object's mask, or its box, or the oracle's exact depth; config
``depth.reduce``), and p(x closer than y) = sigmoid((d_y - d_x) / (T * (d_x + d_y) / 2)) with
T = ``depth.temperature`` (vision_agents/depth.py). The relation has the shape of
``score(question, 2)`` (variables ("x", "y"), 0 on the diagonal), so programs use it the same
way, beside or instead of the VLM's own judgement of "in front of". The prompt lists it only
for runs with a ``depth_model`` (``needs="depth"``).
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import torch

from neptune_core.executor.guards import AgentError
from neptune_core.primitives import images
from neptune_core.primitives.base import CallContext, Limits, Primitive, trace_probs
from probabilistic_tensor import ProbabilisticTensor, Semantics

DOC = """The depth model's soft relation "x is closer to the camera than y" (a function programs call
by name; not a parameter of execute); returns a ProbabilisticTensor over ("x", "y"), n x n and 0 on
the diagonal like score(question, 2), from one depth per object. closer(farther=True): p(x is
farther than y). "x in front of y" is closer(), "x behind y" is closer(farther=True); e.g. the
objects in front of the_cube: closer().contract(the_cube("y")) & ~the_cube.
"""
DOC += images.DOC


def bind(limits: Limits, farther: bool = False, image: int = 0) -> dict[str, Any]:
    if not isinstance(farther, bool):
        raise TypeError(f"closer() farther must be True or False, got {farther!r:.80}")
    return {"farther": farther, "image": images.check_image("closer", image, limits)}


def run(ctx: CallContext, request: dict[str, Any]) -> torch.Tensor:
    perception = ctx.perception
    picture, boxes = ctx.view(request["image"])
    n = len(boxes)
    try:
        if perception is None or perception.depth is None:
            from vision_agents.perception import NO_DEPTH

            raise ValueError(NO_DEPTH)
        probs, distances, info = perception.closer(picture, boxes)
    except Exception as e:
        raise AgentError(f"closer(): {e.__class__.__name__}: {str(e)[:500]}") from e
    if tuple(probs.shape) != (n, n):
        raise AgentError(f"closer(): the depth relation has shape {tuple(probs.shape)}; expected {(n, n)}")
    data = probs.T.contiguous() if request["farther"] else probs
    if request["farther"]:
        data.fill_diagonal_(0.0)
    entry = {
        "primitive": "closer",
        "farther": request["farther"],
        "depths": [round(float(d), 4) for d in distances],
        "probs": trace_probs(data),
        "depth": info,  # depth model, reduction, temperature, mask or box per object
    }
    if ctx.several_images:
        entry["image"] = request["image"]
    ctx.record(entry)
    return data


def wrap(request: dict[str, Any], reply: Any, semantics: Semantics) -> ProbabilisticTensor:
    data = reply if isinstance(reply, torch.Tensor) else torch.from_numpy(np.asarray(reply))
    return ProbabilisticTensor(data, vars=("x", "y"), semantics=semantics)


def audit(call: ast.Call) -> list[str]:
    where = f"line {call.lineno}"
    extra = [kw.arg for kw in call.keywords if kw.arg not in ("farther", "image")]
    if extra or len(call.args) > 2:
        return [f"{where}: closer takes only farther=True/False and image; got {extra or 'extra arguments'}"]
    arg = call.args[0] if call.args else next((kw.value for kw in call.keywords if kw.arg == "farther"), None)
    if arg is not None and not (isinstance(arg, ast.Constant) and isinstance(arg.value, bool)):
        return [f"{where}: closer's farther must be the literal True or False, got {ast.unparse(arg)}"]
    return images.audit_image(call, "closer", 1)


def render(entry: dict[str, Any]) -> str:
    from analysis.report_assets import esc, prob_bars

    info = entry.get("depth") or {}
    depths = entry.get("depths") or []
    listed = ", ".join(f"#{i}: {esc(d)}" for i, d in enumerate(depths))
    what = "farther than" if entry.get("farther") else "closer than"
    return (
        f'<span class="q">x {what} y (camera)</span> <span class="muted">depth model {esc(info.get("depth_model"))}, '
        f"{esc(info.get('reduce'))}, temperature {esc(info.get('temperature'))}{esc(images.image_label(entry))}</span>"
        f'<div class="muted">depths (distance): {listed or "(no boxes)"}</div>'
        f"<div>{prob_bars(entry.get('probs'))}</div>"
    )


CLOSER = Primitive(
    name="closer",
    doc=DOC,
    returns="ProbabilisticTensor",
    bind=bind,
    run=run,
    wrap=wrap,
    audit=audit,
    render=render,
    needs="depth",
)
