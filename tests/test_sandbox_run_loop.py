"""Hostile programs through the real run loop (Runner.run -> sandbox process -> results.jsonl).

Each case runs ``Runner.run`` over two samples, the hostile one and then a benign one, under a
hard outer timeout. It checks: the hostile row is an error of the expected type (or, for the
cases the guards make harmless, an ok row), the rows were serialised to results.jsonl as valid
UTF-8 JSON, the hostile sample ended within twice the time limit, the sandbox's peak resident
memory stayed below ``memory_mb`` + 300 MB (and the parent's grew little), and the benign row is
exactly the row it is without the hostile sample before it (timings aside).

Two runners share the file: "guarded" with the default interpreter limits (the interpreter's
clear errors), and "os" with the interpreter's size and operation limits lifted, where only the
sandbox process (RLIMIT_DATA, the watchdog) stands between the program and the host.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from analysis.report import write_report
from neptune_core.config import ExecutorConfig, RunConfig
from neptune_core.types import Detection, Program, Sample
from runners.base import Runner
from vision_agents.base import Detector, VisionAgent

TIME_LIMIT_S = 0.5
MEMORY_MB = 700
HARD_TIMEOUT_S = 60.0  # the outer limit of one case: a hang fails the test instead of the suite
BOXES = [[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0], [20.0, 0.0, 30.0, 10.0], [0.0, 10.0, 10.0, 20.0]]
IMAGE = Image.new("RGB", (32, 24), (90, 90, 90))


class HashAgent(VisionAgent):
    """Deterministic probabilities from the question text and the box index (crc32), answer 'red'."""

    name = "hash"

    def score(self, image, boxes, questions, arity):
        rows = []
        for q in questions:
            base = zlib.crc32(q.encode("utf-8", "surrogatepass"))
            idx = torch.arange(len(boxes) ** arity if arity else 1, dtype=torch.float32)
            rows.append(((base + 37 * idx) % 97 / 96.0).reshape((len(boxes),) * arity))
        return torch.stack(rows)

    def answer(self, image, box, question):
        return "red"


class SampleBoxes(Detector):
    name = "sample_boxes"

    def __init__(self) -> None:
        self.boxes: list[list[float]] = []

    def begin_sample(self, sample: Sample) -> None:
        self.boxes = list(sample.boxes or [])

    def detect(self, image, object_names):
        return Detection(boxes=self.boxes, scores=[1.0] * len(self.boxes), labels=["object"] * len(self.boxes))


class GivenPrograms:
    """The program generator of these tests: each sample carries its own source."""

    def program_for(self, sample: Sample) -> Program:
        return Program(sample.meta["source"], origin="given", object_names=["object"])


def wrap(body: str) -> str:
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f"def execute(score, query, n):\n{lines}\n"


BENIGN = wrap(
    """
