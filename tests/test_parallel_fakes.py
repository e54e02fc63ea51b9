"""Fakes around the parallel runner (no tests here): a deterministic dataset of counting
questions, a program generator, a detector that returns the sample's boxes, and a
VisionAgent that knows which boxes are red. Spawned workers import this module by name,
so everything is at module level. ``NEPTUNE_FAKE_BURN_ITERS`` (env) makes each score call burn
a fixed amount of CPU work; ``NEPTUNE_FAKE_SLEEP_S`` makes each sample sleep (kill tests);
``NEPTUNE_FAKE_BROKEN_MODEL`` makes the agent's preflight fail. (``NEPTUNE_*`` variables reach
Ray actors too: runners/ray_cluster.py forwards them.) ``FakeRunner`` takes a ``generator``
(a Ray actor passes the programs the driver shipped).
"""

from __future__ import annotations

import os
import time

import torch
from PIL import Image

from neptune_core.types import Detection, Program, Sample
from runners.base import Runner
from vision_agents.base import Detector, VisionAgent

COUNT_RED = 'def execute(score, query, n):\n    return score("Is the object in the red box red?", 1).count()\n'
EXIST_RED = 'def execute(score, query, n):\n    return score("Is the object in the red box red?", 1).exists()\n'
BROKEN = "def execute(score, query, n):\n    return 1 // 0\n"


def burn(iterations: int) -> int:
    """A fixed amount of pure-Python CPU work (not wall time: it slows down under contention)."""
    acc = 0
    for i in range(iterations):
        acc = (acc + i * i) % 1_000_003
    return acc


def red_flags(i: int) -> list[bool]:
    return [(i * 7 + j) % 3 == 0 for j in range(2 + i % 4)]


def make_samples(num: int) -> list[Sample]:
    image = Image.new("RGB", (64, 48))
    out = []
    for i in range(num):
        reds = red_flags(i)
        boxes = [[4.0 * j, 2.0, 4.0 * j + 3.0, 9.0] for j in range(len(reds))]
        kind = "exist" if i % 3 == 0 else "count"
        gold = ("yes" if any(reds) else "no") if kind == "exist" else str(sum(reds))
        meta = {"family": kind, "reds": reds}
        out.append(Sample(id=f"s{i:04d}", question=f"q{i}", answer=gold, image=image, boxes=boxes, meta=meta))
    return out


class FakeGenerator:
    def program_for(self, sample: Sample) -> Program:
        if int(sample.id[1:]) % 11 == 5:
            return Program(source=BROKEN, origin="fake")
        return Program(source=EXIST_RED if sample.family == "exist" else COUNT_RED, origin="fake")


class FakeDetector(Detector):
    def begin_sample(self, sample: Sample) -> None:
        self.boxes = sample.boxes or []

    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        return Detection(boxes=self.boxes, scores=[1.0] * len(self.boxes), labels=["obj"] * len(self.boxes))


class FakeAgent(VisionAgent):
    """Sees red boxes; wrong about the first box of every 5th sample (so some answers are wrong)."""

    def preflight(self) -> None:
        if os.environ.get("NEPTUNE_FAKE_BROKEN_MODEL"):
            from neptune_core.errors import ModelUnavailableError

            raise ModelUnavailableError("fake weights not found at /nowhere; download them first")

    def begin_sample(self, sample: Sample) -> None:
        self.reds = list(sample.meta["reds"])
        if int(sample.id[1:]) % 5 == 0:
            self.reds[0] = not self.reds[0]

    def score(self, image: Image.Image, boxes: list, questions: list[str], arity: int) -> torch.Tensor:
        burn(int(os.environ.get("NEPTUNE_FAKE_BURN_ITERS", "0")))
        return torch.tensor([[0.95 if r else 0.05 for r in self.reds] for _ in questions])

    def answer(self, image: Image.Image, box: list | None, question: str) -> str:
        return "red"


class FakeRunner(Runner):
    """dataset "fake_parallel": config.num_samples samples (default 40)."""

    def __init__(self, config, generator=None, **kw) -> None:  # noqa: ANN001
        super().__init__(config, agent=FakeAgent(), detector=FakeDetector(), generator=generator or FakeGenerator())

    def load_samples(self) -> list[Sample]:
        return make_samples(40 if self.config.num_samples < 0 else self.config.num_samples)

    def process(self, sample: Sample) -> dict:
        time.sleep(float(os.environ.get("NEPTUNE_FAKE_SLEEP_S", "0")))
        return super().process(sample)


class BrokenDataRunner(FakeRunner):
    """dataset "fake_broken": the loader fails with a user error in every worker."""

    def load_samples(self) -> list[Sample]:
        from neptune_core.errors import UserError

        raise UserError("data_path /nowhere does not exist; set data_root")
