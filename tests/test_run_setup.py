"""A run's setup built ahead (``program.prepare_run``; a sandbox process builds the next run's while it
waits): the run is the one it would have been, its program time counts from the run's start, and
nothing of one run's setup reaches another.
"""

from __future__ import annotations

import time

import pytest
import torch

from neptune_core.config import ExecutorConfig
from neptune_core.executor.program import prepare_run, run_program
from probabilistic_tensor import Semantics

PROGRAM = """
def execute(score, query, n):
    s = score("Is it red?", 1)
    print("n is", n)
    return [s.exists().item() > 0.5, query("What color?", s.iota()), n]
"""


def _call(log: list[tuple[str, dict]]):
    def call(name, request, program_seconds):
        log.append((name, request))
        return torch.tensor([0.2, 0.9, 0.1]) if name == "score" else "red"

    return call


def test_a_setup_built_ahead_runs_the_program_as_one_built_at_its_start():
    config, semantics = ExecutorConfig(), Semantics()
    here: list = []
    ahead: list = []
    plain = run_program(PROGRAM, 3, config, semantics, _call(here))
    call = _call(ahead)
    built = run_program(PROGRAM, 3, config, semantics, call, prepare_run(config, semantics, call))
    assert plain.error is None and built.error is None
    assert built.value == plain.value == [True, "red", 3]
    assert built.printed == plain.printed == ["n is 3"]
    assert built.operations == plain.operations
    assert ahead == here  # the same requests, bound under the run's own limits (3 boxes)


def test_program_time_counts_from_the_run_not_from_the_setup():
    config, semantics = ExecutorConfig(time_limit_s=0.2), Semantics()
    setup = prepare_run(config, semantics, _call([]))
    time.sleep(0.3)  # longer than the program may run: the wait is not the program's
    busy = "def execute(score, query, n):\n    k = 0\n    for i in range(300):\n        k = k + i\n    return k\n"
    result = run_program(busy, 3, config, semantics, setup.call, setup)  # (the clock is read every 64 steps)
    assert result.error is None, result.error
    assert result.value == sum(range(300))


def test_a_setup_is_its_runs_own():
    config, semantics = ExecutorConfig(), Semantics()
    first, second = (prepare_run(config, semantics, _call([])) for _ in range(2))
    with pytest.raises(ValueError, match="another call"):  # its primitives forward to the call it was built for
        run_program(PROGRAM, 3, config, semantics, second.call, first)
    assert first.names is not second.names and first.interp is not second.interp
    assert first.budget is not second.budget and first.printed is not second.printed
    assert first.names["score"] is not second.names["score"]
    run_program(PROGRAM, 3, config, semantics, first.call, first)
    assert second.printed == [] and second.budget.operations == 0
    # the primitives of a setup take the limits of the run that uses it (2 boxes: box 4 is out of range)
    two = run_program(
        "def execute(score, query, n):\n    return query('q', 1)\n", 2, config, semantics, second.call, second
    )
    assert two.error is None and two.value == "red"
    late = prepare_run(config, semantics, _call([]))
    out = run_program(
        "def execute(score, query, n):\n    return query('q', 4)\n", 2, config, semantics, late.call, late
    )
    assert out.error is not None and out.error.type == "IndexError"
