"""Framework overhead per question with the oracle backend (no model cost).

Generates the synthetic CLEVR world in memory (so no image decoding is timed), then
times Runner.process for every question: program translation, gt detection, the
sandboxed execution with the algebra, judging and building the result line.

    python bench/bench_overhead.py [--questions 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neptune_core.config import load_config  # noqa: E402
from runners.base import Runner  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    config = load_config(
        Path(__file__).resolve().parent.parent / "configs" / "clevr-mini-oracle.json",
        {"num_samples": args.questions},
    )
    runner = Runner(config)
    t0 = time.perf_counter()
    samples = runner.load_samples()
    print(f"generated {len(samples)} questions in {time.perf_counter() - t0:.2f} s (not counted)")
    for s in samples:  # images are in memory; make sure nothing is decoded inside the timed loop
        s.load_image()
    runner.process(samples[0])  # warm-up: lazy builds, first torch calls
    per_q: list[float] = []
    wrong = 0
    for _ in range(args.repeats):
        for s in samples:
            t = time.perf_counter()
            row = runner.process(s)
            per_q.append((time.perf_counter() - t) * 1000.0)
            wrong += 0 if row["correct"] else 1
    per_q.sort()
    print(f"questions timed: {len(per_q)} ({args.repeats} passes), wrong or errored: {wrong}")
    print(
        f"overhead per question: median {statistics.median(per_q):.3f} ms, "
        f"p90 {per_q[int(0.9 * len(per_q))]:.3f} ms, mean {statistics.fmean(per_q):.3f} ms"
    )


if __name__ == "__main__":
    main()