cube = score("Is the object in the red box a cube?")
left = score("Is the object in the red box left of the object in the green box?", 2)
anchor = cube.iota()
near = left.contract(anchor("y")) & ~cube
colour = query("What color is the object in the red box?", near.iota())
many = count(cube) > 1
return f"{colour} {'many' if many else 'few'} {len([i for i in range(n) if cube[i].item() > 0.5])}"
"""
)

ALIAS = "a = [0]\nb = [0]\nfor i in range(36):\n    a = [a, a]\n    b = [b, b]\n"  # 2**36 elements to walk
ALIAS_TUPLE = "t = (0,)\nfor i in range(36):\n    t = (t, t)\n"
VARS_12 = "s = score('q', 2)\nts = [s(f'v{i}', f'w{i}') for i in range(8)]\n"

# (id, runner, program, expected error types (None: an ok row), fragment of the message)
CASES: list[tuple[str, str, str, set[str | None], str]] = [
    # --- C-level walks over exponentially aliased structures: clear errors, no hang ---------
    ("alias_eq", "guarded", wrap(ALIAS + "return a == b"), {"SizeLimitError"}, "a comparison"),
    ("alias_lt", "guarded", wrap(ALIAS + "return a < b"), {"SizeLimitError"}, "a comparison"),
    ("alias_in_list", "guarded", wrap(ALIAS + "return a in [b]"), {"SizeLimitError"}, "a comparison"),
    ("alias_tuple_hash", "guarded", wrap(ALIAS_TUPLE + "return {t: 1}"), {"SizeLimitError"}, "a tuple"),
    (
        "alias_tuple_concat",
        "guarded",
        wrap("t = ([0],)\nfor i in range(40):\n    t = t + t\nreturn {t: 1}"),
        {"SizeLimitError"},
        "tuple",
    ),  # fmt: skip
    ("alias_sorted", "guarded", wrap(ALIAS + "return sorted([a, b])"), {"SizeLimitError"}, "sorting"),
    (
        "alias_sort_key",
        "guarded",
        wrap(ALIAS + "x = [1, 2]\nx.sort(key=lambda k: a)\nreturn x"),
        {"SizeLimitError"},
        "sorting",
    ),  # fmt: skip
    ("alias_max", "guarded", wrap(ALIAS + "return max([a, b])"), {"SizeLimitError"}, "max()"),
    ("alias_list_index", "guarded", wrap(ALIAS + "return [b, 1].index(a)"), {"SizeLimitError"}, ".index()"),
    ("alias_list_count", "guarded", wrap(ALIAS + "return [b, b].count(a)"), {"SizeLimitError"}, ".count()"),
    ("alias_set_build", "guarded", wrap(ALIAS + "return set([a, b])"), {"SizeLimitError"}, "set()"),
    (
        "alias_isinstance_nested",
        "guarded",
        wrap("return isinstance(1, ((int, str), float))"),
        {"TypeError"},
        "flat tuple",
    ),  # fmt: skip
    ("alias_raise_message", "guarded", wrap(ALIAS + "raise ValueError(a)"), {"SizeLimitError"}, "exception message"),
    ("alias_assert_message", "guarded", wrap(ALIAS + "assert False, a"), {"SizeLimitError"}, "assert message"),
    (
        "alias_caught_and_printed",
        "guarded",
        wrap(ALIAS + "try:\n    raise ValueError(a)\nexcept Exception as e:\n    return str(e)"),
        {"SizeLimitError"},
        "exception message",
    ),  # fmt: skip
    ("round_huge_ndigits", "guarded", wrap("return round(1, -10**9)"), {"SizeLimitError"}, "round()"),
    ("int_long_hex", "guarded", wrap("return int('f' * 100000, 16)"), {"SizeLimitError"}, "int()"),
    ("pow_inplace", "guarded", wrap("x = 10\nx **= 10**8\nreturn x"), {"SizeLimitError"}, "a power"),
    # --- tensors and containers reached through builtins: guarded sizes -----------------------
    ("tensor_sum_broadcast", "guarded", wrap(VARS_12 + "return sum(ts, 0)"), {"SizeLimitError"}, "a tensor"),
    ("tensor_max_broadcast", "guarded", wrap(VARS_12 + "return max(ts)"), {"SizeLimitError"}, "comparing tensors"),
    (
        "tensor_sorted_broadcast",
        "guarded",
        wrap(VARS_12 + "return sorted(ts)"),
        {"SizeLimitError"},
        "comparing tensors",
    ),
    ("tensor_in_broadcast", "guarded", wrap(VARS_12 + "return ts[0] in ts[1:]"), {"SizeLimitError"}, "membership"),
    ("tensor_list_eq", "guarded", wrap(VARS_12 + "return ts[:4] == ts[4:]"), {"SizeLimitError"}, "comparing tensors"),
    (
        "set_union_comprehension",
        "guarded",
        wrap("s = set(range(60000))\nt = set(range(60000, 99000))\nreturn len([s | t for i in range(100)])"),
        {"SizeLimitError", "TimeLimitError"},  # the machine's load decides which comes first
        "",
    ),  # fmt: skip
    (
        "dict_union_comprehension",
        "guarded",
        wrap(
            "d = dict(zip(range(30000), range(30000)))\ne = dict(zip(range(-30000, 0), range(30000)))\n"
            "return len([d | e for i in range(100)])"
        ),
        {"SizeLimitError", "TimeLimitError"},  # the machine's load decides which comes first
        "",
    ),  # fmt: skip
    (
        "print_sep_huge",
        "guarded",
        wrap("s = 'x' * 100000\nfor i in range(200):\n    print(i, i, i, sep=s)\nreturn 'yes'"),
        {None},
        "",
    ),  # fmt: skip
    ("print_sep_aliased", "guarded", wrap(ALIAS + "print(1, 2, sep=a)\nreturn 1"), {"TypeError"}, "sep"),
    # --- rows that could not be written, answers that are not valid text ----------------------
    (
        "many_long_score_calls",
        "guarded",
        wrap("t = score('a', 0)\nfor i in range(5000):\n    t = t & score('q' * 900 + str(i), 0)\nreturn t"),
        {"PrimitiveLimitError"},
        "max_primitive_calls",
    ),  # fmt: skip
    (
        "question_too_long",
        "guarded",
        wrap("return score('Is there a ' + 'very ' * 2000 + 'big object?', 0)"),
        {"SizeLimitError"},
        "max_question_chars",
    ),  # fmt: skip
    ("lone_surrogate_answer", "guarded", wrap("return 'red \\ud800 cube'"), {None}, ""),
    ("surrogate_question", "guarded", wrap("return query('What \\udcff colour?', 0)"), {None}, ""),
    ("result_too_long", "guarded", wrap("return 'a' * 100000"), {"SizeLimitError"}, "max_result_size"),
    (
        "result_aliased",
        "guarded",
        wrap("a = [0]\nfor i in range(40):\n    a = [a, a]\nreturn a"),
        {"SizeLimitError"},
        "max_result_size",
    ),  # fmt: skip
    ("result_opaque", "guarded", wrap("return range(3)"), {"ValueError"}, "type range"),
    # --- the OS line: interpreter limits lifted, the sandbox process stops the program ------------
    ("os_list_8gb", "os", wrap("return len([0] * 10**9)"), {"ProgramMemoryError"}, "out of memory"),
    (
        "os_memory_growth",
        "os",
        wrap("s = 'a' * 10**8\nkeep = [s + str(i) for i in range(40)]\nreturn len(keep)"),
        {"ProgramMemoryError", "TimeLimitError", "ProgramTimeout"},
        "",
    ),  # fmt: skip
    (
        "os_tensor_broadcast",
        "os",
        wrap(VARS_12 + "t = ts[0]\nfor u in ts[1:]:\n    t = t & u\nreturn t.exists()"),
        {"ProgramMemoryError", "RuntimeError", "SandboxCrash"},
        "",
    ),  # fmt: skip
    ("os_alias_compare_hangs", "os", wrap(ALIAS + "return a == b"), {"ProgramTimeout"}, "watchdog"),
    ("os_alias_hash_hangs", "os", wrap(ALIAS_TUPLE + "return {t: 1}"), {"ProgramTimeout"}, "watchdog"),
    ("os_alias_sort_hangs", "os", wrap(ALIAS + "return sorted([a, b, a, b])"), {"ProgramTimeout"}, "watchdog"),
    (
        "os_caught_loop",
        "os",
        wrap("while True:\n    try:\n        x = [0] * 10**9\n    except Exception:\n        pass"),
        {"ProgramMemoryError", "TimeLimitError", "ProgramTimeout"},
        "",
    ),  # fmt: skip
]


def _config(kind: str) -> RunConfig:
    limits: dict[str, Any] = {"time_limit_s": TIME_LIMIT_S, "memory_mb": MEMORY_MB, "max_primitive_calls": 300}
    if kind == "os":
        limits.update(max_sequence_length=10**12, max_operations=10**12)
    return RunConfig(dataset="jsonl", report=False, executor=ExecutorConfig(**limits))


def _sample(sid: str, source: str, gold: str | None) -> Sample:
    return Sample(id=sid, question=f"question of {sid}", answer=gold, image=IMAGE, boxes=BOXES, meta={"source": source})


def _without_timings(row: dict[str, Any]) -> dict[str, Any]:
    # model_calls, like timings, depends on what ran before (the per-image memo serves repeats)
    return {k: v for k, v in row.items() if k not in ("timings", "model_calls")}


def _run(runner: Runner, run_dir: Path, samples: list[Sample]) -> list[dict[str, Any]]:
    """Runner.run in a thread with a hard timeout; the rows read back from results.jsonl."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            runner.run(run_dir, samples)
        except BaseException as e:  # reported by the test below
            failure.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HARD_TIMEOUT_S)
    assert not thread.is_alive(), f"the run did not finish within {HARD_TIMEOUT_S} s"
    assert not failure, f"the run raised {failure[0]!r}"
    raw = (run_dir / "results.jsonl").read_bytes()
    text = raw.decode("utf-8")  # strict: valid UTF-8
    rows = [json.loads(line) for line in text.splitlines()]
    for row in rows:
        json.dumps(row).encode("utf-8")  # no lone surrogates survived
        for value in _strings(row):
            value.encode("utf-8")
    return rows


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.fixture(scope="module")
def runners(tmp_path_factory) -> dict[str, tuple[Runner, dict[str, Any]]]:
    """A runner per kind, and the row its benign sample gets when run alone."""
    out = {}
    for kind in ("guarded", "os"):
        runner = Runner(_config(kind), agent=HashAgent(), detector=SampleBoxes(), generator=GivenPrograms())
        rows = _run(runner, tmp_path_factory.mktemp(f"reference_{kind}"), [_sample("benign", BENIGN, "red few 1")])
        assert rows[0]["error"] is None, rows[0]
        out[kind] = (runner, rows[0])
    yield out
    for runner, _ in out.values():
        runner.executor.close()


