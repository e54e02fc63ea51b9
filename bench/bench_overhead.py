"""Framework overhead per question with the oracle backend (no model: the oracle's own reading of
the scene is timed too, as is the CLEVR translator in place of an LLM), in both isolation modes
side by side: ``executor.isolation`` "in_process" and "process" (the sandbox process).

Generates the synthetic CLEVR world in memory (so no image decoding is timed), then times the
run loop (Runner.process_all, as run.py drives it, without writing results) question by question,
from one row to the next: program translation, gt detection, the sandboxed execution with the
algebra (the score calls evaluated ahead, and, in process mode, every score/query round trip to
the sandbox process), judging and building the bounded result line. In process mode the loop
translates the next question while the sandbox runs this one (this process would only wait),
so that work is timed within this question's interval. The two runners alternate pass by
pass, so machine load falls on both alike.

    python bench/bench_overhead.py [--questions 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from neptune_core.config import load_config  # noqa: E402
from runners.base import Runner  # noqa: E402

MODES = ("in_process", "process")


def _cpu_seconds(runner: Runner) -> float:
    """CPU seconds used so far by this process and by the runner's sandbox process (if any)."""
    t = os.times()
    total = t.user + t.system
    pid = runner.executor.sandbox.pid if runner.executor.isolation == "process" else None
    if pid is not None:
        child = psutil.Process(pid).cpu_times()
        total += child.user + child.system
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    config_path = Path(__file__).resolve().parent.parent / "configs" / "clevr-mini-oracle.json"
    runners = {
        mode: Runner(load_config(config_path, {"num_samples": args.questions, "executor.isolation": mode}))
        for mode in MODES
    }
    t0 = time.perf_counter()
    samples = runners["process"].load_samples()
    print(f"generated {len(samples)} questions in {time.perf_counter() - t0:.2f} s (not counted)")
    for s in samples:  # images are in memory; make sure nothing is decoded inside the timed loop
        s.load_image()
    for runner in runners.values():
        t0 = time.perf_counter()
        runner.executor.start()
        print(f"{runner.executor.isolation}: executor started in {1000 * (time.perf_counter() - t0):.1f} ms")
        runner.process(samples[0])  # warm-up: lazy builds, first torch calls
    per_q: dict[str, list[float]] = {mode: [] for mode in MODES}
    pass_medians: dict[str, list[float]] = {mode: [] for mode in MODES}  # how much the machine's speed drifts
    cpu_ms: dict[str, float] = dict.fromkeys(MODES, 0.0)  # CPU time of this process + the sandbox process
    wrong = dict.fromkeys(MODES, 0)
    rows_differ = 0
    for _ in range(args.repeats):
        for mode, runner in runners.items():
            c0 = _cpu_seconds(runner)
            times: list[float] = []
            t = time.perf_counter()
            for row in runner.process_all(samples):  # the run loop, as run.py drives it (no file written)
                times.append((time.perf_counter() - t) * 1000.0)
                wrong[mode] += 0 if row["correct"] else 1
                t = time.perf_counter()
            cpu_ms[mode] += (_cpu_seconds(runner) - c0) * 1000.0
            per_q[mode].extend(times)
            pass_medians[mode].append(statistics.median(times))
    sandbox = runners["process"].executor.sandbox
    runs = args.repeats * len(samples) + 1  # the warm-up included
    print(
        f"process: primitive calls per question: {sandbox.served / runs:.2f} over the pipe, "
        f"{sandbox.replayed / runs:.2f} answered in the sandbox from reused replies"
    )
    for s in samples[:200]:  # both modes give the same rows (timings aside)
        a, b = (runners[m].process(s) for m in MODES)
        rows_differ += {k: v for k, v in a.items() if k != "timings"} != {k: v for k, v in b.items() if k != "timings"}
    medians = {}
    for mode in MODES:
        times = sorted(per_q[mode])
        medians[mode] = statistics.median(times)
        print(
            f"{mode:>10}: {len(times)} questions timed ({args.repeats} passes), wrong or errored: {wrong[mode]}; "
            f"overhead per question: median {medians[mode]:.3f} ms, p90 {times[int(0.9 * len(times))]:.3f} ms, "
            f"mean {statistics.fmean(times):.3f} ms; CPU (both processes) {cpu_ms[mode] / len(times):.3f} ms; "
            f"median of each pass: {', '.join(f'{m:.3f}' for m in pass_medians[mode])} ms"
        )
    print(
        f"process isolation costs {medians['process'] - medians['in_process']:+.3f} ms per question "
        f"({medians['process'] / medians['in_process']:.2f}x); rows that differ between the modes: {rows_differ} of "
        f"{min(200, len(samples))}"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"machine load average (1, 5, 15 min): {load} on {os.cpu_count()} cores")
    for runner in runners.values():
        runner.executor.close()


if __name__ == "__main__":
    main()
