"""--evaluate: exact match first, the LLM judge (a local fake server, real openai client) only on mismatches,
only when one is configured, after its own preflight; rows it cannot judge are recorded, never fatal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import run
from analysis.evaluate import evaluate_run
from analysis.judge import VerdictCache, parse_verdict
from analysis.normalize import answers_match, normalize_answer, singular
from neptune_core.config import load_config
from neptune_core.errors import UserError
from runners.identity import run_hash
from tests import fake_openai_server
from tests.fake_openai_server import FakeOpenAIServer, delay, disconnect, error, last_user_text, raw, reply

fake_openai = fake_openai_server.fake_openai  # the fixture: a local OpenAI-compatible server

ROWS = [
    {"id": "a", "question": "How many cubes?", "gold": "3", "pred": "three objects", "family": "count"},
    {"id": "b", "question": "What shape is it?", "gold": "sphere", "pred": "Balls", "family": "query"},
    {"id": "c", "question": "Is there a cube?", "gold": "yes", "pred": "Yes.", "family": "exist"},
    {"id": "d", "question": "What color is it?", "gold": "brown", "pred": "maroon", "family": "query"},
    {"id": "e", "question": "How many balls?", "gold": "2", "pred": "several", "family": "count"},
    {"id": "f", "question": "What is it made of?", "gold": "metal", "pred": "steel", "family": "query"},
    {
        "id": "g",
        "question": "Is it red?",
        "gold": "no",
        "pred": None,
        "family": "exist",
        "error": {"type": "ZeroDivisionError", "message": "x", "stage": "execute"},
    },
    {
        "id": "h",
        "question": "the red cube",
        "gold": [0, 0, 5, 5],
        "pred": [0, 0, 5, 6],
        "correct": True,
        "family": "box",
    },
]
MISMATCH = {"maroon", "several", "steel"}


def _judge_says_yes_for(*words: str):
    return lambda body: reply("Yes" if any(w in last_user_text(body) for w in words) else "No.")


def _setup(tmp_path: Path, server: FakeOpenAIServer, monkeypatch, **judge) -> object:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test")
    server.models = ["deepseek-chat", "local-model", "gpt-x"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    overrides = {
        "output_dir": str(tmp_path),
        "run_name": "run",
        "judge": {"base_url": server.base_url, "backoff_s": 0.001, "max_backoff_s": 0.01, "timeout_s": 5, **judge},
    }
    return load_config(None, overrides)


def _judged_predictions(server: FakeOpenAIServer) -> set[str]:
    return {w for body in server.sample_requests() for w in MISMATCH if w in last_user_text(body)}


def _verdict_requests(server: FakeOpenAIServer) -> int:
    """Chat requests for verdicts (the judge's one preflight check not counted)."""
    return len(server.sample_requests())


def test_normalisation_numbers_plurals_synonyms():
    assert [singular(w) for w in ("cubes", "berries", "boxes", "glass", "bus", "spheres")] == [
        "cube",
        "berry",
        "box",
        "glass",
        "bus",
        "sphere",
    ]
    assert answers_match("three objects", "3") and answers_match("2.0", "two") and answers_match("None", "0")
    assert answers_match("Big shiny balls", "large metal sphere") and answers_match("Yep", "yes")
    assert not answers_match("2", "3") and not answers_match("cube", "sphere") and not answers_match("yes", "no")
    assert normalize_answer("The cylinders.") == "cylinder"


def test_parse_verdict():
    assert parse_verdict("Yes.") is True and parse_verdict(" no, it is not") is False
    assert parse_verdict("maybe") is None and parse_verdict(None) is None
    # the whole reply is read, not its first word
    assert parse_verdict("The gold answer is correct") is True
    assert parse_verdict("The prediction is not correct.") is False
    assert parse_verdict("They mean the same thing.") is True and parse_verdict("They do not mean the same.") is False
    assert parse_verdict("Verdict: NO") is False and parse_verdict('{"verdict": "yes"}') is True
    assert parse_verdict("Reasoning first... verdict: yes") is True
    assert parse_verdict("Not correct, though the correct answer is close") is None  # contradicts itself: ask again


def test_only_mismatches_reach_the_judge_and_rerun_uses_the_cache(tmp_path, fake_openai, monkeypatch):
    fake_openai.responder = _judge_says_yes_for("maroon")
    config = _setup(tmp_path, fake_openai, monkeypatch)
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=8)
    assert _verdict_requests(fake_openai) == 3 and _judged_predictions(fake_openai) == MISMATCH
    assert fake_openai.probe_count == 1  # the judge's preflight
    assert all(b["model"] == "deepseek-chat" for b in fake_openai.requests)
    assert report["overall"]["total"] == 8  # the box line keeps its IoU verdict, the error line is wrong
    assert report["overall"]["exact_match_correct"] == 4 and report["overall"]["correct"] == 5
    assert report["methods"] == {"box": 1, "exact": 3, "judge": 3, "no_prediction": 1}
    assert report["per_family"]["query"] == {
        "total": 3,
        "exact_match_correct": 1,
        "exact_match_accuracy": 33.33,
        "correct": 2,
        "accuracy": 66.67,
        "judged": 2,
        "judge_accepted": 1,
        "unjudged": 0,
    }
    assert report["judge_verdicts"] == {"cached": 0, "new": 3, "requests": 3, "unjudged": 0}
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "evaluation.json").read_text()) == report
    assert "| query | 3 | 33.33 | 66.67 | 2 | 1 | 0 |" in (run_dir / "evaluation.md").read_text()

    again = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=8)
    assert fake_openai.request_count == 4  # all verdicts served from the cache: not even a preflight
    assert again["judge_verdicts"] == {"cached": 3, "new": 0, "requests": 0, "unjudged": 0}
    assert again["overall"] == report["overall"]