def test_there_are_at_least_30_run_loop_cases() -> None:
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("kind", "source", "expected", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_program_in_the_run_loop(runners, tmp_path, kind, source, expected, fragment) -> None:
    runner, reference = runners[kind]
    parent_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rows = _run(runner, tmp_path, [_sample("hostile", source, "yes"), _sample("benign", BENIGN, "red few 1")])
    assert [r["id"] for r in rows] == ["hostile", "benign"]
    hostile, benign = rows
    error = hostile["error"]
    assert (None if error is None else error["type"]) in expected, error
    if error is not None:
        assert fragment in error["message"], error["message"]
    assert hostile["timings"]["total"] <= 2 * TIME_LIMIT_S * 1000, hostile["timings"]
    assert len(json.dumps(hostile)) <= runner.config.executor.max_row_bytes
    sandbox = runner.executor.sandbox
    assert sandbox.peak_rss_mb < MEMORY_MB + 300, sandbox.peak_rss_mb
    parent_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    assert parent_after - parent_before < 200, (parent_before, parent_after)
    assert _without_timings(benign) == _without_timings(reference)


def test_specific_rows(runners, tmp_path) -> None:
    """What the bounded rows hold: a truncated trace with its marker, answers as valid text."""
    runner, _ = runners["guarded"]
    by_id = {c[0]: c for c in CASES}
    samples = [
        _sample(name, by_id[name][2], "red \ufffd cube")
        for name in ("many_long_score_calls", "lone_surrogate_answer", "surrogate_question")
    ]
    rows = {r["id"]: r for r in _run(runner, tmp_path, samples)}
    trace = rows["many_long_score_calls"]["trace"]
    assert len(trace) == runner.config.executor.max_trace_entries + 1
    calls = runner.config.executor.max_primitive_calls
    assert trace[-1]["primitive"] == "truncated" and trace[-1]["omitted"] == calls - len(trace) + 1
    assert rows["lone_surrogate_answer"]["pred"] == "red \ufffd cube" and rows["lone_surrogate_answer"]["correct"]
    assert rows["surrogate_question"]["trace"][0]["question"] == "What \ufffd colour?"
    write_report(tmp_path, images=lambda _id: IMAGE)  # the report survives these rows
    assert "\ufffd" in (tmp_path / "report" / "sample_lone_surrogate_answer.html").read_text(encoding="utf-8")


def test_sandbox_killed_from_outside_is_a_crash_and_the_run_goes_on(runners, tmp_path) -> None:
    runner, reference = runners["guarded"]
    slow = _sample("killed", wrap("x = 0\nfor i in range(10**5):\n    x = x + i\nreturn x"), "1")
    runner.executor.start()
    pid = runner.executor.sandbox.pid
    timer = threading.Timer(0.05, lambda: os.kill(pid, signal.SIGKILL))
    timer.start()
    rows = _run(runner, tmp_path, [slow, _sample("benign", BENIGN, "red few 1")])
    timer.join()
    assert rows[0]["error"]["type"] == "SandboxCrash" and "SIGKILL" in rows[0]["error"]["message"]
    assert _without_timings(rows[1]) == _without_timings(reference)


def test_parent_memory_watchdog_stops_a_sandbox_over_its_resident_limit() -> None:
    """Where RLIMIT_DATA is missing (macOS), the parent's watch on resident memory is the limit."""
    from neptune_core.executor.process import SandboxProcess
    from neptune_core.primitives.base import CallContext

    config = ExecutorConfig(time_limit_s=5.0, max_sequence_length=10**12, max_operations=10**12, memory_mb=2000)
    sandbox = SandboxProcess(config, runner_semantics(), rss_limit_mb=400)
    try:
        # the memory is then held while the program runs on, so the parent's watch (every 50 ms) sees it
        source = wrap(
            "keep = []\nfor i in range(300):\n    keep.append('x' * 10**6 + str(i))\n"
            "k = 0\nwhile k < 10**9:\n    k += 1\nreturn len(keep)"
        )
        t0 = time.perf_counter()
        result = sandbox.run(source, CallContext(HashAgent(), IMAGE, BOXES, config))
        assert result.error is not None and result.error.type == "ProgramMemoryError", result.error
        assert "400 MB" in result.error.message and time.perf_counter() - t0 < 5.0
        assert sandbox.pid is None  # killed; the next run starts a fresh one
        again = sandbox.run(wrap("return 1"), CallContext(HashAgent(), IMAGE, BOXES, config))
        assert again.error is None and again.value == 1 and sandbox.starts == 2
    finally:
        sandbox.close()


def test_an_interrupt_while_scoring_ahead_leaves_no_sandbox_waiting_for_the_replies() -> None:
    """The run request announces replies evaluated ahead; an interrupt before they are sent ends that sandbox."""
    from neptune_core.executor.process import SandboxProcess
    from neptune_core.primitives.base import CallContext

    config = ExecutorConfig()
    sandbox = SandboxProcess(config, runner_semantics())

    def interrupted() -> list:
        raise KeyboardInterrupt

    try:
        sandbox.start()
        first = sandbox.pid
        with pytest.raises(KeyboardInterrupt):
            sandbox.run(wrap("return 1"), CallContext(HashAgent(), IMAGE, BOXES, config), interrupted)
        assert sandbox.pid is None and sandbox.last_exit_code == -signal.SIGKILL
        again = sandbox.run(wrap("return 1"), CallContext(HashAgent(), IMAGE, BOXES, config))
        assert again.error is None and again.value == 1 and sandbox.pid not in (None, first)
    finally:
        sandbox.close()


def runner_semantics():
    from probabilistic_tensor import Semantics

    return Semantics()


def test_sandbox_has_no_inherited_descriptors_and_its_limits() -> None:
    from neptune_core.executor.process import SandboxProcess

    config = ExecutorConfig(memory_mb=MEMORY_MB)
    sandbox = SandboxProcess(config, runner_semantics())
    try:
        sandbox.start()
        pid = sandbox.pid
        fds = sorted(int(f) for f in os.listdir(f"/proc/{pid}/fd"))
        targets = [os.readlink(f"/proc/{pid}/fd/{f}") for f in fds]
        assert fds[:3] == [0, 1, 2] and all(t == os.devnull for t in targets[:3]), targets
        assert len(fds) == 4 and targets[3].startswith("socket:"), targets  # its pipe, nothing else
        limits = Path(f"/proc/{pid}/limits").read_text()
        data = next(line for line in limits.splitlines() if line.startswith("Max data size"))
        assert str(MEMORY_MB * 1024 * 1024) in data
        assert sandbox.baseline_mb is not None and sandbox.baseline_mb < MEMORY_MB - 128
    finally:
        sandbox.close()


def test_memory_limit_too_small_to_start_says_so() -> None:
    from neptune_core.executor.process import SandboxProcess, SandboxStartError

    sandbox = SandboxProcess(ExecutorConfig(memory_mb=256), runner_semantics())
    with pytest.raises(SandboxStartError, match=r"executor.memory_mb = 256 is too small.*--executor.memory_mb \d+"):
        sandbox.start()


def test_classic_agent_long_question_is_refused_before_the_regex() -> None:
    """A 100,000-character question made the classic agent's regex backtrack for 34 s."""
    from neptune_core.executor import Executor
    from vision_agents.classic_agent import ClassicAgent

    executor = Executor(ExecutorConfig(), runner_semantics(), isolation="process")
    try:
        executor.start()
        source = wrap("return score('Is there a ' + 'x ' * 20000 + 'object?', 0)")
        t0 = time.perf_counter()
        outcome = executor.run(source, ClassicAgent(), IMAGE, BOXES)
        assert outcome.error.type == "SizeLimitError" and "max_question_chars" in outcome.error.message
        assert time.perf_counter() - t0 < 2.0
    finally:
        executor.close()


def test_report_survives_any_row(tmp_path) -> None:
    odd = [
        {"id": "surrogates", "question": "q \ud800", "pred": "\udfff", "gold": "a", "correct": False, "error": None,
         "trace": [{"primitive": "query", "question": "\ud83d", "answer": "\udcff", "object_id": 0}]},
        {"id": "huge", "question": "q" * 500_000, "program": "x" * 500_000, "trace": [{"primitive": "score",
         "question": "q", "arity": 1, "probs": [0.5] * 10}] * 5000, "error": None, "correct": True},
        {"id": "malformed", "error": "a string, not a dict", "timings": {"total": "slow"}, "trace": ["junk", 3],
         "boxes": [[1, 2], "x"], "correct": "maybe", "family": ["not", "a", "string"]},
        {"id": ["unhashable", "id"], "error": None},  # not a valid line: dropped
        {"id": "bad_probs", "error": {"type": None}, "trace": [{"primitive": "score", "probs": ["a", None]}]},
        {"id": "unknown_primitive", "trace": [{"primitive": "caption", "text": "a cat"}], "correct": True},
    ]  # fmt: skip
    with (tmp_path / "results.jsonl").open("w") as f:
        for row in odd:
            f.write(json.dumps(row) + "\n")
    index = write_report(tmp_path, images=lambda _id: IMAGE)
    html = index.read_text(encoding="utf-8")
    assert "surrogates" in html and "malformed" in html
    pages = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "report").glob("sample_*.html")}
    assert len(pages) == len(odd) - 1
    assert "could not be drawn" in pages["sample_bad_probs.html"]  # drawn as its raw line instead
    assert "text=a cat" in pages["sample_unknown_primitive.html"]
    assert len(pages["sample_huge.html"]) < 2_000_000


