"""--evaluate: exact match first, the LLM judge (a local fake server, real openai client) only on mismatches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import run
from analysis.evaluate import evaluate_run
from analysis.judge import VerdictCache, parse_verdict
from analysis.normalize import answers_match, normalize_answer, singular
from neptune_core.config import load_config
from neptune_core.errors import UserError
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
    return {w for body in server.requests for w in MISMATCH if w in last_user_text(body)}


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


def test_only_mismatches_reach_the_judge_and_rerun_uses_the_cache(tmp_path, fake_openai, monkeypatch):
    fake_openai.responder = _judge_says_yes_for("maroon")
    config = _setup(tmp_path, fake_openai, monkeypatch)
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=8)
    assert fake_openai.request_count == 3 and _judged_predictions(fake_openai) == MISMATCH
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
    }
    assert report["judge_verdicts"] == {"cached": 0, "new": 3, "requests": 3}
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "evaluation.json").read_text()) == report
    assert "| query | 3 | 33.33 | 66.67 | 2 | 1 |" in (run_dir / "evaluation.md").read_text()

    again = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=8)
    assert fake_openai.request_count == 3  # all verdicts served from the cache
    assert again["judge_verdicts"] == {"cached": 3, "new": 0, "requests": 0} and again["overall"] == report["overall"]


def test_outage_and_junk_are_retried(tmp_path, fake_openai, monkeypatch):
    fake_openai.script(error(500), error(429, retry_after=0.01), raw("{not json"), reply("perhaps"))
    fake_openai.responder = _judge_says_yes_for("maroon", "steel")
    config = _setup(tmp_path, fake_openai, monkeypatch, retries=6)
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)
    assert fake_openai.request_count == 3 + 4
    assert report["overall"]["correct"] == 4 + 2 and report["judge_verdicts"]["new"] == 3


def test_long_outage_keeps_verdicts_already_made(tmp_path, fake_openai, monkeypatch):
    fake_openai.script(reply("yes"))  # the first verdict arrives, then the judge goes down
    fake_openai.responder = lambda body: error(503, "down")
    config = _setup(tmp_path, fake_openai, monkeypatch, retries=2)
    with pytest.raises(UserError, match=r"failed 3 times.*1 new verdicts were saved.*rerun --evaluate") as exc:
        evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)
    assert "\n" not in str(exc.value)
    assert fake_openai.request_count == 1 + 3  # the second mismatch was tried 3 times; the third never asked
    cache = VerdictCache(tmp_path / "run" / "judge_verdicts.jsonl")
    assert len(cache.verdicts) == 1 and list(cache.verdicts.values()) == [True]

    fake_openai.reset()
    fake_openai.responder = _judge_says_yes_for("never")
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=4)
    assert fake_openai.request_count == 2  # only the two verdicts still missing
    assert report["judge_verdicts"] == {"cached": 1, "new": 2, "requests": 2}
    assert report["overall"]["correct"] == 4 + 1  # exact and box, + the verdict kept from before the outage


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


def test_evaluate_through_run_py(tmp_path, fake_openai, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    cfg = tmp_path / "exp.json"
    cfg.write_text(json.dumps({"dataset": "clevr_synthetic", "output_dir": str(tmp_path)}))
    run_dir = tmp_path / f"exp-{load_config(cfg).config_hash()}"  # run.py's default run name
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
    assert out["overall"]["correct"] == 5 and fake_openai.request_count == 3
    assert run.main(["--config", str(tmp_path / "missing.json"), "--evaluate"]) == 2
    assert run.main(["--config", str(cfg), "--evaluate", "--seed", "7"]) == 2  # another hash: no results there
    assert "no results to evaluate" in capsys.readouterr().err


def test_timeouts_and_dropped_connections_are_retried_but_401_is_not(tmp_path, fake_openai, monkeypatch):
    fake_openai.script(delay(1.0, reply("yes")), disconnect())
    fake_openai.responder = _judge_says_yes_for("maroon")
    config = _setup(tmp_path, fake_openai, monkeypatch, timeout_s=0.3)
    report = evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)
    assert fake_openai.request_count == 3 + 2 and report["overall"]["correct"] == 5

    (tmp_path / "run" / "judge_verdicts.jsonl").unlink()
    fake_openai.reset()
    fake_openai.responder = lambda body: error(401, "bad key")
    with pytest.raises(UserError, match="refused the request: HTTP 401"):
        evaluate_run(config, judge_model="deepseek-chat", judge_provider="deepseek", workers=1)
    assert fake_openai.request_count == 1  # no retry, and the other verdicts are not asked
