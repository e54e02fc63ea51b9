"""Reused replies in the sandbox process (neptune_core/executor/child.py, ``Primitive.reuse``).

A ``score``/``query`` request already answered for the same image, boxes and memo is answered in
the sandbox from its copy and replayed in the parent afterwards. These tests run the real sandbox
process through the real Runner and check what must not change: the rows (trace, counts, values)
are those of in-process runs, the call limit stops a program at the same call, a new memo or image
is never served from old replies, and a replay that fails in the parent fails the sample.
"""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from neptune_core.config import ExecutorConfig, RunConfig
from neptune_core.primitives.base import CallContext
from neptune_core.types import Detection, Program, Sample
from runners.base import Runner
from tests.score_fakes import BOXES, IMAGES, ShiftAgent
from vision_agents.base import Detector, VisionAgent


class FixedBoxes(Detector):
    name = "fixed"

    def detect(self, image, object_names):
        return Detection(boxes=BOXES, scores=[1.0] * len(BOXES), labels=["object"] * len(BOXES))


class GivenPrograms:
    def program_for(self, sample: Sample) -> Program:
        return Program(sample.meta["source"], origin="given", object_names=["object"])


PROGRAMS = [
    "def execute(score, query, n):\n    a = score('Is it red?')\n    return a.exists().item()\n",
    "def execute(score, query, n):\n"
    "    a = score('Is it red?') & score('Is it a cube?')\n"
    "    b = score('Is it red?') | score('Is it large?', 0)\n"
    "    return str(round(a.exists().item() + b.exists().item(), 4)) + query('What colour is it?', a.iota())\n",
    "def execute(score, query, n):\n"
    "    r = score('Is it left of it?', 2)\n"
    "    c = r.contract(score('Is it a cube?').iota()('y'))\n"
    "    return str(round(c.exists().item(), 4)) + query('What colour is it?', 1) + query('What colour is it?', 1)\n",
    "def execute(score, query, n):\n"
    "    total = 0.0\n"
    "    for q in ['Is it red?', 'Is it a cube?', 'Is it red?', 'Is it metal?']:\n"
    "        total = total + score(q).exists().item()\n"
    "    return round(total, 4)\n",
]


def _runner(isolation: str, agent: VisionAgent, **limits: Any) -> Runner:
    """Scoring ahead off unless asked for (tests/test_score_ahead.py): these tests count round trips."""
    limits.setdefault("score_ahead", 0)
    config = RunConfig(dataset="jsonl", report=False, executor=ExecutorConfig(isolation=isolation, **limits))
    return Runner(config, agent=agent, detector=FixedBoxes(), generator=GivenPrograms())


def _samples(image: Image.Image, prefix: str, programs: list[str]) -> list[Sample]:
    return [
        Sample(id=f"{prefix}{i}", question=f"q{i}", answer=None, image=image, meta={"source": source})
        for i, source in enumerate(programs)
    ]


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "timings"}


@pytest.fixture
def process_runner():
    made: list[Runner] = []

    def make(agent: VisionAgent, **limits: Any) -> Runner:
        runner = _runner("process", agent, **limits)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.executor.close()


@pytest.mark.parametrize("ahead", [0, 16])
def test_reused_replies_give_the_rows_of_in_process_runs(process_runner, ahead: int) -> None:
    samples = (
        _samples(IMAGES[0], "a", PROGRAMS) + _samples(IMAGES[1], "b", PROGRAMS) + _samples(IMAGES[0], "c", PROGRAMS)
    )
    in_process = _runner("in_process", ShiftAgent(), score_ahead=ahead)
    sandboxed = process_runner(ShiftAgent(), score_ahead=ahead)
    expected = [_row(in_process.process(s)) for s in samples]
    got = [_row(sandboxed.process(s)) for s in samples]
    for e, g in zip(expected, got, strict=True):
        assert g["error"] is None, g["error"]
        assert g == e  # trace entries (in order), model_calls (memo hits included), answers
    sandbox = sandboxed.executor.sandbox
    entries = sum(len(r["trace"]) for r in got)
    assert sandbox.replayed > 0  # the image's later questions reused replies
    assert sandbox.served + sandbox.replayed >= entries  # every call reached the parent, as a call or a replay
    assert sandbox.served < entries


