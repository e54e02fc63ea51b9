"""Measure the sandbox's overhead: ``python -m neptune_core.executor.bench``.

Runs a typical 10-line program through :class:`Executor` in both isolation modes and, for
comparison, the same function written as plain Python in this module (calling the same
primitives in-process), with a fake agent that answers instantly; prints median microseconds.
bench/bench_overhead.py measures the whole run loop per question.
"""

from __future__ import annotations

import statistics
import time

import torch
from PIL import Image

from neptune_core.config import ExecutorConfig
from neptune_core.executor.checker import parse_source, tree_problems
from neptune_core.executor.executor import Executor
from neptune_core.primitives import all_primitives
from neptune_core.primitives.base import CallContext, Limits
from probabilistic_tensor import Semantics, count
from vision_agents.base import VisionAgent

PROGRAM = """
def execute(score, query, n):
    cube = score("Is the object in the red box a cube?")
    red = score("Is the object in the red box red?")
    left = score("Is the red-box object left of the green-box object?", 2)
    anchor = (cube & red).iota()
    candidates = left.contract(anchor("y")) & ~cube
    if candidates.exists() and count(candidates) > 0:
        return query("What color is the object in the red box?", candidates.iota())
    names = [f"box {i}" for i in range(n) if cube[i].item() > 0.5]
    return "no" if not names else names[0]
"""


def _native_execute(score, query, n):  # the same program as plain Python: the timing baseline
    cube = score("Is the object in the red box a cube?")
    red = score("Is the object in the red box red?")
    left = score("Is the red-box object left of the green-box object?", 2)
    anchor = (cube & red).iota()
    candidates = left.contract(anchor("y")) & ~cube
    if candidates.exists() and count(candidates) > 0:
        return query("What color is the object in the red box?", candidates.iota())
    names = [f"box {i}" for i in range(n) if cube[i].item() > 0.5]
    return "no" if not names else names[0]


class _InstantAgent(VisionAgent):
    name = "instant"

    def score(self, image, boxes, questions, arity):
        return torch.full((len(questions),) + (len(boxes),) * arity, 0.6)

    def answer(self, image, box, question):
        return "red"


def _median_us(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main(repeats: int = 300) -> dict[str, float]:
    agent, image, boxes = _InstantAgent(), Image.new("RGB", (32, 32)), [[0, 0, 8, 8]] * 5
    executors = {mode: Executor(ExecutorConfig(isolation=mode), Semantics()) for mode in ("in_process", "process")}
    for executor in executors.values():
        executor.start()
        assert executor.run(PROGRAM, agent, image, boxes).error is None
    outcome = executors["in_process"].run(PROGRAM, agent, image, boxes)
    config, semantics = ExecutorConfig(), Semantics()

    def native() -> None:
        ctx = CallContext(agent, image, boxes, config)
        limits = Limits(len(boxes), config.max_question_chars)
        prims = all_primitives()

        def make(name: str):
            prim = prims[name]
            return lambda *a, **k: prim.wrap(
                req := prim.request(limits, a, k), prim.call(ctx, req, trusted=True), semantics
            )

        _native_execute(make("score"), make("query"), len(boxes))

    result = {
        "in_process_run_us": _median_us(lambda: executors["in_process"].run(PROGRAM, agent, image, boxes), repeats),
        "process_run_us": _median_us(lambda: executors["process"].run(PROGRAM, agent, image, boxes), repeats),
        "native_python_us": _median_us(native, repeats),
        "check_source_uncached_us": _median_us(lambda: tree_problems(parse_source(PROGRAM)), repeats),
        "operations": float(outcome.operations),
    }
    result["in_process_overhead_us"] = result["in_process_run_us"] - result["native_python_us"]
    result["process_overhead_us"] = result["process_run_us"] - result["native_python_us"]
    for k, v in result.items():
        print(f"{k}: {v:.0f}")
    for executor in executors.values():
        executor.close()
    return result


if __name__ == "__main__":
    main()
