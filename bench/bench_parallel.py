"""Throughput of data-parallel workers with a CPU-bound fake backend: local processes and Ray actors.

Every sample's program makes one score() call; the fake VisionAgent burns a fixed
amount of pure-Python CPU work per call (calibrated to ~``--ms`` ms on this machine,
fixed iterations rather than wall time, so contention slows it down as a real model
would). Each run starts fresh workers (spawned processes, or new Ray actors, which
import torch); a thread counts the rows in the run directory as they appear, so besides
the end-to-end time each run reports its steady rate (rows/s between 10 % and 90 % of
the rows: start-up and stragglers left out) and when its first and last rows came. Sections:

- ``local``: ``--workers`` K vs 1 (runners.run_vqa_parallel: spawned processes, static shards);
- ``ray``: K Ray actors vs 1 (runners.ray_cluster; one local Ray instance, started once);
- ``skew``: 2 workers, worker 1 ``--slow`` times slower: Ray's shared queue against static shards
  (Ray actors each given every 2nd sample up front, and local processes), compared by the time
  from the first row to the last (the work, once started) and end to end. By default each call
  waits ``--ms`` (worker 1: ``--slow`` times as long) as a call to a GPU would, so the result is
  about scheduling, not about how busy the machine's cores are (``--skew_work burn``: CPU work).

The machine's own ceiling (the same burn work in 2 plain processes vs 1) and the load
average are printed before and after: other jobs on the machine lower both ratios.

    python bench/bench_parallel.py [--sections local ray skew] [--workers 1 2] [--ms 20] [--samples 300]
                                   [--repeat 1] [--skew_samples 900] [--slow 3] [--skew_work wait|burn]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
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
    """Burns NEPTUNE_BENCH_BURN_ITERS per call, or waits NEPTUNE_BENCH_WAIT_MS (a device doing the work);
    NEPTUNE_BENCH_SLOW times as much on worker NEPTUNE_BENCH_SLOW_WORKER."""

    def score(self, image: Image.Image, boxes: list, questions: list[str], arity: int) -> torch.Tensor:
        factor = 1.0
        if os.environ.get("NEPTUNE_WORKER_INDEX") == os.environ.get("NEPTUNE_BENCH_SLOW_WORKER", "-"):
            factor = float(os.environ.get("NEPTUNE_BENCH_SLOW", "1"))
        if "NEPTUNE_BENCH_WAIT_MS" in os.environ:
            time.sleep(float(os.environ["NEPTUNE_BENCH_WAIT_MS"]) * factor / 1000.0)
        else:
            burn(int(int(os.environ["NEPTUNE_BENCH_BURN_ITERS"]) * factor))
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
        # one image per sample (as in most benchmarks): the per-image memo must not serve one
        # sample's score() call from another's, or the work being measured would be skipped
        boxes = [[float(i), 0.0, float(i) + 4.0, 4.0] for i in range(4)]
        return [
            Sample(id=f"b{i:05d}", question="how many red?", answer="4", image=_image(i), boxes=boxes)
            for i in range(self.config.num_samples)
        ]


def _image(i: int) -> Image.Image:
    image = Image.new("RGB", (32, 32))
    image.putpixel((i % 32, (i // 32) % 32), (i % 256, (i // 1024) % 256, 1))
    return image


@dataclass
class Timing:
    """One run: seconds to the end, to its first and last row, and its steady rate (rows/s between
    10 % and 90 % of the rows: the workers' start-up and the last stragglers left out)."""

    elapsed: float
    first_row: float
    last_row: float
    steady: float

    @property
    def work(self) -> float:
        """Seconds from the first row to the last: how long the work took once it started."""
        return self.last_row - self.first_row


class RowWatch(threading.Thread):
    """Counts the rows of a run directory (results.jsonl and shard files) every 10 ms, with the time."""

    def __init__(self, run_dir: Path, t0: float) -> None:
        super().__init__(daemon=True)
        self.run_dir, self.t0, self.seen = run_dir, t0, [(0.0, 0)]
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            n = sum(p.read_bytes().count(b"\n") for p in self.run_dir.glob("results*.jsonl") if p.exists())
            if n != self.seen[-1][1]:
                self.seen.append((time.perf_counter() - self.t0, n))

    def when(self, rows: float) -> float:
        """Seconds until at least ``rows`` rows were there."""
        return next(t for t, n in self.seen if n >= rows)


def timed_run(workers: int, samples: int, out: Path, engine: str = "local", tag: str = "") -> Timing:
    """Run ``samples`` with ``workers``: engine "local" (spawned processes, static shards), "ray" (the
    shared queue, batches of 4) or "ray-static" (Ray actors, each given every K-th sample up front)."""
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
    watch = RowWatch(run_dir, t0)
    watch.start()
    if engine == "local":
        summary = run_parallel(config, run_dir, runner_cls=BenchRunner, progress=False)
    else:  # actors import the runner by its module's name, which "__main__" is not
        from bench.bench_parallel import BenchRunner as ByName

        summary = run_on_ray(config, run_dir, runner_cls=ByName, progress=False, static_shares=engine == "ray-static")
    elapsed = time.perf_counter() - t0
    watch.stop.set()
    watch.join()
    assert summary["num_samples"] == samples and summary["errors"]["total"] == 0, summary
    lo, hi = watch.when(0.1 * samples), watch.when(0.9 * samples)
    timing = Timing(elapsed, watch.when(1), watch.when(samples), 0.8 * samples / (hi - lo))
    print(
        f"  {engine} workers={workers} n={samples}: {elapsed:.2f} s (first row at {timing.first_row:.2f} s, "
        f"last at {timing.last_row:.2f} s), steady {timing.steady:.1f} q/s, median time per sample "
        f"{summary['timings']['total']['median_ms']:.1f} ms"
    )
    return timing


def scaling(engine: str, workers: list[int], samples: int, out: Path, repeat: int = 1) -> None:
    """K workers vs the first of ``workers``: steady and end-to-end throughput, each ratio from runs
    side by side (the K runs of one round follow each other), ``repeat`` rounds, and their median."""
    ratios: dict[int, list[tuple[float, float]]] = {k: [] for k in workers[1:]}
    for r in range(repeat):
        results = {k: timed_run(k, samples, out, engine, tag=f"-r{r}") for k in workers}
        base = results[workers[0]]
        for k in workers[1:]:
            ratios[k].append((results[k].steady / base.steady, base.elapsed / results[k].elapsed))
    for k, pairs in ratios.items():
        steady, end_to_end = sorted(p[0] for p in pairs), sorted(p[1] for p in pairs)
        print(
            f"RESULT {engine} workers={k} vs {workers[0]}: steady {statistics.median(steady):.2f}x (start-up "
            f"excluded; rounds {', '.join(f'{x:.2f}' for x in steady)}), end-to-end {statistics.median(end_to_end):.2f}x "
            f"(rounds {', '.join(f'{x:.2f}' for x in end_to_end)})"
        )


def skew(slow: float, samples: int, out: Path, wait_ms: float | None) -> None:
    """2 workers, worker 1 ``slow`` times slower: static shards vs the shared queue (time to finish).

    ``wait_ms``: each call waits that long instead of burning CPU, as on a GPU (worker 1: ``slow``
    times as long), so the comparison measures the scheduling and not how the machine's cores are shared.
    """
    extra = {"NEPTUNE_BENCH_SLOW_WORKER": "1", "NEPTUNE_BENCH_SLOW": str(slow)}
    if wait_ms is not None:
        extra["NEPTUNE_BENCH_WAIT_MS"] = str(wait_ms)
    os.environ.update(extra)
    try:
        times = {engine: timed_run(2, samples, out, engine, tag="-skew") for engine in ("ray", "ray-static", "local")}
    finally:
        for key in extra:
            del os.environ[key]
    dynamic = times["ray"]
    kind = f"waiting {wait_ms:g} ms per call" if wait_ms is not None else "burning CPU"
    for static in ("ray-static", "local"):
        print(
            f"RESULT skew x{slow:g} ({kind}): dynamic (ray queue) finishes {times[static].work / dynamic.work:.2f}x "
            f"sooner than static ({static}) from first row to last, {times[static].elapsed / dynamic.elapsed:.2f}x "
            "end-to-end"
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
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--repeat", type=int, default=1, help="local/ray: rounds of K vs 1 runs (the median is reported)")
    p.add_argument("--skew_samples", type=int, default=900, help="skew: samples per run (start-up is ~10 s here)")
    p.add_argument("--slow", type=float, default=3.0, help="skew: how many times slower worker 1 is")
    p.add_argument(
        "--skew_work",
        choices=("wait", "burn"),
        default="wait",
        help="skew: each call waits --ms (a device doing the work; the default) or burns CPU like the other sections",
    )
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
                scaling("local", args.workers, args.samples, Path(tmp), args.repeat)
            if "ray" in args.sections:
                scaling("ray", args.workers, args.samples, Path(tmp), args.repeat)
            if "skew" in args.sections:
                skew(args.slow, args.skew_samples, Path(tmp), args.ms if args.skew_work == "wait" else None)
    finally:
        if ray is not None:
            ray.shutdown()
    print(f"machine ceiling now (plain processes, no framework): 2 vs 1 = {raw_ceiling(iters, 100):.2f}x")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
