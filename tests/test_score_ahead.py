"""Scoring ahead (neptune_core/executor/score_ahead.py): the literal score calls a program cannot
skip are evaluated before it, in one batch per arity, and (process isolation) sent with the run.

What must hold: only calls the program cannot skip are planned, at most ``executor.score_ahead``;
rows are those of runs without it (model_calls aside: the batch is one call, and the program's
calls become memo hits), the same in both isolation modes; an agent that fails ahead fails the
sample only where the program makes the call; the sandbox asks for none of the planned calls.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import torch

from neptune_core.config import ExecutorConfig, RunConfig
from neptune_core.executor.score_ahead import bound_requests, planned_calls
from neptune_core.primitives.base import Limits
from neptune_core.types import Program, Sample
from runners.base import Runner
from tests.score_fakes import BOXES, IMAGES, ShiftAgent
from tests.test_sandbox_reuse import FixedBoxes, GivenPrograms, _row, _runner, _samples

LIMITS = Limits(n=3, max_question_chars=40)


def _plan(body: str, *, lazy: bool = False, cap: int = 16) -> list[tuple[str, int]]:
    source = "def execute(score, query, n):\n" + "".join(f"    {line}\n" for line in body.strip("\n").split("\n"))
    calls = planned_calls(source, cap, lazy, checker_cache=True)
    assert calls == planned_calls(source, cap, lazy, checker_cache=False)  # the same plan in both modes
    return [(r["question"], r["num_objects"]) for r in bound_requests(calls, LIMITS, cap, lazy)]


def test_only_literal_calls_before_the_first_branch_are_planned() -> None:
    body = """
a = score("Is it red?") & score("Is it big?", num_objects=1)
b = score("Is it red?") | score("Any cube?", 0)
c = score("Is it near?", 2).contract(a.iota()("y"))
d = a if score("Is it odd?", 0).item() > 0.5 else score("Is it even?")
e = a.exists() and score("Only when a exists?")
f = [score(q) for q in ["In a comprehension?"]]
g = score("Typed?", 1, type="class") | score(f"{n} formatted?") | score("Image?", image=0)
if a.exists():
    h = score("Inside an if?")