def test_outage_and_junk_are_retried(tmp_path, fake_openai, monkeypatch):
    fake_openai.script(error(500), error(429, retry_after=0.01), raw("{not json"), reply("perhaps"))
    fake_openai.responder = _judge_says_yes_for("maroon", "steel")
    config = _setup(tmp_path, fake_openai, monkeypatch, retries=6)
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)
    assert _verdict_requests(fake_openai) == 3 + 4
    assert report["overall"]["correct"] == 4 + 2 and report["judge_verdicts"]["new"] == 3


def test_long_outage_records_unjudged_rows_and_keeps_verdicts_already_made(tmp_path, fake_openai, monkeypatch):
    fake_openai.script(reply("yes"))  # the first verdict arrives, then the judge goes down
    fake_openai.responder = lambda body: error(503, "down")
    config = _setup(tmp_path, fake_openai, monkeypatch, retries=2)
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)  # no abort
    assert _verdict_requests(fake_openai) == 1 + 3  # the second mismatch was tried 3 times; the third never asked
    assert report["judge_verdicts"] == {"cached": 0, "new": 1, "requests": 4, "unjudged": 2}
    reasons = [u["reason"] for u in report["unjudged"]]
    assert len(reasons) == 2 and any("failed 3 times" in r for r in reasons) and any("not asked" in r for r in reasons)
    assert report["overall"]["unjudged"] == 2 and report["overall"]["correct"] == 4 + 1  # unjudged: exact match
    assert (tmp_path / "run" / "evaluation.json").is_file()  # the report is written
    cache = VerdictCache(tmp_path / "run" / "judge_verdicts.jsonl")
    assert len(cache.verdicts) == 1 and list(cache.verdicts.values()) == [True]

    fake_openai.reset()
    fake_openai.responder = _judge_says_yes_for("never")
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=4)
    assert _verdict_requests(fake_openai) == 2  # only the two verdicts still missing
    assert report["judge_verdicts"] == {"cached": 1, "new": 2, "requests": 2, "unjudged": 0}
    assert report["overall"]["correct"] == 4 + 1  # exact and box, + the verdict kept from before the outage


def test_a_reply_without_verdict_leaves_that_row_unjudged(tmp_path, fake_openai, monkeypatch, capsys):
    fake_openai.on("maroon", reply("Hmm, hard to say."))
    fake_openai.responder = lambda body: reply("The gold answer is correct: same meaning.")
    config = _setup(tmp_path, fake_openai, monkeypatch, retries=1)
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=2)
    assert [u["id"] for u in report["unjudged"]] == ["d"] and "no verdict in 2 replies" in report["unjudged"][0][
        "reason"
    ]
    assert report["overall"]["correct"] == 4 + 2  # several and steel accepted from a prose verdict
    from run import _evaluate

    class Args:
        judge_model, judge_provider, workers = "deepseek-chat", "deepseek", 2

    config.max_failure_rate = 0.1  # 1 of 8 rows unjudged is above it: a degraded evaluation
    fake_openai.on("maroon", reply("Hmm, hard to say."))
    assert _evaluate(config, Args) == 3
    assert "degraded evaluation: 1 of 8 rows (12.5%) could not be judged" in capsys.readouterr().err


def test_fallback_answers_are_never_sent_to_the_judge(tmp_path, fake_openai, monkeypatch):
    config = _setup(tmp_path, fake_openai, monkeypatch)
    extra = [
        {"id": "fb1", "question": "What is it?", "gold": "cube", "pred": "unknown", "family": "query",
         "outcome": "fallback", "fallback": {"reason": "no program", "transient": False}},
        {"id": "fb2", "question": "Is it big?", "gold": "yes", "pred": "Yes", "family": "exist",
         "program_origin": "fallback"},  # a row written before rows had outcomes
    ]  # fmt: skip
    with (tmp_path / "run" / "results.jsonl").open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in extra)
    fake_openai.responder = _judge_says_yes_for("maroon", "unknown", "several", "steel")
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=2)
    assert not any("unknown" in last_user_text(b) for b in fake_openai.sample_requests())
    assert _verdict_requests(fake_openai) == 3 and report["methods"]["fallback"] == 2
    assert report["overall"]["total"] == 10 and report["overall"]["correct"] == 4 + 3 + 1  # fb2: exact match


