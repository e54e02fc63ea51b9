"""A fake vision agent shared by the tests of reused and known score calls (test_sandbox_reuse.py,
test_known_calls.py): deterministic p(yes) from the question (crc32), the box index and ``shift``,
with per-question info (which replays must carry too); it counts its calls."""

from __future__ import annotations

import zlib

import torch
from PIL import Image

from vision_agents.base import VisionAgent

BOXES = [[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0], [20.0, 0.0, 30.0, 10.0]]
IMAGES = [Image.new("RGB", (32, 24), (90, 90, 90)), Image.new("RGB", (32, 24), (10, 200, 90))]


class ShiftAgent(VisionAgent):
    """Deterministic p(yes) from the question (crc32), the box index and ``shift``; counts its calls."""

    name = "shift"

    def __init__(self) -> None:
        self.shift = 0.0
        self.calls = 0

    def score(self, image, boxes, questions, arity):
        self.calls += 1
        rows = []
        for q in questions:
            idx = torch.arange(len(boxes) ** arity if arity else 1, dtype=torch.float32)
            base = (zlib.crc32(q.encode()) + 37 * idx) % 89 / 100.0 + self.shift
            rows.append(base.reshape((len(boxes),) * arity))
        return torch.stack(rows)

    def score_with_info(self, image, boxes, questions, arity):
        return self.score(image, boxes, questions, arity), [{"tokens": len(q)} for q in questions]

    def answer(self, image, box, question):
        self.calls += 1
        return f"answer{int(self.shift * 100)}"