k = score("After the if?")
return a
"""
    assert _plan(body) == [
        ("Is it red?", 1),
        ("Is it big?", 1),
        ("Any cube?", 0),
        ("Is it near?", 2),
        ("Is it odd?", 0),
    ]
    # lazy relations hand out handles: their pairs are read later, so arity 2 is left to the program
    assert ("Is it near?", 2) not in _plan(body, lazy=True)


def test_the_plan_stops_at_a_return_a_rebinding_the_cap_and_a_bad_request() -> None:
    assert _plan('return score("First?").exists()\nx = score("Unreachable?")') == [("First?", 1)]
    assert _plan('score = query\na = score("Not the primitive?")\nreturn a') == []
    many = "\n".join(f'a{i} = score("Question {i}?")' for i in range(40)) + "\nreturn a0"
    assert len(_plan(many, cap=5)) == 5 and _plan(many, cap=5)[0] == ("Question 0?", 1)
    # too long for executor.max_question_chars, or blank: the program's own call reports it
    assert _plan(f'a = score("{"x" * 41}") & score(" ") & score("Short?")\nreturn a') == [("Short?", 1)]


def test_the_plan_is_that_of_the_parsed_program_and_its_requests_are_bound_like_the_programs() -> None:
    assert _plan("a = score('Unclosed?'\nreturn a") == []
    # a program that fails the check is planned as parsed (the check runs in the sandbox meanwhile)
    assert _plan('a = score("Is it red?")\nb = a.__class__\nreturn a') == [("Is it red?", 1)]
    assert planned_calls("def other(score, query, n):\n    return score('x?')\n", 16, False, checker_cache=False) == []
    calls = [("Is it red?", 1), ("Pair?", 2), ("x" * 41, 1), (" ", 0), ("Last?", 1)]
    assert [r["question"] for r in bound_requests(calls, LIMITS, 16, True)] == ["Is it red?", "Last?"]
    assert [r["question"] for r in bound_requests(calls, LIMITS, 16, False)] == ["Is it red?", "Pair?", "Last?"]
    assert [r["question"] for r in bound_requests(calls, LIMITS, 2, False)] == ["Is it red?", "Pair?"]


PROGRAM = (
    "def execute(score, query, n):\n"
    "    a = score('Is it red?') & score('Is it a cube?') & score('Is it large?')\n"
    "    b = score('Is there a sphere?', 0)\n"
    "    return str(round(a.exists().item() + b.item(), 4)) + query('What colour is it?', a.iota())\n"
)


def _rows(runner: Runner, prefix: str, programs: list[str]) -> list[dict[str, Any]]:
    return [_row(runner.process(s)) for s in _samples(IMAGES[0], prefix, programs)]


@pytest.mark.parametrize("isolation", ["in_process", "process"])
def test_the_batch_is_one_model_call_and_the_rows_are_unchanged(isolation: str) -> None:
    plain_agent, ahead_agent = ShiftAgent(), ShiftAgent()
    plain = _runner(isolation, plain_agent, score_ahead=0)
    ahead = _runner(isolation, ahead_agent, score_ahead=16)
    try:
        want, got = _rows(plain, "s", [PROGRAM]), _rows(ahead, "s", [PROGRAM])
        assert got[0]["error"] is None
        assert plain_agent.calls == 5  # three arity-1 questions, one arity-0, one query
        assert ahead_agent.calls == 3  # the arity-1 questions in one batch, arity 0, the query
        for row in (*want, *got):
            row.pop("model_calls")
            row.pop("config_hash")  # executor.score_ahead is hashed when not the default
        assert got == want  # answers and trace entries (probabilities, order) as without it
        if isolation == "process":  # every planned call was answered in the sandbox from the sent replies
            sandbox = ahead.executor.sandbox
            assert (sandbox.served, sandbox.replayed) == (1, 4)  # only the query asked
            assert plain.executor.sandbox.served == 5
    finally:
        plain.executor.close()
        ahead.executor.close()


def test_both_isolation_modes_give_the_same_rows_counts_included() -> None:
    programs = [PROGRAM, PROGRAM.replace("'Is it large?'", "'Is it small?'")]
    runners = [_runner(isolation, ShiftAgent(), score_ahead=16) for isolation in ("in_process", "process")]
    runners.append(_runner("in_process", ShiftAgent(), score_ahead=0))
    try:
        rows = [_rows(r, "m", programs) for r in runners]
        assert rows[0] == rows[1]
        # the second program: two questions known from the first, one new (3 boxes) evaluated ahead,
        # whose first use is then a memo hit too
        ahead, plain = rows[0][1]["model_calls"], rows[2][1]["model_calls"]
        assert ahead["box_evals"] == plain["box_evals"] == 3
        assert ahead["memo_hits"] == plain["memo_hits"] + 3
    finally:
        for r in runners:
            r.executor.close()


class PickyAgent(ShiftAgent):
    """Cannot answer one question (like the scene oracle outside its vocabulary)."""

    def score(self, image, boxes, questions, arity):
        if "unanswerable" in " ".join(questions):
            raise ValueError("outside my vocabulary")
        return super().score(image, boxes, questions, arity)


@pytest.mark.parametrize("isolation", ["in_process", "process"])
def test_an_agent_failing_ahead_fails_only_the_call_the_program_makes(isolation: str) -> None:
    skipped = (
        "def execute(score, query, n):\n"
        "    a = score('Is it red?')\n"
        "    b = a.exists().item() > 2 and score('Is it unanswerable?')\n"  # never asked
        "    return round(a.exists().item(), 4)\n"
    )
    asked = "def execute(score, query, n):\n    a = score('Is it red?') & score('Is it unanswerable?')\n    return 1\n"
    rows = {}
    for ahead in (0, 16):
        runner = _runner(isolation, PickyAgent(), score_ahead=ahead)
        try:
            rows[ahead] = _rows(runner, "p", [skipped, asked])
        finally:
            runner.executor.close()
    assert rows[16][0]["error"] is None and rows[16][0]["pred"] == rows[0][0]["pred"]
    assert rows[16][1]["error"] == rows[0][1]["error"]
    assert rows[16][1]["error"]["type"] == "AgentError" and "outside my vocabulary" in rows[16][1]["error"]["message"]
    assert rows[16][1]["trace"] == rows[0][1]["trace"]  # the first call is recorded, then the failing one stops it


def test_programs_sent_ahead_run_with_their_replies_and_the_rows_match_in_process_runs() -> None:
    programs = [PROGRAM, PROGRAM.replace("'Is it large?'", "'Is it small?'"), PROGRAM.replace("red", "blue")]
    in_process = _runner("in_process", ShiftAgent(), score_ahead=16)
    sandboxed = _runner("process", ShiftAgent(), score_ahead=16)
    try:
        sandboxed.executor.start()  # running, so every program is sent ahead (Runner.process: Executor.prepare)
        rows = _rows(sandboxed, "a", programs)
        assert rows == _rows(in_process, "a", programs)
        sandbox = sandboxed.executor.sandbox
        kinds = [e["primitive"] for row in rows for e in row["trace"]]
        assert kinds.count("score") == 12 and kinds.count("query") == 3
        # every score call was answered in the sandbox (sent with the run); only queries were asked
        assert sandbox.served + sandbox.replayed == 15 and 1 <= sandbox.served <= 3 and sandbox.starts == 1
    finally:
        sandboxed.executor.close()


def test_a_program_sent_ahead_that_does_not_run_or_a_sandbox_gone_meanwhile_changes_nothing() -> None:
    want = _rows(_runner("in_process", ShiftAgent(), score_ahead=16), "w", [PROGRAM])
    runner = _runner("process", ShiftAgent(), score_ahead=16)
    try:
        executor = runner.executor
        executor.start()
        executor.prepare("def execute(score, query, n):\n    return score('Never run?').exists().item()\n")
        assert _rows(runner, "w", [PROGRAM]) == want  # its own program, sent ahead again, is the one run
        executor.prepare(PROGRAM)
        os.kill(executor.sandbox.pid, signal.SIGKILL)  # gone before the run: a fresh sandbox runs it
        time.sleep(0.2)
        sample = _samples(IMAGES[0], "w", [PROGRAM])[0]
        outcome = executor.run(PROGRAM, runner.agent, sample.load_image(), [list(b) for b in want[0]["boxes"]])
        assert outcome.error is None and executor.sandbox.starts == 2
    finally:
        runner.executor.close()


def test_a_program_that_fails_the_check_is_scored_ahead_alike_in_both_modes() -> None:
    bad = "def execute(score, query, n):\n    a = score('Is it shiny?')\n    return a.__class__\n"
    rows, calls = [], []
    for isolation in ("in_process", "process"):
        agent = ShiftAgent()
        runner = _runner(isolation, agent, score_ahead=16)
        try:
            runner.executor.start()
            rows.append(_rows(runner, "b", [bad])[0])
            calls.append(agent.calls)
        finally:
            runner.executor.close()
    assert rows[0] == rows[1] and rows[0]["error"]["type"] == "ProgramCheckError"
    assert calls == [1, 1] and rows[0]["model_calls"]["box_evals"] == 3  # one wasted batch, counted alike


class _FailsOn(GivenPrograms):
    """The given programs, except that generating the one of sample ``bad`` fails; notes for each
    program whether a sandbox process was running another sample's program meanwhile."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.generated: list[tuple[str, bool]] = []
        self.executor: Any = None

    def program_for(self, sample: Sample) -> Program:
        sandbox = self.executor._sandbox
        self.generated.append((sample.id, bool(sandbox is not None and sandbox._running)))
        if sample.id == self.bad:
            raise RuntimeError(f"no program for {sample.id}")
        return super().program_for(sample)