def test_the_call_limit_counts_reused_calls(process_runner) -> None:
    source = "def execute(score, query, n):\n    for i in range(50):\n        score('Is it red?')\n    return 1\n"
    sample = _samples(IMAGES[0], "limit", [source])[0]
    rows = [_runner("in_process", ShiftAgent(), max_primitive_calls=20).process(sample)]
    rows.append(process_runner(ShiftAgent(), max_primitive_calls=20).process(sample))
    for row in rows:
        assert row["error"]["type"] == "PrimitiveLimitError"
        assert "more than 20 primitive calls" in row["error"]["message"]
        assert len(row["trace"]) == 20
    assert _row(rows[0]) == _row(rows[1])


def test_a_new_memo_or_image_is_not_served_from_old_replies(process_runner) -> None:
    agent = ShiftAgent()
    runner = process_runner(agent)
    source = "def execute(score, query, n):\n    return str(round(score('Is it red?').exists().item(), 4)) + query('Colour?', 0)\n"
    first = runner.process(_samples(IMAGES[0], "m", [source])[0])
    again = runner.process(_samples(IMAGES[0], "n", [source])[0])
    assert again["pred"] == first["pred"] and runner.executor.sandbox.replayed == 2
    agent.shift = 0.1  # the weights changed: the memo is cleared, and no reply may be reused
    runner.agent.clear()
    calls = agent.calls
    changed = runner.process(_samples(IMAGES[0], "o", [source])[0])
    assert agent.calls == calls + 2 and changed["pred"] != first["pred"] and "answer10" in changed["pred"]
    assert changed["trace"][0]["probs"] == [round(p + 0.1, 4) for p in first["trace"][0]["probs"]]
    other = runner.process(_samples(IMAGES[1], "p", [source])[0])  # another image: its own replies
    assert runner.executor.sandbox.replayed == 2 and agent.calls == calls + 4 and other["error"] is None


def test_a_replayed_call_that_fails_in_the_parent_fails_the_sample(process_runner, monkeypatch) -> None:
    runner = process_runner(ShiftAgent())
    source = "def execute(score, query, n):\n    return score('Is it red?').exists().item()\n"
    assert runner.process(_samples(IMAGES[0], "r", [source])[0])["error"] is None
    record = CallContext.record

    def failing(self: CallContext, entry: dict[str, Any]) -> None:
        raise RuntimeError("the parent cannot record this call")

    monkeypatch.setattr(CallContext, "record", failing)
    caught = "def execute(score, query, n):\n    try:\n        return score('Is it red?').exists().item()\n    except Exception:\n        return 0\n"
    row = runner.process(_samples(IMAGES[0], "s", [caught])[0])  # reused in the sandbox, so it fails on replay
    assert runner.executor.sandbox.replayed == 1
    assert row["error"]["type"] == "RuntimeError" and "repeated call" in row["error"]["message"]
    assert row["outcome"] == "error"
    monkeypatch.setattr(CallContext, "record", record)
    assert runner.process(_samples(IMAGES[0], "t", [source])[0])["error"] is None  # the sandbox goes on


def test_lazy_relation_handles_are_given_in_the_sandbox_and_checked_by_the_parent(process_runner) -> None:
    source = (
        "def execute(score, query, n):\n"
        "    r = score('Is it left of it?', 2)\n"
        "    s = score('Is it behind it?', 2)\n"
        "    return round(r.contract(score('Is it red?').iota()('y')).exists().item(), 4)\n"
    )
    sample = _samples(IMAGES[0], "h", [source])[0]
    runner = process_runner(ShiftAgent())
    row = runner.process(sample)
    assert _row(row) == _row(_runner("in_process", ShiftAgent()).process(sample))
    sandbox = runner.executor.sandbox
    # asked over the pipe: score('Is it red?') and the one relation's pairs; the two handles were not
    assert (sandbox.served, sandbox.replayed) == (2, 2)
    assert [e.get("arity") for e in row["trace"]] == [2, 2, 1]
    assert row["trace"][1]["lazy"]["evaluated"] == 0  # never read: no pair of it was evaluated

    ctx = CallContext(ShiftAgent(), IMAGES[0], BOXES, ExecutorConfig(), lazy=runner.executor.lazy)
    request = {"question": "Is it left of it?", "num_objects": 2, "type": None, "image": 0}
    lie = {"relation": 3, "n": 3, "mass_threshold": 0.0}
    error = sandbox._replay(ctx, {"op": "replay", "name": "score", "request": request, "expect": lie})
    assert error is not None and error[1] == "SandboxCrash" and "not {'relation': 0" in error[2]
    error = sandbox._replay(ctx, {"op": "replay", "name": "score_pairs", "request": {}})
    assert error is not None and error[1] == "SandboxCrash" and "which it may not" in error[2]
