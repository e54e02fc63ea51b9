"""Times each ProbabilisticTensor operation on n objects (vectors over x, n x n relations over x, y).

Usage: python bench/bench_algebra.py [--n 64] [--reps 2000] [--threads 1] [--grad]
Prints the median (and 90th percentile) time per operation in microseconds; the goal is
every operation under 1 ms on a CPU. --grad makes the inputs require gradients, so the
timings include building the autograd graph.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

try:
    from probabilistic_tensor import ProbabilisticTensor, Semantics
except ModuleNotFoundError:  # run as `python bench/bench_algebra.py` from anywhere
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from probabilistic_tensor import ProbabilisticTensor, Semantics


def time_op(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """Median and 90th percentile of `reps` single calls, in microseconds."""
    for _ in range(min(50, reps)):
        fn()
    samples = []
    for _ in range(reps):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def build_ops(n: int, grad: bool) -> dict[str, Callable[[], object]]:
    """The benchmarked operations, on random inputs over n objects."""
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g).requires_grad_(grad)

    minmax = Semantics()
    product = Semantics(tnorm="product", quantifier="product")
    mm_iota = Semantics(iota="minmax")
    a = ProbabilisticTensor(rand(n), semantics=minmax)
    b = ProbabilisticTensor(rand(n), semantics=minmax)
    r = ProbabilisticTensor(rand(n, n), semantics=minmax)
    r2 = ProbabilisticTensor(rand(n, n), semantics=minmax)
    ap = ProbabilisticTensor(a.data, semantics=product)
    rp = ProbabilisticTensor(r.data, semantics=product)
    a_mm = ProbabilisticTensor(a.data, semantics=mm_iota)
    c1, c2 = a.count(), b.count()
    dist = a.iota()("y")
    return {
        "and  x & x": lambda: a & b,
        "and  x & (x,y)": lambda: a & r,
        "and  y & (x,y) (permute)": lambda: a("y") & r,
        "and  x & y (outer)": lambda: a & b("y"),
        "and  (x,y) & (y,x)": lambda: r & r2("y", "x"),
        "and  product x & (x,y)": lambda: ap & rp,
        "or   x | (x,y)": lambda: a | r,
        "or   product x | (x,y)": lambda: ap | rp,
        "not  ~(x,y)": lambda: ~r,
        "implies (x,y) -> x": lambda: r.implies(a),
        "and  x & 0.5 (scalar)": lambda: a & 0.5,
        "exists (x,y) over y": lambda: r.exists("y"),
        "exists (x,y) all": lambda: r.exists(),
        "exists product (x,y) all": lambda: rp.exists(),
        "forall (x,y) over x": lambda: r.forall("x"),
        "forall product (x,y) over y": lambda: rp.forall("y"),
        "count x": lambda: a.count(),
        "count (x,y) over y": lambda: r.count("y"),
        "iota softmax x": lambda: a.iota(),
        "iota minmax x": lambda: a_mm.iota(),
        "iota softmax (x,y) over y": lambda: r.iota("y"),
        "contract (x,y) with iota(y)": lambda: r.contract(dist),
        "contract chain r.contract(a.iota()(y))": lambda: r.contract(a.iota()("y")),
        "== numbers (0-d)": lambda: c1 == c2,
        "== number vs int": lambda: c1 == 3,
        "> numbers (0-d)": lambda: c1 > c2,
        ">= vector vs int": lambda: r.count("y") >= 2,
        "+ numbers": lambda: c1 + c2,
        "rename (x,y)->(y,z)": lambda: r("y", "z"),
        "rename diagonal (x,x)": lambda: r("x", "x"),
        "index t[3] on (x,y)": lambda: r[3],
        "bool(exists)": lambda: bool(a.exists()),
        "argmax x": lambda: a.argmax(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="number of objects")
    parser.add_argument("--reps", type=int, default=2000, help="repetitions per operation")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--grad", action="store_true", help="inputs require gradients")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ops = build_ops(args.n, args.grad)
    print(f"n={args.n} reps={args.reps} threads={args.threads} grad={args.grad} torch={torch.__version__}")
    print(f"{'operation':42s} {'median us':>10s} {'p90 us':>10s}")
    worst = 0.0
    for name, fn in ops.items():
        median, p90 = time_op(fn, args.reps)
        worst = max(worst, median)
        print(f"{name:42s} {median:10.1f} {p90:10.1f}")
    print(f"slowest median: {worst:.1f} us ({'under' if worst < 1000 else 'OVER'} the 1 ms goal)")


if __name__ == "__main__":
    main()
