"""A program's run leaves no reference cycles behind.

Everything a run makes (interpreter, scopes, primitive closures, tensors, lazy stores) must be
freed by reference counting when the run ends. Cyclic garbage is freed only by a collection
pass, which then walks every young object: per question that cost more than the cycles' own
work (bench/bench_overhead.py). The runs here are real (interpreter, algebra, lazy relations,
score ahead through a memoising agent); only the vision model is a table.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator

import pytest
import torch
from PIL import Image

from neptune_core.config import ExecutorConfig
from neptune_core.executor import Executor
from probabilistic_tensor import LazyPolicy, Semantics
from vision_agents.base import MemoizedAgent, VisionAgent

BOXES = [[float(10 * i), 0.0, float(10 * i + 5), 5.0] for i in range(5)]

PROGRAMS = {
    "lazy relation and iota": """
def execute(score, query, n):
    cube = score("Is the object in the red box a cube?", 1)
    the = cube.iota()
    left = score("Is the object in the red box left of the object in the green box?", 2)
    return (left.contract(the("y")) & ~the).count()
""",
    "helper function, lambda, containers, query": """
def best(t):
    return max(range(len(t)), key=lambda i: float(t[i]))

def execute(score, query, n):
    red = score("Is the object in the red box red?", 1)
    parts = {"red": red, "list": [red, [red]]}
    i = best(red)
    return query("What color is the object in the red box?", i) + str(len(parts["list"]))
""",
    "relation returned whole": """
def execute(score, query, n):
    return score("Is the object in the red box right of the object in the green box?", 2)
""",
}


class TableAgent(VisionAgent):
    """p(yes) from fixed tables (the model is not what is under test)."""

    def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
        shape = (len(questions),) + (len(boxes),) * arity
        return torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape) % 7 / 7

    def score_tuples_with_info(self, image, tuples, questions, arity):  # type: ignore[no-untyped-def]
        values = [[(sum(b[0] for b in t) % 7) / 7 for t in tuples] for _ in questions]
        return torch.tensor(values), [{} for _ in questions]

    def answer(self, image, box, question):  # type: ignore[no-untyped-def]
        return "red"


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _cyclic_garbage() -> Counter[str]:
    """The types of what a collection pass finds unreachable now (and frees)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()  # the saved objects were kept by gc.garbage: free them for good
    return found


@pytest.mark.parametrize("name", list(PROGRAMS))
@pytest.mark.parametrize("lazy", [True, False])
@pytest.mark.parametrize("isolation", ["in_process", "process"])
def test_a_run_leaves_no_cyclic_garbage(isolation: str, name: str, lazy: bool, collector_off: None) -> None:
    """In-process: the whole run. With a sandbox process: this process's side (the score calls
    evaluated ahead, the calls served, the result decoded); the sandbox runs the same run_program."""
    executor = Executor(
        ExecutorConfig(isolation=isolation), Semantics(iota="minmax"), lazy=LazyPolicy() if lazy else None
    )
    agent = MemoizedAgent(TableAgent())  # memoising: the planned score calls are evaluated ahead
    image = Image.new("RGB", (60, 20))
    with torch.no_grad():
        first = executor.run(PROGRAMS[name], agent, image, BOXES)  # lazy imports and caches are filled here
        assert first.error is None, first.error
        _cyclic_garbage()  # freed here: what the first run's lazy imports left is not a run's
        outcome = executor.run(PROGRAMS[name], agent, image, BOXES)
    assert outcome.error is None, outcome.error
    del outcome
    garbage = _cyclic_garbage()
    executor.close()
    assert garbage == Counter()


def test_a_failing_run_leaves_no_cyclic_garbage(collector_off: None) -> None:
    executor = Executor(ExecutorConfig(isolation="in_process"), Semantics())
    agent = MemoizedAgent(TableAgent())
    image = Image.new("RGB", (60, 20))
    source = 'def execute(score, query, n):\n    s = score("Is it red?", 1)\n    return s[n + 3]\n'
    with torch.no_grad():
        executor.run(source, agent, image, BOXES)
        _cyclic_garbage()
        outcome = executor.run(source, agent, image, BOXES)
    assert outcome.error is not None and outcome.error.type == "IndexError", outcome.error
    del outcome
    assert _cyclic_garbage() == Counter()


class _Knot:
    """An object that refers to itself."""

    def __init__(self) -> None:
        self.me = self


def test_the_check_finds_cycles_when_there_are_some(collector_off: None) -> None:
    """The measure itself: a cycle made on purpose is found (and only then)."""
    assert _cyclic_garbage()["_Knot"] == 0
    _Knot()
    assert _cyclic_garbage()["_Knot"] == 1
