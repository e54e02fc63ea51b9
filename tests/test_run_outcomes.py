"""Runs that never mislead: outcomes on every row, resume redoes exactly what is not final,
a degraded run exits with its own code, other data never resumes an old run, rows appear
as samples finish. The LLM is the fake OpenAI-compatible server (real ``openai`` client)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from analysis.report import write_report
from local_datasets.synthetic.world import write_dataset
from neptune_core.config import SyntheticConfig, load_config
from neptune_core.failures import is_transient_error, is_transient_exception
from runners import RUNNERS
from runners.outcomes import DEGRADED_EXIT_CODE, finalize_row, is_done
from runners.results import ResultsWriter, read_results
from runners.sharding import merge_shards, shard_path
from tests import fake_openai_server
from tests.fake_openai_server import disconnect, reply
from tests.journeys import (
    ProgramLLM,
    llm_config,
    only_run_dir,
    rows,
    run_cli,
    sample_requests,
    synthetic_samples,
    write_config,
)
from tests.test_parallel_fakes import FakeRunner

fake_openai = fake_openai_server.fake_openai  # the fixture


# ---- the server dies mid-run, comes back, the same command again --------------------------
def test_server_stopped_mid_run_then_restarted_redoes_only_the_affected_samples(tmp_path, capsys, fake_openai):
    samples = synthetic_samples()
    ids = [s.id for s in samples]

    def die_at_fourth(sample_id: str, n: int):  # noqa: ANN202
        if n == 4:
            fake_openai.stop()  # the port closes and open connections drop
            return disconnect()
        return None

    llm = ProgramLLM(samples, hook=die_at_fourth)
    fake_openai.responder = llm
    cfg = write_config(tmp_path, llm_config(fake_openai.base_url, tmp_path))
    argv = ["--config", str(cfg)]

    code, out, err = run_cli(argv, capsys)
    assert code == DEGRADED_EXIT_CODE, err
    assert err.splitlines()[-1].startswith("degraded run: 5 of 8 samples (62.5%) failed")
    assert "all of them are transient: rerunning the same command redoes them" in err
    assert "outcomes: ok 3, error 5, fallback 0; not final 5" in out  # fallback programs the oracle cannot answer
    run_dir = only_run_dir(tmp_path / "exp")
    first = rows(run_dir)
    assert [r["id"] for r in first] == ids
    assert [r["outcome"] for r in first[:3]] == ["ok"] * 3 and all(r["final"] for r in first[:3])
    for r in first[3:]:
        assert r["final"] is False and r["program_origin"] == "fallback"
        assert r["fallback"]["transient"] is True and "LLM request" in r["fallback"]["reason"]
    assert llm.asked == ids[:4]  # after the fourth, the server was down: nothing reached it
    assert json.loads((tmp_path / "programs.json").read_text())["entries"].__len__() == 3  # failures not cached

    fake_openai.restart()
    code, out, err = run_cli(argv, capsys)  # the same command
    assert code == 0, err
    assert llm.asked == ids[:4] + ids[3:]  # only the five affected samples reached the server
    assert sample_requests(fake_openai) == 4 + 5  # (the fourth's request of the first run was cut by the stop)
    assert fake_openai.probe_count == 2  # one preflight check per start that needed the LLM
    assert "this invocation: 5 samples processed, 5 LLM requests, 0 program cache hits (generated 5)" in out
    final = rows(run_dir)
    assert [r["id"] for r in final] == ids  # each id once, in dataset order: the redone rows replaced the old
    assert final[:3] == first[:3]  # finished good rows untouched
    assert all(r["outcome"] == "ok" and r["final"] and r["correct"] and r["error"] is None for r in final)
    assert all(r["program_origin"] == "generated" and "fallback" not in r for r in final)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"] == 100.0 and summary["outcomes"]["ok"] == 8 and summary["outcomes"]["not_final"] == 0

    before = (run_dir / "results.jsonl").read_text()
    code, out, _ = run_cli(argv, capsys)  # and again: nothing left to do, nothing is asked
    assert code == 0 and sample_requests(fake_openai) == 9 and fake_openai.probe_count == 2
    assert (run_dir / "results.jsonl").read_text() == before


def test_rows_keep_the_raw_reply_the_fallback_reason_and_total_time(tmp_path, capsys, fake_openai):
    samples = synthetic_samples()
    junk = "I would rather not write code today."
    llm = ProgramLLM(samples, hook=lambda sid, n: reply(junk) if sid == samples[1].id else None)
    fake_openai.responder = llm
    # the classic VisionAgent answers a fallback's whole-image question ("unknown"), so the row is a fallback
    data = llm_config(fake_openai.base_url, tmp_path, max_failure_rate=0.5, vlm_model_name="classic")
    cfg = write_config(tmp_path, data)
    code, out, err = run_cli(["--config", str(cfg)], capsys)
    assert code == 0, err  # 1 of 8 failed: within max_failure_rate 0.5
    assert "program origins: fallback 1, generated 7" in out
    r = rows(only_run_dir(tmp_path / "exp"))
    ok, fb = r[0], r[1]
    assert ok["program_info"]["rounds"][0]["reply"].startswith('Objects: ["object"]\n```python\ndef execute(')
    assert ok["program_key"] and ok["timings"]["total"] >= ok["timings"]["program"] > 0
    assert fb["outcome"] == "fallback" and fb["final"] is True and fb["fallback"]["transient"] is False
    assert fb["pred"] == "unknown" and fb["error"] is None
    assert "no valid program after 1 attempts" in fb["fallback"]["reason"]
    assert fb["program_info"]["rounds"][0]["reply"] == junk
    entry = json.loads((tmp_path / "programs.json").read_text())["entries"][fb["program_key"]]
    assert entry["origin"] == "fallback" and entry["reply"] == junk and entry["fallback_reason"]
    index = write_report(only_run_dir(tmp_path / "exp"), samples)  # the report shows it too
    assert "outcomes: ok 7, error 0, fallback 1 (not final: 0)" in index.read_text()
    pages = "".join(p.read_text() for p in index.parent.glob("sample_*.html"))
    assert "fallback (final): no valid program after 1 attempts" in pages

    # the same command keeps the final fallback; --retry_failed redoes it (the cached fallback is not reused)
    assert run_cli(["--config", str(cfg)], capsys)[0] == 0 and sample_requests(fake_openai) == 8
    llm.hook = None
    code, out, _ = run_cli(["--config", str(cfg), "--retry_failed"], capsys)
    assert code == 0 and llm.asked[-1] == samples[1].id and sample_requests(fake_openai) == 9
    again = rows(only_run_dir(tmp_path / "exp"))
    assert len(again) == 8 and again[1]["outcome"] == "ok" and again[1]["program_origin"] == "generated"
    assert again[0] == r[0]  # a finished good row is never redone


def test_rows_are_written_as_each_sample_finishes_whatever_the_chunking(tmp_path, capsys, fake_openai):
    samples = synthetic_samples()
    lines_seen: list[int] = []
    results = tmp_path / "exp" / "fixed" / "results.jsonl"

    def hold_sixth(sample_id: str, n: int):  # noqa: ANN202
        if sample_id == samples[5].id:  # this program's request hangs until the rows before it are on disk
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (not results.exists() or results.read_text().count("\n") < 5):
                time.sleep(0.02)
            lines_seen.append(results.read_text().count("\n") if results.exists() else 0)
        return None

    fake_openai.responder = ProgramLLM(samples, hook=hold_sixth)
    data = llm_config(fake_openai.base_url, tmp_path, code_gen_concurrency=4, code_gen_timeout_s=30)
    cfg = write_config(tmp_path, data)
    code, _, err = run_cli(["--config", str(cfg), "--run_name", "fixed"], capsys)
    assert code == 0, err
    assert lines_seen == [5]  # samples 1-5 were written while sample 6's program was still being generated
    assert [r["id"] for r in rows(results.parent)] == [s.id for s in samples]


# ---- degraded runs ----------------------------------------------------------------------------
class _AlwaysFails:
    def program_for(self, sample):  # noqa: ANN001, ANN201
        raise ValueError(f"no program for {sample.id}")


class AllFailRunner(FakeRunner):
    """dataset "fake_allfail": every sample fails at the program stage."""

    def __init__(self, config, **kw) -> None:  # noqa: ANN001
        super().__init__(config)
        self._generator = _AlwaysFails()


@pytest.fixture
def _allfail() -> None:
    if "fake_allfail" not in RUNNERS:
        RUNNERS.register("fake_allfail")(AllFailRunner)


def test_a_run_where_every_sample_fails_exits_with_its_own_code(tmp_path, capsys, _allfail):
    cfg = write_config(tmp_path, {"dataset": "fake_allfail", "num_samples": 12, "output_dir": str(tmp_path / "exp")})
    code, out, err = run_cli(["--config", str(cfg), "--report", "false"], capsys)
    assert code == DEGRADED_EXIT_CODE == 3
    last = err.splitlines()[-1]
    assert last.startswith("degraded run: 12 of 12 samples (100.0%) failed: 12 errors (program/ValueError x12)")
    assert "above max_failure_rate 0.05" in last and "--retry_failed" in last
    assert "accuracy: 0.0% (0/12)" in out and "outcomes: ok 0, error 12, fallback 0" in out
    run_dir = only_run_dir(tmp_path / "exp")
    assert len(rows(run_dir)) == 12  # results are still written
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["outcomes"]["error"] == 12 and summary["errors"]["by_stage_type"] == {"program/ValueError": 12}
    assert all(r["final"] and not r["error"]["transient"] for r in rows(run_dir))
    # the threshold is a config field: a run allowed to fail entirely is not degraded
    assert run_cli(["--config", str(cfg), "--report", "false", "--max_failure_rate", "1"], capsys)[0] == 0
    assert run_cli(["--config", str(cfg), "--max_failure_rate", "1.5"], capsys)[0] == 2


# ---- data identity ----------------------------------------------------------------------------
def test_a_second_dataset_never_resumes_the_first_run(tmp_path, capsys, monkeypatch):
    for name, seed in (("a", 1), ("b", 2)):
        write_dataset(
            tmp_path / name / "CLEVR_v1.0",
            SyntheticConfig(num_scenes=2, questions_per_scene=3, seed=seed, image_width=96, image_height=64),
            split="val",
            progress=False,
        )
    data = {
        "dataset": "clevr",
        "data_path": "CLEVR_v1.0",
        "vlm_model_name": "scene_oracle",
        "od_model": "gt",
        "program_generator": "symbolic_clevr",
        "semantics": {"iota": "minmax"},
        "output_dir": str(tmp_path / "exp"),
        "report": False,
    }
    cfg = write_config(tmp_path, data)
    questions = {
        name: [q["question"] for q in json.loads(p.read_text())["questions"]]
        for name in ("a", "b")
        if (p := tmp_path / name / "CLEVR_v1.0" / "questions" / "CLEVR_val_questions.json")
    }
    assert questions["a"] != questions["b"]

    monkeypatch.setenv("NEPTUNE_DATA_ROOT", str(tmp_path / "a"))
    assert run_cli(["--config", str(cfg)], capsys)[0] == 0
    (dir_a,) = (tmp_path / "exp").iterdir()
    monkeypatch.setenv("NEPTUNE_DATA_ROOT", str(tmp_path / "b"))
    code, out, _ = run_cli(["--config", str(cfg)], capsys)
    assert code == 0 and "this invocation: 6 samples processed" in out  # computed, not resumed
    (dir_b,) = [d for d in (tmp_path / "exp").iterdir() if d != dir_a]
    assert [r["question"] for r in rows(dir_a)] == questions["a"]
    assert [r["question"] for r in rows(dir_b)] == questions["b"]
    saved = json.loads((dir_b / "config.json").read_text())
    assert saved["data_root"] == str((tmp_path / "b").resolve())  # resolved, though it came from the environment
    assert json.loads((dir_b / "data.json").read_text())["paths"]["data_path"].endswith("b/CLEVR_v1.0")

    # the same data changed in place is other data too
    qfile = tmp_path / "b" / "CLEVR_v1.0" / "questions" / "CLEVR_val_questions.json"
    qs = json.loads(qfile.read_text())
    qs["questions"] = qs["questions"][:4]
    qfile.write_text(json.dumps(qs))
    code, out, _ = run_cli(["--config", str(cfg)], capsys)
    assert code == 0 and "this invocation: 4 samples processed" in out
    assert len(list((tmp_path / "exp").iterdir())) == 3


# ---- resume bookkeeping -------------------------------------------------------------------------
def _row(i: str, **kw) -> dict:  # noqa: ANN003
    return finalize_row({"id": i, "error": None, "program_origin": "generated", **kw})


def test_redone_rows_replace_the_old_ones_in_results_and_merged_shards(tmp_path):
    path = tmp_path / "results.jsonl"
    transient = {"type": "APIConnectionError", "message": "down", "stage": "execute"}
    lasting = {"type": "ValueError", "message": "bad", "stage": "execute"}
    with ResultsWriter(path) as w:
        w.write(_row("a"))
        w.write(_row("b", error=dict(transient)))
        w.write(_row("c", error=dict(lasting)))
        w.write(_row("d", program_origin="fallback", fallback={"reason": "r", "transient": False}))
    with ResultsWriter(path) as w:
        assert w.done_ids == {"a", "c", "d"}  # only the transient failure is redone
        w.write(_row("b", pred="yes"))
    with ResultsWriter(path, retry_failed=True) as w:
        assert w.done_ids == {"a", "b"}  # and with --retry_failed every failure
    got, _ = read_results(path)
    assert [r["id"] for r in got] == ["a", "b", "c", "d"] and got[1]["pred"] == "yes" and got[1]["outcome"] == "ok"
    assert path.read_text().count("\n") == 4  # the writer compacted the replaced line away on reopening

    # a parallel rerun redoes "c" into a shard: the merge replaces, never duplicates
    with shard_path(tmp_path, 1).open("w") as f:
        f.write(json.dumps(_row("c", pred="no")) + "\n")
    assert merge_shards(tmp_path, ["a", "b", "c", "d"]) == 4
    got, dropped = read_results(path)
    assert [r["id"] for r in got] == ["a", "b", "c", "d"] and got[2]["pred"] == "no" and dropped == 0


def test_transient_classification():
    assert is_transient_error({"type": "APITimeoutError", "message": ""})
    assert is_transient_error(
        {"type": "AgentError", "message": "vision agent 'x' failed in score('q?'): APIConnectionError: refused"}
    )
    assert not is_transient_error(
        {"type": "AgentError", "message": "vision agent 'x' failed in score('q?'): ValueError: no"}
    )
    assert not is_transient_error({"type": "TimeLimitError", "message": "program time"})  # the program's own fault
    assert not is_transient_error({"type": "ZeroDivisionError", "message": ""})
    cause = ConnectionRefusedError("refused")
    try:
        try:
            raise cause
        except ConnectionRefusedError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as wrapped:
        assert is_transient_exception(wrapped)
    assert not is_transient_exception(ValueError("x"))
    legacy_fallback = {"id": "x", "error": None, "program_origin": "fallback"}  # a row from before outcomes
    assert is_done(legacy_fallback) and not is_done(legacy_fallback, retry_failed=True)


def test_config_hash_ignores_max_failure_rate_and_run_hash_follows_data(tmp_path, monkeypatch):
    from runners.identity import run_hash

    a = load_config(None, {"max_failure_rate": 0.5})
    b = load_config(None, {})
    assert a.config_hash() == b.config_hash()
    monkeypatch.setenv("NEPTUNE_DATA_ROOT", str(tmp_path / "one"))
    one = run_hash(b)
    monkeypatch.setenv("NEPTUNE_DATA_ROOT", str(tmp_path / "two"))
    assert run_hash(b) != one


def test_closing_the_loop_does_not_wait_for_program_requests_in_flight(tmp_path, capsys, fake_openai):
    """A run interrupted while program requests are in flight returns promptly (the pool is not awaited)."""
    samples = synthetic_samples()
    release = threading.Event()

    def slow(sample_id: str, n: int):  # noqa: ANN202
        if n > 4:
            release.wait(5)
        return None

    fake_openai.responder = ProgramLLM(samples, hook=slow)
    from runners.base import Runner

    config = load_config(write_config(tmp_path, llm_config(fake_openai.base_url, tmp_path, code_gen_concurrency=4)))
    runner = Runner(config)
    gen = runner.process_all(samples)
    first = next(gen)
    t0 = time.monotonic()
    gen.close()  # what an interrupt does to the loop
    assert time.monotonic() - t0 < 1.0 and first["id"] == samples[0].id
    release.set()
