"""Losses of fine-tuning through programs: the program's soft output against the gold answer.

:func:`program_loss` picks the loss by what the program returned and what the gold is:

- a box (referring expressions): the program's distribution over the boxes (a 1-d prob
  tensor, e.g. ``.iota()``) against the box that matches the gold box (the best IoU,
  at least :data:`IOU_MATCH`): cross-entropy over the boxes;
- yes / no: a 0-d probability -> binary cross-entropy;
- a count: a 0-d soft number -> Huber (smooth L1) regression on the count;
- an attribute (a string from ``query``): cross-entropy over the candidate answers that
  the agent scored for that ``query`` call (recorded by :class:`AnswerTape`) where the
  agent can score candidates differentiably.

Anything else is skipped with a reason (for example ``not_differentiable`` when the program
compared two query strings, ``no_matching_box`` when no detected box overlaps the gold),
and the training run counts the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from neptune_core.types import Box, box_iou
from probabilistic_tensor import ProbabilisticTensor
from vision_agents.base import VisionAgent

IOU_MATCH = 0.5
EPS = 1e-6
YES_NO = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0}


@dataclass
class AnswerRecord:
    """One ``query`` call of a program: its answer and the candidates' log-probabilities (if scored)."""

    question: str
    answer: str
    candidates: list[str] | None = None
    log_probs: torch.Tensor | None = None


class AnswerTape(VisionAgent):
    """Wraps the loop's agent for one training step and records each ``query`` answer's distribution.

    ``score`` passes through unchanged; ``answer`` passes through and, where ``scorer``
    (a Tuner's ``answer_log_probs``) can score the candidate answers, keeps their
    differentiable log-probabilities in :attr:`records`.
    """

    def __init__(self, agent: VisionAgent, scorer: Any) -> None:
        self.agent = agent
        self.name = agent.name
        self.scorer = scorer
        self.records: list[AnswerRecord] = []

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        return self.agent.score(image, boxes, questions, arity)

    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        return self.agent.score_with_info(image, boxes, questions, arity)

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        return self.answer_with_info(image, box, question)[0]

    def answer_with_info(self, image: Image.Image, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        answer, info = self.agent.answer_with_info(image, box, question)
        dist = None if box is None else self.scorer(image, box, question)
        record = AnswerRecord(question, answer)
        if dist is not None:
            record.candidates, record.log_probs = dist
        self.records.append(record)
        return answer, info


@dataclass
class LossResult:
    """The loss of one sample (None when skipped), its kind, or why it was skipped."""

    loss: torch.Tensor | None
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


def _skip(reason: str) -> LossResult:
    return LossResult(None, reason)


def _is_box(gold: Any) -> bool:
    return (
        isinstance(gold, (list, tuple))
        and len(gold) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in gold)
    )


def box_loss(value: ProbabilisticTensor, boxes: list[Box], gold: Box) -> LossResult:
    """Cross-entropy of the program's distribution over boxes against the box matching the gold one."""
    if len(value.vars) != 1 or value.kind != "prob" or len(value) != len(boxes):
        return _skip("not_a_box_distribution")
    ious = [box_iou([float(v) for v in b], [float(v) for v in gold]) for b in boxes]
    best = max(range(len(boxes)), key=ious.__getitem__, default=None)
    if best is None or ious[best] < IOU_MATCH:
        return _skip("no_matching_box")
    p = value.data.float()
    log_p = torch.log(p.clamp_min(EPS)) - torch.log(p.sum().clamp_min(EPS))
    return LossResult(-log_p[best], "box", {"target": best})


def yes_no_loss(value: ProbabilisticTensor, gold: str) -> LossResult:
    target = torch.tensor(YES_NO[gold], dtype=torch.float32, device=value.data.device)
    p = value.data.float().clamp(EPS, 1 - EPS)
    return LossResult(F.binary_cross_entropy(p, target), "yes_no")


def count_loss(value: ProbabilisticTensor, gold: str) -> LossResult:
    target = torch.tensor(float(gold), dtype=torch.float32, device=value.data.device)
    return LossResult(F.smooth_l1_loss(value.data.float(), target), "count")


def attribute_loss(value: str, gold: str, records: list[AnswerRecord]) -> LossResult:
    """Cross-entropy over the candidates of the query call whose answer the program returned."""
    matching = [r for r in records if r.answer == value]
    if not matching:
        return _skip("answer_not_from_query")
    rec = matching[-1]
    if rec.log_probs is None or rec.candidates is None:
        return _skip("query_not_scored")
    if gold not in rec.candidates:
        return _skip("gold_not_a_candidate")
    log_p = rec.log_probs.float()
    return LossResult(-log_p[rec.candidates.index(gold)], "attribute")


def program_loss(value: Any, gold: Any, boxes: list[Box], records: list[AnswerRecord]) -> LossResult:
    """The loss of one executed program (see the module docstring)."""
    if gold is None:
        return _skip("no_gold_answer")
    if _is_box(gold):
        if not isinstance(value, ProbabilisticTensor):
            return _skip("not_a_box_distribution")
        result = box_loss(value, boxes, list(gold))
    elif isinstance(value, ProbabilisticTensor):
        g = str(gold).strip().lower()
        if len(value.vars) != 0:
            return _skip("not_a_scalar")
        if value.kind == "prob" and g in YES_NO:
            result = yes_no_loss(value, g)
        elif value.kind == "number" and g.lstrip("-").isdigit():
            result = count_loss(value, g)
        else:
            return _skip("answer_kind_mismatch")
    elif isinstance(value, str):
        result = attribute_loss(value.strip().lower(), str(gold).strip().lower(), records)
    else:  # a python bool / int / float: the program's answer left the differentiable algebra
        return _skip("not_differentiable")
    if result.loss is not None and not result.loss.requires_grad:
        return _skip("no_gradient")
    return result
