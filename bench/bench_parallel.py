"""Throughput of data-parallel workers (runners.run_vqa_parallel) with a CPU-bound fake backend.

Every sample's program makes one score() call; the fake VisionAgent burns a fixed
amount of pure-Python CPU work per call (calibrated to ~``--ms`` ms on this machine,
fixed iterations rather than wall time, so contention slows it down as a real model
would). Each configuration runs twice, with ``--small`` and ``--large`` samples, in
fresh run directories: end-to-end throughput includes spawning the workers and
importing torch in them; marginal throughput = (large - small) / (t_large - t_small)
cancels that start-up cost.

    python bench/bench_parallel.py [--workers 1 2] [--ms 20] [--small 20] [--large 220]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

try:
    from neptune_core.config import RunConfig
except ModuleNotFoundError:  # run as `python bench/bench_parallel.py` from anywhere
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from neptune_core.config import RunConfig
from neptune_core.types import Detection, Program, Sample
from runners.base import Runner
from vision_agents.base import Detector, VisionAgent

PROGRAM = 'def execute(score, query, n):\n    return score("Is the object in the red box red?", 1).count()\n'


def burn(iterations: int) -> int:
    acc = 0
    for i in range(iterations):
        acc = (acc + i * i) % 1_000_003
    return acc


def calibrate(ms: float) -> int:
    """Iterations of :func:`burn` that take ``ms`` ms on an idle core (best of 5 trials)."""
    n = 100_000
    best = min(_timed(n) for _ in range(5))
    return max(1, int(n * ms / 1000.0 / best))


def _timed(n: int) -> float:
    t0 = time.perf_counter()
    burn(n)
    return time.perf_counter() - t0


class BurnAgent(VisionAgent):
    def score(self, image: Image.Image, boxes: list, questions: list[str], arity: int) -> torch.Tensor:
        burn(int(os.environ["BENCH_BURN_ITERS"]))
        return torch.full((len(questions), len(boxes)), 0.9)

    def answer(self, image: Image.Image, box: list | None, question: str) -> str:
        return "red"


class BoxDetector(Detector):
    def begin_sample(self, sample: Sample) -> None:
        self.boxes = sample.boxes or []

    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        return Detection(self.boxes, [1.0] * len(self.boxes), ["obj"] * len(self.boxes))


class ConstantGenerator:
    def program_for(self, sample: Sample) -> Program:
        return Program(PROGRAM, origin="bench")


class BenchRunner(Runner):
    """config.num_samples synthetic questions about 4 boxes each."""

    def __init__(self, config: RunConfig, **kw: object) -> None:
        super().__init__(config, agent=BurnAgent(), detector=BoxDetector(), generator=ConstantGenerator())

    def load_samples(self) -> list[Sample]:
        image = Image.new("RGB", (32, 32))
        boxes = [[float(i), 0.0, float(i) + 4.0, 4.0] for i in range(4)]
        return [
            Sample(id=f"b{i:05d}", question="how many red?", answer="4", image=image, boxes=boxes)
            for i in range(self.config.num_samples)
        ]


def timed_run(workers: int, samples: int, out: Path) -> float:
    from runners.run_vqa_parallel import run_parallel

    config = RunConfig(
        dataset="bench", num_samples=samples, workers=workers, output_dir=str(out), run_name=f"w{workers}-n{samples}"
    )
    run_dir = out / config.run_name
    run_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    summary = run_parallel(config, run_dir, runner_cls=BenchRunner, progress=False)
    elapsed = time.perf_counter() - t0
    assert summary["num_samples"] == samples and summary["errors"]["total"] == 0, summary
    print(
        f"  workers={workers} n={samples}: {elapsed:.2f} s, median time per sample "
        f"{summary['timings']['total']['median_ms']:.1f} ms"
    )
    return elapsed


def _burn_many(iterations: int, count: int) -> None:
    for _ in range(count):
        burn(iterations)


def raw_ceiling(iterations: int, count: int) -> float:
    """Speed-up of the same burn work in 2 plain processes vs 1: what the machine allows right now."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    times = []
    for k in (1, 2):
        procs = [ctx.Process(target=_burn_many, args=(iterations, count // k)) for _ in range(k)]
        t0 = time.perf_counter()
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        times.append(time.perf_counter() - t0)
    return times[0] / times[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--ms", type=float, default=20.0, help="CPU work per score() call, calibrated")
    p.add_argument("--small", type=int, default=20)
    p.add_argument("--large", type=int, default=220)
    args = p.parse_args()
    iters = calibrate(args.ms)
    os.environ["BENCH_BURN_ITERS"] = str(iters)
    print(f"cpus: {os.cpu_count()}; load average before: {os.getloadavg()}")
    print(f"machine ceiling before (plain processes, no framework): 2 vs 1 = {raw_ceiling(iters, 100):.2f}x")
    print(f"fake backend: {iters} iterations per score() call (~{args.ms} ms on an idle core)")
    results: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.workers:
            t_small = timed_run(k, args.small, Path(tmp))
            t_large = timed_run(k, args.large, Path(tmp))
            end_to_end = args.large / t_large
            marginal = (args.large - args.small) / (t_large - t_small)
            results[k] = (end_to_end, marginal)
            print(
                f"workers={k}: {args.small} samples {t_small:.2f} s, {args.large} samples {t_large:.2f} s -> "
                f"end-to-end {end_to_end:.1f} q/s, marginal {marginal:.1f} q/s"
            )
    base = results[args.workers[0]]
    for k in args.workers[1:]:
        print(
            f"ratio workers={k} vs {args.workers[0]}: end-to-end {results[k][0] / base[0]:.2f}x, "
            f"marginal (start-up excluded) {results[k][1] / base[1]:.2f}x"
        )
    print(f"machine ceiling now (plain processes, no framework): 2 vs 1 = {raw_ceiling(iters, 100):.2f}x")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
