"""VLAgent's image benchmarks on the shared loop: each runner only judges a program's value by its
benchmark's rule and writes what the official metric needs on the row (``metric``); the metrics
themselves are defined once, in analysis/benchmarks.py.

- GQA: the answer string; correct = exact match after VQA normalisation.
- NLVR2: yes/no -> "True"/"False"; correct = the label; the sentence key for consistency.
- VQAv2: the answer string; ``metric.vqa_accuracy`` = the official soft accuracy; correct = at
  least three of the humans gave the answer (full credit by min(#humans/3, 1)).
- MME: the answer read as yes / no / other by the MME tool's rule; the image key for acc+.
- HC-RefLoCo: the chosen box; ``metric.iou``; correct = IoU > 0.5 (Acc@0.5, strictly, as the
  benchmark's evaluator).

Usage: python run.py --config configs/gqa.json (nlvr2.json, vqav2.json, mme.json, hc-refloco.json)
"""

from __future__ import annotations

from typing import Any

from analysis.benchmarks import exact_match, mme_label, nlvr2_label, vqa_accuracy, vqa_matches
from neptune_core.executor import to_answer
from neptune_core.types import Box, Sample, box_iou
from runners.base import Runner
from runners.run_ref_exp_fast import RefExpRunner, is_box


def _answered(row: dict[str, Any]) -> bool:
    return row.get("error") is None and row.get("pred") is not None


class GQARunner(Runner):
    """Exact match after the VQA answer normalisation."""

    def judge(self, sample: Sample, value: Any, boxes: list[Box]) -> tuple[Any, bool | None]:
        pred = str(to_answer(value))
        return pred, None if sample.answer is None else exact_match(pred, str(sample.answer))

    def metric_fields(self, sample: Sample, row: dict[str, Any]) -> dict[str, Any]:
        return {"benchmark": "gqa"}


class NLVR2Runner(Runner):
    """A statement about an image pair: the program's yes/no becomes "True"/"False"."""

    def judge(self, sample: Sample, value: Any, boxes: list[Box]) -> tuple[Any, bool | None]:
        pred = nlvr2_label(str(to_answer(value)))
        return pred, None if sample.answer is None else pred.lower() == str(sample.answer).lower()

    def metric_fields(self, sample: Sample, row: dict[str, Any]) -> dict[str, Any]:
        return {"benchmark": "nlvr2", "sentence": sample.meta.get("sentence_key", sample.id)}


class VQAv2Runner(Runner):
    """The official soft accuracy against the ten human answers (``meta["answers"]``)."""

    def judge(self, sample: Sample, value: Any, boxes: list[Box]) -> tuple[Any, bool | None]:
        pred = str(to_answer(value))
        answers = sample.meta.get("answers")
        if not answers:
            return pred, None
        return pred, vqa_matches(pred, answers) >= 3

    def metric_fields(self, sample: Sample, row: dict[str, Any]) -> dict[str, Any]:
        answers = sample.meta.get("answers") or []
        score = vqa_accuracy(str(row["pred"]), answers) if answers and _answered(row) else 0.0
        return {
            "benchmark": "vqav2",
            "vqa_accuracy": round(score, 4),
            "question_type": sample.meta.get("question_type"),
        }


class MMERunner(Runner):
    """Yes/no read as the MME tool reads it; both questions of an image right counts for acc+."""

    def judge(self, sample: Sample, value: Any, boxes: list[Box]) -> tuple[Any, bool | None]:
        pred = str(to_answer(value))
        return pred, None if sample.answer is None else mme_label(pred) == str(sample.answer).lower()

    def metric_fields(self, sample: Sample, row: dict[str, Any]) -> dict[str, Any]:
        return {"benchmark": "mme", "image": sample.meta.get("mme_image", sample.id)}


class HCRefLocoRunner(RefExpRunner):
    """The chosen box; correct when IoU with the gold box > 0.5; the IoU goes on the row."""

    def judge(self, sample: Sample, value: Any, boxes: list[Box]) -> tuple[Any, bool | None]:
        box, _ = super().judge(sample, value, boxes)
        if sample.answer is None:
            return box, None
        return box, box_iou(box, [float(v) for v in sample.answer]) > 0.5

    def metric_fields(self, sample: Sample, row: dict[str, Any]) -> dict[str, Any]:
        pred, gold = row.get("pred"), sample.answer
        iou = box_iou([float(v) for v in pred], [float(v) for v in gold]) if is_box(pred) and is_box(gold) else 0.0
        return {"benchmark": "hc_refloco", "iou": round(iou, 4)}