def test_the_run_loop_generates_the_next_program_while_the_sandbox_runs_and_rows_are_unchanged() -> None:
    programs = [PROGRAM, PROGRAM.replace("red", "blue"), PROGRAM.replace("'Is it large?'", "'Is it small?'"), PROGRAM]
    rows, generated = [], []
    for isolation in ("in_process", "process"):
        generator = _FailsOn("l1")
        config = RunConfig(dataset="jsonl", report=False, executor=ExecutorConfig(isolation=isolation, score_ahead=16))
        runner = Runner(config, agent=ShiftAgent(), detector=FixedBoxes(), generator=generator)
        generator.executor = runner.executor
        try:
            rows.append([_row(r) for r in runner.process_all(_samples(IMAGES[0], "l", programs))])
            assert runner._prefetched == {}  # nothing left behind
        finally:
            runner.executor.close()
        generated.append(generator.generated)
    assert rows[0] == rows[1]  # the same rows (counts and traces included) in both modes
    assert [r["error"]["stage"] if r["error"] else None for r in rows[1]] == [None, "program", None, None]
    assert "no program for l1" in rows[1][1]["error"]["message"]  # the failure is that sample's, not l0's
    # each program generated once, in order; with a sandbox, while it ran the one before (l1 ran none)
    assert generated[0] == [("l0", False), ("l1", False), ("l2", False), ("l3", False)]
    assert generated[1] == [("l0", False), ("l1", True), ("l2", False), ("l3", True)]


