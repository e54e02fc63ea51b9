"""CLEVR-Transfer referring expressions (LEFT's refexps): the program points at one
object of a CLEVR-mini scene. With the scene's own boxes (``od_model: gt``) the chosen
box index must equal the gold object index; with detected boxes the chosen box must
overlap the gold object's box with IoU >= 0.5.

Usage: python runners/run_clevr_extensions_ref.py --config configs/clevr-refexps.json
(ground-truth programs: add ``--program_generator symbolic_left``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neptune_core.types import Box, Sample  # noqa: E402
from runners.run_ref_exp_fast import RefExpRunner, chosen_index  # noqa: E402


class ClevrRefRunner(RefExpRunner):
    """Index match on the scene's boxes, IoU >= 0.5 on any other boxes."""

    def judge(self, sample: Sample, value: Any, boxes: list[Box]) -> tuple[Any, bool | None]:
        gold_index = sample.meta.get("answer_index")
        own = sample.boxes is not None and [[float(v) for v in b] for b in sample.boxes] == [
            [float(v) for v in b] for b in boxes
        ]
        if gold_index is None or not own:
            return super().judge(sample, value, boxes)
        k = chosen_index(value, boxes)
        return [float(v) for v in boxes[k]], k == int(gold_index)


if __name__ == "__main__":
    from run import main

    sys.exit(main(sys.argv[1:]))
