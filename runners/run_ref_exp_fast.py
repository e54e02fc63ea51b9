"""Referring expressions (Ref-Adv, Ref-GTA, or your own JSONL / HF data): detect -> program ->
iota -> box. The shared loop of :mod:`runners.base`; only :meth:`judge` differs: the
program's 1-d distribution over boxes picks a box, and the prediction is correct when
its IoU with the gold box is at least :data:`IOU_THRESHOLD` (Acc@IoU 0.5).

Usage (as in the original release): python runners/run_ref_exp_fast.py --config configs/refadv.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neptune_core.executor import to_answer  # noqa: E402
from neptune_core.types import Box, Sample, box_iou  # noqa: E402
from runners.base import Runner  # noqa: E402

IOU_THRESHOLD = 0.5


def is_box(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


def chosen_index(value: Any, boxes: list[Box]) -> int:
    """The box index a program's value picks: a 1-d distribution's argmax, or an index it returned."""
    if not boxes:
        raise ValueError("the detector found no boxes, so no box can be chosen")
    choice = to_answer(value)
    if isinstance(choice, str) and choice.lstrip("-").isdigit():
        choice = int(choice)
    if isinstance(choice, bool) or not isinstance(choice, int):
        raise ValueError(
            f"a referring-expression program must return a 1-d tensor over the boxes (e.g. s.iota()), got {choice!r}"
        )
    if not 0 <= choice < len(boxes):
        raise ValueError(f"the program chose box {choice}, but there are {len(boxes)} boxes")
    return choice


class RefExpRunner(Runner):
    """Prediction = the chosen box; correct = IoU(chosen, gold) >= 0.5."""

    def judge(self, sample: Sample, value: Any, boxes: list[Box]) -> tuple[Any, bool | None]:
        box = [float(v) for v in boxes[chosen_index(value, boxes)]]
        if sample.answer is None:
            return box, None
        if not is_box(sample.answer):
            raise ValueError(f"sample {sample.id}: the gold answer {sample.answer!r:.80} is not a box")
        return box, box_iou(box, [float(v) for v in sample.answer]) >= IOU_THRESHOLD


class GenericRunner(RefExpRunner):
    """For mixed data (``dataset: "jsonl"`` or ``"hf"``): box golds are judged by IoU, answer golds by
    exact match; a sample without a gold answer predicts a box when its task is a grounding one."""

    def judge(self, sample: Sample, value: Any, boxes: list[Box]) -> tuple[Any, bool | None]:
        from code_generator.prompting import BOX_TASKS, task_for_sample

        if is_box(sample.answer) or (sample.answer is None and task_for_sample(sample) in BOX_TASKS):
            return super().judge(sample, value, boxes)
        return Runner.judge(self, sample, value, boxes)


if __name__ == "__main__":
    from run import main

    sys.exit(main(sys.argv[1:]))