class _SlowOnce(_FailsOn):
    """Generating sample ``slow``'s program takes longer than the watchdog allows a program (an LLM, say)."""

    def __init__(self, slow: str) -> None:
        super().__init__(bad="")
        self.slow = slow

    def program_for(self, sample: Sample) -> Program:
        if sample.id == self.slow:
            time.sleep(1.0)
        return super().program_for(sample)


def test_a_slow_program_generated_ahead_does_not_stop_the_program_that_ran_and_ends_generating_ahead() -> None:
    generator = _SlowOnce("t1")
    config = RunConfig(dataset="jsonl", report=False, executor=ExecutorConfig(time_limit_s=0.2, score_ahead=16))
    runner = Runner(config, agent=ShiftAgent(), detector=FixedBoxes(), generator=generator)
    generator.executor = runner.executor
    try:
        rows = list(runner.process_all(_samples(IMAGES[0], "t", [PROGRAM] * 4)))
    finally:
        runner.executor.close()
    # t1's program took 1 s, generated while t0's program ran: the watchdog (0.3 s of program time)
    # reads t0's result, sent meanwhile, instead of stopping it
    assert [r["error"] for r in rows] == [None] * 4 and runner.executor.sandbox.starts == 1
    # a program that slow is not generated during a run again (a step cannot be interrupted)
    assert generator.generated == [("t0", False), ("t1", True), ("t2", False), ("t3", False)]


def _sandboxed_run(runner: Runner, source: str, idle: Any = None) -> Any:
    sample = _samples(IMAGES[0], "s", [source])[0]
    with torch.no_grad():  # as Runner.process runs it: replies may be reused, so calls are scored ahead
        return runner.executor.run(source, runner.agent, sample.load_image(), [list(b) for b in BOXES], idle=idle)


def test_the_sandbox_plans_the_programs_it_checks_and_this_process_parses_none(monkeypatch) -> None:
    import neptune_core.executor.executor as executor_module

    programs = [PROGRAM, PROGRAM.replace("red", "blue"), PROGRAM.replace("'Is it large?'", "'Is it small?'")]
    want = _rows(_runner("in_process", ShiftAgent(), score_ahead=16), "a", programs)
    parsed_here: list[str] = []
    monkeypatch.setattr(executor_module, "planned_calls", lambda source, *a, **k: parsed_here.append(source) or [])
    sandboxed = _runner("process", ShiftAgent(), score_ahead=16)
    try:
        sandboxed.executor.start()
        assert _rows(sandboxed, "a", programs) == want  # each program's calls evaluated ahead, as in-process
        # the plans came from the sandbox, which parsed each program to check it; none was parsed here
        # (planned here, every call would have been asked: rows and counts would differ from in-process)
        sandbox = sandboxed.executor.sandbox
        assert parsed_here == [] and sandbox.served + sandbox.replayed == 15 and sandbox.served <= 3
    finally:
        sandboxed.executor.close()