def test_classic_agent_question_parsing_is_linear() -> None:
    """A 100,000-character question once made the classic agent's regular expression backtrack for 34 s;
    its questions are now parsed word by word (vision_agents.vocabulary)."""
    from vision_agents.vocabulary import parse

    t0 = time.perf_counter()
    q = parse("is there " * 11_111, 1)
    assert time.perf_counter() - t0 < 1.0
    assert q.objectness is False and not q.values  # "is there" alone names no object
    assert parse("Is there an object?", 1).objectness is True


def test_cpu_limit_stops_a_hang_even_without_the_parents_watchdog() -> None:
    """RLIMIT_CPU is the last line: with the watchdog switched off, a C-level hang still ends."""
    from neptune_core.executor.process import SandboxProcess
    from neptune_core.primitives.base import CallContext

    config = ExecutorConfig(time_limit_s=0.05, max_sequence_length=10**12, max_operations=10**12)
    sandbox = SandboxProcess(config, runner_semantics())
    sandbox.watchdog_s = 600.0  # RLIMIT_CPU: 1.1 to 2.2 s of CPU
    try:
        t0 = time.perf_counter()
        result = sandbox.run(wrap(ALIAS + "return a == b"), CallContext(HashAgent(), IMAGE, BOXES, config))
        assert result.error is not None and result.error.type == "ProgramTimeout", result.error
        assert "CPU time limit" in result.error.message and time.perf_counter() - t0 < 60
    finally:
        sandbox.close()


def test_the_peak_resident_memory_bounds_the_resident_memory_after_a_run() -> None:
    """The sandbox reads /proc after a run only when its peak (one getrusage call) is near the threshold
    at which it collects garbage: sound only while the peak, in MB, bounds the resident memory."""
    from neptune_core.executor import child

    block = bytearray(128 * 1024 * 1024)  # touched: resident now
    rss, peak = child._rss_mb(), child._peak_rss_mb()
    assert rss > 128 and rss <= peak + child._PEAK_SLACK_MB and peak < 1024 * 1024
    del block


def test_a_result_whose_numbers_overflow_its_dtype_is_a_malformed_result_not_an_exception() -> None:
    from neptune_core.executor.process import SandboxProcess
    from probabilistic_tensor import Semantics

    done = {"value": {"pt": {"data": [10**400], "dtype": "float32", "vars": ["x"], "kind": "prob"}}, "error": None,
            "operations": 1, "primitive_seconds": 0.0, "printed": [], "fresh_process": False}  # fmt: skip
    result = SandboxProcess(ExecutorConfig(), Semantics())._finish(done, time.perf_counter())
    assert result.value is None and result.error.type == "SandboxCrash" and "malformed result" in result.error.message
