"""Verifier work started by the prefetch threads (code_gen_concurrency > 1) is used once per sample."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from PIL import Image

from neptune_core.config import load_config
from neptune_core.types import Program, Sample
from runners.base import Runner
from tests.test_multi_image import ColourAgent, PerImageDetector

PROGRAM = 'def execute(score, query, n):\n    return score("Is it red?", 0)\n'


class ThreadedGenerator:
    concurrency = 4  # programs come from prefetch threads

    def program_for(self, sample: Sample) -> Program:
        return Program(PROGRAM, origin="generated", object_names=["thing"])


class SlowToStartVerify:
    """Counts the verifier work started per sample; starting takes a while (a captioner's queue)."""

    active = True

    def __init__(self) -> None:
        self.starts: collections.Counter[str] = collections.Counter()
        self.finished: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def start(self, sample: Sample, image: Image.Image) -> Any:
        time.sleep(0.05)
        with self._lock:
            self.starts[sample.id] += 1
        return ("started", sample.id)

    def finish(self, runner: Runner, started: Any, sample: Sample, *args: Any) -> None:
        self.finished.append((sample.id, started))

    def preflight(self) -> None:
        pass


def test_each_sample_uses_the_verifier_work_its_prefetch_thread_started(tmp_path):
    image = Image.new("RGB", (32, 24), (200, 10, 10))
    samples = [Sample(f"s{i}", "Is it red?", answer="yes", image=image) for i in range(8)]
    config = load_config(None, {"dataset": "jsonl", "output_dir": str(tmp_path), "executor.isolation": "in_process"})
    verify = SlowToStartVerify()
    runner = Runner(
        config, agent=ColourAgent(), detector=PerImageDetector(), generator=ThreadedGenerator(), verify=verify
    )
    rows = list(runner.process_all(samples))
    assert [r["error"] for r in rows] == [None] * 8 and all(r["correct"] for r in rows)
    assert verify.starts == {s.id: 1 for s in samples}  # the first sample's too, though the loop reached it at once
    assert verify.finished == [(s.id, ("started", s.id)) for s in samples]
    assert runner._pending == {}
