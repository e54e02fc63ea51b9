"""Run directory: resolved config without secrets, commit kept across resumes, stale-code note."""

from __future__ import annotations

import json

from neptune_core.config import load_config
from runners import rundir


def test_config_saved_without_secret_like_fields():
    assert rundir.scrub_secrets({"a": 1, "api_key": "s", "nested": {"token": "t", "b": 2}}) == {
        "a": 1,
        "nested": {"b": 2},
    }


def test_resume_keeps_start_commit_and_warns_when_code_changed(tmp_path, monkeypatch, capsys):
    config = load_config(None, {"output_dir": str(tmp_path), "run_name": "r"})
    monkeypatch.setattr(rundir, "git_commit", lambda: {"commit": "a" * 40, "dirty": False})
    run_dir = rundir.prepare_run_dir(config)
    assert json.loads((run_dir / "config.json").read_text())["run_name"] == "r"
    (run_dir / "results.jsonl").write_text('{"id": "x"}\n')
    monkeypatch.setattr(rundir, "git_commit", lambda: {"commit": "b" * 40, "dirty": False})
    rundir.prepare_run_dir(config)
    saved = json.loads((run_dir / "git.json").read_text())
    assert saved["commit"] == "a" * 40 and saved["resumed_at"][0]["commit"] == "b" * 40
    assert "started at commit aaaaaaaaaa" in capsys.readouterr().err