def test_no_judge_key_means_exact_match_only_exit_0(tmp_path, fake_openai, monkeypatch, capsys):
    for var in ("DEEPSEEK_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file up the tree
    cfg = tmp_path / "exp.json"
    cfg.write_text(json.dumps({"dataset": "clevr_synthetic", "output_dir": str(tmp_path)}))
    run_dir = tmp_path / f"exp-{run_hash(load_config(cfg))}"  # run.py's default run name
    run_dir.mkdir()
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    t0 = time.monotonic()
    assert run.main(["--config", str(cfg), "--evaluate"]) == 0
    assert time.monotonic() - t0 < 5  # no judge to wait for
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["judge_model"] is None and report["judge_verdicts"]["requests"] == 0
    assert report["overall"] == {
        "total": 8,
        "exact_match_correct": 4,
        "exact_match_accuracy": 50.0,
        "correct": 4,
        "accuracy": 50.0,
        "judged": 0,
        "judge_accepted": 0,
        "unjudged": 0,
    }
    assert "exact match only" in err and "DEEPSEEK_API_KEY" in err
    assert "No LLM judge: exact match only" in (run_dir / "evaluation.md").read_text()
    assert fake_openai.request_count == 0
    # asking for a judge explicitly without its key is a one-line setup error
    assert run.main(["--config", str(cfg), "--evaluate", "--judge_provider", "deepseek"]) == 2
    assert "needs the environment variable DEEPSEEK_API_KEY" in capsys.readouterr().err


def test_missing_key_is_one_line_naming_the_variable(tmp_path, fake_openai, monkeypatch):
    config = _setup(tmp_path, fake_openai, monkeypatch)
    monkeypatch.delenv("DEEPSEEK_API_KEY")
    with pytest.raises(UserError, match="DEEPSEEK_API_KEY"):
        evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=2)
    with pytest.raises(UserError, match="unknown --judge_provider 'deepsek'.*did you mean 'deepseek'"):
        evaluate_run(config, judge_model="m", judge_provider="deepsek", workers=2)
    fake_openai.responder = _judge_says_yes_for("steel")
    report = evaluate_run(config, judge_model="local-model", judge_provider="vllm", workers=2)  # vllm: no key
    assert report["overall"]["correct"] == 5 and fake_openai.requests[0]["model"] == "local-model"
    (tmp_path / "run" / "judge_verdicts.jsonl").unlink()
    fake_openai.models = ["served-model"]
    report = evaluate_run(config, judge_provider="vllm", workers=2)  # no model: the one the server serves
    assert report["judge_model"] == "served-model" and fake_openai.requests[-1]["model"] == "served-model"


def test_evaluate_through_run_py(tmp_path, fake_openai, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake_openai.models = ["gpt-x"]
    cfg = tmp_path / "exp.json"
    cfg.write_text(json.dumps({"dataset": "clevr_synthetic", "output_dir": str(tmp_path)}))
    run_dir = tmp_path / f"exp-{run_hash(load_config(cfg))}"  # run.py's default run name
    run_dir.mkdir()
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    fake_openai.responder = _judge_says_yes_for("several")
    argv = [
        "--config",
        str(cfg),
        "--evaluate",
        "--judge_provider",
        "openai",
        "--judge_model",
        "gpt-x",
        "--workers",
        "3",
        "--judge.base_url",
        fake_openai.base_url,
        "--judge.backoff_s",
        "0.001",
    ]
    assert run.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overall"]["correct"] == 5 and _verdict_requests(fake_openai) == 3
    assert run.main(["--config", str(tmp_path / "missing.json"), "--evaluate"]) == 2
    assert run.main(["--config", str(cfg), "--evaluate", "--seed", "7"]) == 2  # another hash: no results there
    assert "no results to evaluate" in capsys.readouterr().err


def test_timeouts_and_dropped_connections_are_retried_but_401_is_not(tmp_path, fake_openai, monkeypatch):
    fake_openai.script(delay(1.0, reply("yes")), disconnect())
    fake_openai.responder = _judge_says_yes_for("maroon")
    config = _setup(tmp_path, fake_openai, monkeypatch, timeout_s=0.3)
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)
    assert _verdict_requests(fake_openai) == 3 + 2 and report["overall"]["correct"] == 5

    (tmp_path / "run" / "judge_verdicts.jsonl").unlink()
    fake_openai.reset()
    fake_openai.responder = lambda body: error(401, "bad key")  # the key is revoked after the preflight
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)
    assert _verdict_requests(fake_openai) == 1  # no retry, and the other verdicts are not asked
    assert (
        report["judge_verdicts"]["unjudged"] == 3 and "refused the request: HTTP 401" in report["unjudged"][0]["reason"]
    )


def test_judge_preflight_fails_fast_on_a_bad_key_or_a_dead_server(tmp_path, fake_openai, monkeypatch):
    config = _setup(tmp_path, fake_openai, monkeypatch)
    fake_openai.api_key = "sk-other"
    with pytest.raises(UserError, match=r"LLM judge .*API key was refused \(HTTP 401.*set DEEPSEEK_API_KEY"):
        evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)
    assert _verdict_requests(fake_openai) == 0
    fake_openai.stop()
    with pytest.raises(UserError, match="cannot connect.*judge.base_url"):
        evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)