def test_a_program_sent_during_a_run_is_planned_and_checked_after_it() -> None:
    runner = _runner("process", ShiftAgent(), score_ahead=16)
    nxt = PROGRAM.replace("red", "blue")
    big = nxt + "# " + "x" * 5000 + "\n"  # too big to send while the sandbox runs: sent when the run ends

    def preparing(upcoming: str) -> Any:
        runner.executor.sandbox.prepare(upcoming)  # right after the run request and its replies
        yield

    try:
        runner.executor.start()
        sandbox = runner.executor.sandbox
        # the program's query waits for its reply, and the program to check comes first: kept for later
        assert _sandboxed_run(runner, PROGRAM, preparing(nxt)).error is None and sandbox.served == 1
        assert sandbox.planned(nxt) == planned_calls(nxt, 16, True, checker_cache=False)
        assert len(sandbox.planned(nxt)) == 4
        # its scores evaluated ahead as planned, its query's reply kept from the run before: nothing asked
        assert _sandboxed_run(runner, nxt, preparing(big)).error is None and sandbox.served == 1
        assert sandbox.planned(big) == planned_calls(nxt, 16, True, checker_cache=False)
        assert _sandboxed_run(runner, big).error is None and sandbox.served == 1 and sandbox.starts == 1
    finally:
        runner.executor.close()


def test_a_plan_is_taken_only_as_due_and_well_formed_and_only_calls_the_program_names() -> None:
    from neptune_core.executor.guards import SandboxCrash
    from neptune_core.executor.process import SandboxProcess
    from probabilistic_tensor import Semantics

    sandbox = SandboxProcess(ExecutorConfig(score_ahead=2), Semantics())
    with pytest.raises(SandboxCrash):  # nothing was sent to plan
        sandbox._take_plan({"op": "plan", "calls": []})
    plans = [
        {"op": "plan", "calls": [["Is it red?", 1], ["Is it hidden?", 1]]},
        {"op": "call", "calls": []},
        {"op": "plan", "calls": [["Is it red?", 1], ["Is it a cube?", 1], ["Is it large?", 1]]},  # past the cap
        {"op": "plan", "calls": [["Is it red?", "1"]]},
        {"op": "plan", "calls": "Is it red?"},
    ]
    sandbox._plans_due.append(PROGRAM)
    sandbox._take_plan(plans[0])
    # a question the program does not name is not evaluated ahead (a sandbox that lied)
    assert sandbox.planned(PROGRAM) == [("Is it red?", 1)] and sandbox.planned(PROGRAM + " ") is None
    for plan in plans[1:]:
        sandbox._plans_due.append(PROGRAM)
        with pytest.raises(SandboxCrash):
            sandbox._take_plan(plan)


def test_an_idle_sandbox_whose_plan_comes_while_it_is_looked_at_is_alive_and_junk_is_not() -> None:
    import json
    import multiprocessing

    from neptune_core.executor.process import SandboxProcess
    from probabilistic_tensor import Semantics

    ours, theirs = multiprocessing.Pipe()

    class ComesAfterTheFirstLook:
        """The pipe as the parent polls it, except that the first look finds nothing (the plan was
        sent just after it)."""

        looks = 0

        def poll(self, timeout: float) -> list:
            self.looks += 1
            return [(ours.fileno(), 1)] if self.looks > 1 and ours.poll(0) else []

    sandbox = SandboxProcess(ExecutorConfig(score_ahead=2), Semantics())
    sandbox._conn, sandbox._poller = ours, ComesAfterTheFirstLook()
    sandbox._plans_due.append(PROGRAM)
    theirs.send_bytes(json.dumps({"op": "plan", "calls": [["Is it red?", 1]]}).encode())
    assert sandbox.alive() and sandbox._plans_due  # nothing seen yet: alive, the plan still due
    assert sandbox.alive() and sandbox.planned(PROGRAM) == [("Is it red?", 1)]  # seen now: read as the plan
    theirs.send_bytes(b'{"op": "plan", "calls": []}')  # nothing due: a message from an idle sandbox is junk
    assert not sandbox.alive()
    ours.close()
    theirs.close()
