"""Throughput of data-parallel workers with a CPU-bound fake backend: local processes and Ray actors.

Every sample's program makes one score() call; the fake VisionAgent burns a fixed
amount of pure-Python CPU work per call (calibrated to ~``--ms`` ms on this machine,
fixed iterations rather than wall time, so contention slows it down as a real model
would). Each configuration runs twice, with ``--small`` and ``--large`` samples, in
fresh run directories: end-to-end throughput includes starting the workers (spawning
processes, or creating Ray actors) and importing torch in them; marginal throughput =
(large - small) / (t_large - t_small) cancels that start-up cost. Sections:

- ``local``: ``--workers`` K vs 1 (runners.run_vqa_parallel: spawned processes, static shards);
- ``ray``: K Ray actors vs 1 (runners.ray_cluster; one local Ray instance, started once);
- ``skew``: 2 workers, worker 1 ``--slow`` times slower: static shards (local processes, and
  Ray actors each given every 2nd sample up front) against Ray's shared queue.

    python bench/bench_parallel.py [--sections local ray skew] [--workers 1 2] [--ms 20] [--small 20] [--large 220]
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
    """Burns NEPTUNE_BENCH_BURN_ITERS per call; NEPTUNE_BENCH_SLOW times that on worker NEPTUNE_BENCH_SLOW_WORKER."""

    def score(self, image: Image.Image, boxes: list, questions: list[str], arity: int) -> torch.Tensor:
        iterations = int(os.environ["NEPTUNE_BENCH_BURN_ITERS"])
        if os.environ.get("NEPTUNE_WORKER_INDEX") == os.environ.get("NEPTUNE_BENCH_SLOW_WORKER", "-"):
            iterations = int(iterations * float(os.environ.get("NEPTUNE_BENCH_SLOW", "1")))
        burn(iterations)
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

    def __init__(self, config: RunConfig, generator: object = None, **kw: object) -> None:
        super().__init__(config, agent=BurnAgent(), detector=BoxDetector(), generator=generator or ConstantGenerator())

    def load_samples(self) -> list[Sample]:
        image = Image.new("RGB", (32, 32))
        boxes = [[float(i), 0.0, float(i) + 4.0, 4.0] for i in range(4)]
        return [
            Sample(id=f"b{i:05d}", question="how many red?", answer="4", image=image, boxes=boxes)
            for i in range(self.config.num_samples)
        ]


def timed_run(workers: int, samples: int, out: Path, engine: str = "local", tag: str = "") -> float:
    """Seconds to run ``samples`` with ``workers``: engine "local" (static shards), "ray" (the shared
    queue, batches of 4) or "ray-static" (Ray actors, each given every K-th sample up front)."""
    from runners.ray_cluster import run_on_ray
    from runners.run_vqa_parallel import run_parallel

    config = RunConfig(
        dataset="bench",
        num_samples=samples,
        workers=workers,
        output_dir=str(out),
        run_name=f"{engine}{tag}-w{workers}-n{samples}",
        cluster="local" if engine == "local" else "ray",
    )
    run_dir = out / config.run_name
    run_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    if engine == "local":
        summary = run_parallel(config, run_dir, runner_cls=BenchRunner, progress=False)
    else:  # actors import the runner by its module's name, which "__main__" is not
        from bench.bench_parallel import BenchRunner as ByName

        summary = run_on_ray(config, run_dir, runner_cls=ByName, progress=False, static_shares=engine == "ray-static")
    elapsed = time.perf_counter() - t0
    assert summary["num_samples"] == samples and summary["errors"]["total"] == 0, summary
    print(
        f"  {engine} workers={workers} n={samples}: {elapsed:.2f} s, median time per sample "
        f"{summary['timings']['total']['median_ms']:.1f} ms"
    )
    return elapsed


def scaling(engine: str, workers: list[int], small: int, large: int, out: Path) -> None:
    """K workers vs the first of ``workers``: end-to-end and marginal throughput."""
    results: dict[int, tuple[float, float]] = {}
    for k in workers:
        t_small = timed_run(k, small, out, engine)
        t_large = timed_run(k, large, out, engine)
        end_to_end = large / t_large
        marginal = (large - small) / (t_large - t_small)
        results[k] = (end_to_end, marginal)
        print(
            f"{engine} workers={k}: {small} samples {t_small:.2f} s, {large} samples {t_large:.2f} s -> "
            f"end-to-end {end_to_end:.1f} q/s, marginal {marginal:.1f} q/s"
        )
    base = results[workers[0]]
    for k in workers[1:]:
        print(
            f"RESULT {engine} workers={k} vs {workers[0]}: end-to-end {results[k][0] / base[0]:.2f}x, "
            f"marginal (start-up excluded) {results[k][1] / base[1]:.2f}x"
        )


def skew(slow: float, small: int, large: int, out: Path) -> None:
    """2 workers, worker 1 ``slow`` times slower: static shards vs the shared queue (time to finish)."""
    os.environ["NEPTUNE_BENCH_SLOW_WORKER"], os.environ["NEPTUNE_BENCH_SLOW"] = "1", str(slow)
    times: dict[str, tuple[float, float]] = {}
    try:
        for engine in ("local", "ray-static", "ray"):
            t_small = timed_run(2, small, out, engine, tag="-skew")
            t_large = timed_run(2, large, out, engine, tag="-skew")
            times[engine] = (t_large, t_large - t_small)
            print(f"{engine}: {large} samples in {t_large:.2f} s ({t_large - t_small:.2f} s beyond the first {small})")
    finally:
        del os.environ["NEPTUNE_BENCH_SLOW_WORKER"], os.environ["NEPTUNE_BENCH_SLOW"]
    dynamic = times["ray"]
    for static in ("ray-static", "local"):
        print(
            f"RESULT skew x{slow:g}: dynamic (ray queue) finishes {times[static][0] / dynamic[0]:.2f}x sooner than "
            f"static ({static}) end-to-end, {times[static][1] / dynamic[1]:.2f}x marginal (start-up excluded)"
        )


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
    p.add_argument("--sections", nargs="+", choices=("local", "ray", "skew"), default=["local", "ray", "skew"])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--ms", type=float, default=20.0, help="CPU work per score() call, calibrated")
    p.add_argument("--small", type=int, default=20)
    p.add_argument("--large", type=int, default=220)
    p.add_argument("--slow", type=float, default=3.0, help="skew: how many times slower worker 1 is")
    args = p.parse_args()
    iters = calibrate(args.ms)
    os.environ["NEPTUNE_BENCH_BURN_ITERS"] = str(iters)
    print(f"cpus: {os.cpu_count()}; load average before: {os.getloadavg()}")
    print(f"machine ceiling before (plain processes, no framework): 2 vs 1 = {raw_ceiling(iters, 100):.2f}x")
    print(f"fake backend: {iters} iterations per score() call (~{args.ms} ms on an idle core)")
    ray = None
    if {"ray", "skew"} & set(args.sections):
        import ray

        from runners.ray_cluster import start_local

        t0 = time.perf_counter()
        start_local(ray, num_cpus=max(os.cpu_count() or 1, *args.workers))
        print(f"local Ray instance started in {time.perf_counter() - t0:.1f} s (once; not in the timings)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "local" in args.sections:
                scaling("local", args.workers, args.small, args.large, Path(tmp))
            if "ray" in args.sections:
                scaling("ray", args.workers, args.small, args.large, Path(tmp))
            if "skew" in args.sections:
                skew(args.slow, args.small, args.large, Path(tmp))
    finally:
        if ray is not None:
            ray.shutdown()
    print(f"machine ceiling now (plain processes, no framework): 2 vs 1 = {raw_ceiling(iters, 100):.2f}x")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
