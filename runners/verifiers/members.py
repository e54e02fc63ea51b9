"""Each ensemble member alone on the sample's program (``ensemble.member_accuracy``).

A VisionAgent member runs the same program on the same boxes in place of the ensemble;
a detector member's own boxes (recorded by the ensemble detector) are run with the
run's VisionAgent. Members are memoised inside the ensemble, so calls the ensemble
already made are not repeated. The row gets ``members``: name -> {pred, correct} (and
``error`` when the member's run failed: it then counts as wrong).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from neptune_core.types import Box, ErrorRecord, Program, Sample
from vision_agents.base import MemoizedAgent, VisionAgent
from vision_agents.ensemble import EnsembleAgent

if TYPE_CHECKING:
    from runners.base import Runner


def _alone(
    runner: Runner, sample: Sample, image: Image.Image, program: Program, agent: VisionAgent, boxes: list[Box]
) -> dict[str, Any]:
    try:
        outcome = runner.executor.run(program.source, agent, image, boxes, perception=runner.perception)
        if outcome.error is not None:
            return {"pred": None, "correct": False, "error": outcome.error.to_dict()}
        pred, correct = runner.judge(sample, outcome.value, boxes)
    except Exception as exc:  # recorded on the member's entry; the sample goes on
        return {"pred": None, "correct": False, "error": ErrorRecord.from_exception(exc).to_dict()}
    return {"pred": pred, "correct": correct}


def evaluate_members(
    runner: Runner, sample: Sample, image: Image.Image, program: Program, boxes: list[Box], detection: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """name -> the member's own prediction and correctness on this sample."""
    agent = runner.agent
    inner = agent.inner if isinstance(agent, MemoizedAgent) else agent
    out: dict[str, dict[str, Any]] = {}
    if isinstance(inner, EnsembleAgent):
        for name, member in inner.members.items():
            out[name] = _alone(runner, sample, image, program, member, boxes)
    for name, det in (detection.get("members") or {}).items():
        member_boxes = [[float(v) for v in b] for b in det["boxes"]]
        out[name] = _alone(runner, sample, image, program, agent, member_boxes)
    return out
