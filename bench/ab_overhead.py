"""Two checkouts of the framework side by side: the per-question overhead of bench_overhead.py's run
loop, with the checkouts taking turns every few questions, so that the machine's drift (±20% over
minutes on a shared 2-core machine) falls on both alike. For changes of a few percent, which passes
of a whole data set (bench_overhead.py's own alternation) cannot tell apart.

Each checkout runs in a worker process of its own (its code imported from its directory) on the same
synthetic CLEVR questions (configs/clevr-mini-oracle.json of this checkout); the workers run chunk
after chunk, in a random order per chunk. Reported: each checkout's median over every question, and
the median of the per-chunk ratios of the chunk medians (the number to quote).

    git worktree add /tmp/before HEAD~1
    python bench/ab_overhead.py /tmp/before [--mode process] [--rounds 10] [--questions 1000] [--chunk 100]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CONFIG = HERE / "configs" / "clevr-mini-oracle.json"


def worker(root: Path, mode: str, questions: int) -> None:
    """Read "start end" lines; for each, run those questions and print the seconds of each (JSON)."""
    sys.path.insert(0, str(root))
    from neptune_core.config import load_config
    from runners.base import Runner

    runner = Runner(load_config(CONFIG, {"num_samples": questions, "executor.isolation": mode}))
    samples = runner.load_samples()
    for s in samples:
        s.load_image()
    runner.executor.start()
    runner.process(samples[0])  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        start, end = map(int, line.split())
        times: list[float] = []
        t = time.perf_counter()
        for _ in runner.process_all(samples[start:end]):
            times.append(time.perf_counter() - t)
            t = time.perf_counter()
        print(json.dumps(times), flush=True)
    runner.executor.close()


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", type=Path, help="the other checkout (a directory with neptune_core/ and runners/)")
    ap.add_argument("--mode", choices=("process", "in_process"), default="process")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        worker(args.worker, args.mode, args.questions)
        return
    other = args.other.resolve()
    if not (other / "neptune_core").is_dir() or not (other / "runners").is_dir():
        _fail(f"{other} is not a checkout of this framework (no neptune_core/ or runners/ in it)")
    roots = {"this": HERE, "other": other}
    workers = {
        name: subprocess.Popen(
            [
                sys.executable,
                __file__,
                str(other),
                "--worker",
                str(root),
                "--mode",
                args.mode,
                "--questions",
                str(args.questions),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name, root in roots.items()
    }
    for name, proc in workers.items():
        if proc.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
            _fail(f"the worker for {roots[name]} did not start (its error is above)")
    times: dict[str, list[float]] = {name: [] for name in workers}
    ratios: list[float] = []
    for _ in range(args.rounds):
        for start in range(0, args.questions, args.chunk):
            order = list(workers.items())
            random.shuffle(order)
            medians = {}
            for name, proc in order:
                proc.stdin.write(f"{start} {min(args.questions, start + args.chunk)}\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
                chunk = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
                times[name].extend(chunk)
                medians[name] = statistics.median(chunk)
            ratios.append(medians["this"] / medians["other"])
    for proc in workers.values():
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()
    for name, root in roots.items():
        print(
            f"{name:>5} ({root}): median {1000 * statistics.median(times[name]):.3f} ms over {len(times[name])} questions"
        )
    print(
        f"this / other, per chunk of {args.chunk} ({len(ratios)} chunks, {args.mode}): median {statistics.median(ratios):.3f}, "
        f"quartiles {statistics.quantiles(ratios, n=4)[0]:.3f} .. {statistics.quantiles(ratios, n=4)[2]:.3f}"
    )


if __name__ == "__main__":
    main()
