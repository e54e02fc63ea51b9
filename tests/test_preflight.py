"""Preflight: a broken setup fails before the first sample, in one line, exit 2, within seconds,
and leaves no run directory. The LLM endpoint is the fake OpenAI-compatible server on
127.0.0.1 (real ``openai`` client); models are hub ids that cannot be had offline."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from neptune_core.endpoints import EndpointCheck, EndpointUnavailableError, check_endpoint
from neptune_core.errors import ModelUnavailableError
from tests import fake_openai_server
from tests.fake_openai_server import error, raw
from tests.journeys import (
    ProgramLLM,
    llm_config,
    rows,
    run_cli,
    sample_requests,
    synthetic_samples,
    write_config,
)
from vision_agents import availability
from vision_agents.hf_vlm import HFVisionAgent
from vision_agents.openai_vlm import OpenAIVisionAgent

fake_openai = fake_openai_server.fake_openai  # the fixture

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 10.0  # the bound for failing a broken start, Python start-up included


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def _import_seconds(modules: str, cwd: Path) -> float:
    """Wall time of a Python that only imports ``modules`` (what a start costs before any check runs)."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", f"import {modules}"], cwd=ROOT, check=True, timeout=120)
    return time.monotonic() - t0


def _assert_fast(seconds: float, baseline: float) -> None:
    """Within LIMIT_S; on a machine so loaded that imports alone take most of that, the checks
    themselves (time beyond the imports) must still take under 3 s: no retry loops."""
    assert seconds < LIMIT_S or seconds - baseline < 3.0, f"took {seconds:.1f} s (imports alone: {baseline:.1f} s)"


def _run_subprocess(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stderr, time.monotonic() - t0


# ---- the LLM endpoint -----------------------------------------------------------------
def test_server_down_at_start_fails_in_one_line_within_10_s(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    cfg = write_config(tmp_path, llm_config(url, tmp_path))
    code, err, seconds = _run_subprocess(["--config", str(cfg)], cwd=tmp_path)
    assert code == 2, err
    line = _one_error_line(err)
    assert "LLM program generator" in line and url in line and "cannot connect" in line
    assert "code_gen_base_url" in line
    _assert_fast(seconds, _import_seconds("run, runners.run_vqa, code_generator.llm_generator", tmp_path))
    assert not (tmp_path / "exp").exists()  # no stub run folder


class _WebPage(BaseHTTPRequestHandler):
    """Something else on the port: a web page for every path."""

    def log_message(self, *args: object) -> None:
        return

    def _page(self) -> None:
        body = b"<html><body>dashboard</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page  # noqa: N815


def test_wrong_port_serving_something_else(tmp_path, capsys):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        cfg = write_config(tmp_path, llm_config(url, tmp_path))
        code, _, err = run_cli(["--config", str(cfg)], capsys)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 2
    line = _one_error_line(err)
    assert "not an OpenAI-compatible server" in line and "code_gen_base_url" in line and url in line
    assert not (tmp_path / "exp").exists()


def test_base_url_without_v1_says_to_add_it(tmp_path, capsys, fake_openai):
    bare = fake_openai.base_url.removesuffix("/v1")
    cfg = write_config(tmp_path, llm_config(bare, tmp_path))
    code, _, err = run_cli(["--config", str(cfg)], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "404" in line and f"set code_gen_base_url to {bare}/v1" in line
    assert sample_requests(fake_openai) == 0 and not (tmp_path / "exp").exists()


def test_bad_key_names_the_variable_and_never_shows_the_key(tmp_path, capsys, fake_openai, monkeypatch):
    fake_openai.api_key = "sk-right"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret")
    cfg = write_config(tmp_path, llm_config(fake_openai.base_url, tmp_path, code_gen_provider="openai"))
    code, out, err = run_cli(["--config", str(cfg)], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "API key was refused (HTTP 401" in line and "set OPENAI_API_KEY" in line
    assert "sk-wrong-secret" not in out + err
    assert sample_requests(fake_openai) == 0 and not (tmp_path / "exp").exists()

    monkeypatch.setenv("OPENAI_API_KEY", "sk-right")  # fixed: the same command runs
    fake_openai.responder = ProgramLLM(synthetic_samples())
    code, _, err = run_cli(["--config", str(cfg)], capsys)
    assert code == 0, err
    assert sample_requests(fake_openai) == 8


def test_wrong_model_name_is_caught_against_the_model_list(tmp_path, capsys, fake_openai):
    cfg = write_config(tmp_path, llm_config(fake_openai.base_url, tmp_path, code_gen_model_name="fake-modle"))
    code, _, err = run_cli(["--config", str(cfg)], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "model 'fake-modle' is not served (the server lists: fake-model)" in line
    assert "code_gen_model_name" in line
    assert fake_openai.request_count == 0 and fake_openai.gets == ["/v1/models"]  # the chat probe was not sent
    assert not (tmp_path / "exp").exists()


def test_model_refused_by_a_server_without_model_list(tmp_path, capsys, fake_openai):
    fake_openai.models = None  # GET /v1/models: 404; the chat probe decides
    fake_openai.probe_action = error(404, "The model `fake-modle` does not exist")
    cfg = write_config(tmp_path, llm_config(fake_openai.base_url, tmp_path, code_gen_model_name="fake-modle"))
    code, _, err = run_cli(["--config", str(cfg)], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "model 'fake-modle' was refused (HTTP 404: The model `fake-modle` does not exist)" in line
    assert fake_openai.probe_count == 1


def test_all_programs_cached_means_no_llm_is_needed(tmp_path, capsys, fake_openai):
    fake_openai.responder = ProgramLLM(synthetic_samples())
    cfg = write_config(tmp_path, llm_config(fake_openai.base_url, tmp_path))
    assert run_cli(["--config", str(cfg)], capsys)[0] == 0
    assert sample_requests(fake_openai) == 8 and fake_openai.probe_count == 1
    fake_openai.stop()  # the server is gone; every program is in the cache
    code, out, err = run_cli(["--config", str(cfg), "--restart"], capsys)
    assert code == 0, err
    assert "0 LLM requests, 8 program cache hits" in out
    (aside,) = (tmp_path / "exp").glob("*.replaced-*")  # --restart moved the old one aside
    run_dir = aside.with_name(aside.name.split(".replaced-")[0])
    assert all(r["program_origin"] == "cache" and r["outcome"] == "ok" for r in rows(run_dir))
    assert [r["id"] for r in rows(aside)] == [r["id"] for r in rows(run_dir)]


def test_endpoint_check_unit_cases(fake_openai):
    def check(**kw) -> EndpointCheck:
        base = {
            "what": "thing",
            "base_url": fake_openai.base_url,
            "api_key": "k",
            "model": "fake-model",
            "url_setting": "u",
            "model_setting": "m",
            "key_hint": "set K",
        }
        return EndpointCheck(**{**base, **kw})

    assert check_endpoint(check()) == "fake-model"
    assert check_endpoint(check(model="")) == "fake-model"  # the one served model
    fake_openai.probe_action = error(429, "slow down", retry_after=30)
    assert check_endpoint(check()) == "fake-model"  # rate limited: reachable and the key works
    fake_openai.probe_action = error(503, "loading")
    with pytest.raises(EndpointUnavailableError, match="answered HTTP 503"):
        check_endpoint(check())
    fake_openai.probe_action = raw('{"object": "chat.completion", "choices": []}')
    with pytest.raises(EndpointUnavailableError, match="without choices"):
        check_endpoint(check())
    fake_openai.models = ["a", "b"]
    with pytest.raises(EndpointUnavailableError, match=r"lists 2 models \(a, b\); name one in m"):
        check_endpoint(check(model=""))


def _reply_with_logprobs() -> fake_openai_server.Action:
    choice = {
        "index": 0,
        "finish_reason": "length",
        "message": {"role": "assistant", "content": "OK"},
        "logprobs": {"content": [{"token": "OK", "logprob": -0.1, "bytes": None, "top_logprobs": []}]},
    }
    return raw(json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}))


def test_openai_vlm_preflight_checks_model_and_logprobs(fake_openai):
    agent = OpenAIVisionAgent(fake_openai.base_url)
    with pytest.raises(EndpointUnavailableError, match="no logprobs"):
        agent.preflight()  # the default probe reply carries no logprobs
    probe = fake_openai.requests[-1]
    assert probe["logprobs"] is True and probe["messages"][0]["content"][0]["type"] == "image_url"
    fake_openai.probe_action = _reply_with_logprobs()
    agent.preflight()
    assert agent.model == "fake-model"  # asked from the server
    dead = OpenAIVisionAgent(f"http://127.0.0.1:{_free_port()}/v1")
    with pytest.raises(EndpointUnavailableError, match="cannot connect.*vlm_base_url"):
        dead.preflight()


# ---- models --------------------------------------------------------------------------------
def test_unloadable_model_with_hf_hub_offline_fails_in_one_line_within_10_s(tmp_path):
    cfg = write_config(
        tmp_path,
        {
            "dataset": "clevr_synthetic",
            "synthetic": {"num_scenes": 1, "questions_per_scene": 2, "image_width": 96, "image_height": 64},
            "vlm_model_name": "no-such-org/no-such-vlm",
            "od_model": "gt",
            "program_generator": "symbolic_clevr",
            "output_dir": str(tmp_path / "exp"),
        },
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code, err, seconds = _run_subprocess(["--config", str(cfg)], cwd=tmp_path, env=env)
    assert code == 2, err
    line = _one_error_line(err)
    assert "vlm_model_name 'no-such-org/no-such-vlm'" in line and "HF_HUB_OFFLINE=1" in line
    assert "hf download no-such-org/no-such-vlm" in line and "local model directory" in line
    _assert_fast(seconds, _import_seconds("run, runners.run_vqa, vision_agents.hf_vlm", tmp_path))
    assert not (tmp_path / "exp").exists()


def test_weights_availability_cases(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelUnavailableError, match="directory without config.json"):
        availability.check_weights_available(str(tmp_path / "m"), "vlm_model_name")
    (tmp_path / "m" / "config.json").write_text("{}")
    availability.check_weights_available(str(tmp_path / "m"), "vlm_model_name")  # a local model: fine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="od_model 'org/none'.*HF_HUB_OFFLINE=1.*hf download org/none"):
        availability.check_weights_available("org/none", "od_model")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(availability, "hub_offline", lambda: False)
    asked: list[str] = []

    def unreachable(self, repo_id, **kw):  # noqa: ANN001
        asked.append(repo_id)
        raise httpx.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", unreachable)
    with pytest.raises(ModelUnavailableError, match="hub .* is unreachable \\(ConnectError\\)"):
        availability.check_weights_available("org/none", "vlm_model_name")
    assert asked == ["org/none"]  # one request, no retries


def test_a_failed_load_is_not_retried_per_sample(tmp_path, monkeypatch):
    calls: list[str] = []

    def failing(self) -> None:  # noqa: ANN001
        calls.append(self.model_id)  # a real load would reach for the hub again
        raise ModelUnavailableError(f"cannot load model '{self.model_id}'")

    monkeypatch.setattr(HFVisionAgent, "_load", failing)
    monkeypatch.setattr(HFVisionAgent, "check_available", lambda self: None)  # as if the hub had it
    agent = HFVisionAgent("org/none", device="cpu")
    for _ in range(3):
        with pytest.raises(ModelUnavailableError):
            agent.load()
    assert calls == ["org/none"]


@pytest.mark.slow
def test_workers_report_a_model_preflight_failure_once(tmp_path):
    cfg = write_config(
        tmp_path,
        {
            "dataset": "clevr_synthetic",
            "synthetic": {"num_scenes": 1, "questions_per_scene": 4, "image_width": 96, "image_height": 64},
            "vlm_model_name": "no-such-org/no-such-vlm",
            "od_model": "gt",
            "program_generator": "symbolic_clevr",
            "output_dir": str(tmp_path / "exp"),
        },
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code, err, _ = _run_subprocess(["--config", str(cfg), "--workers", "2"], cwd=tmp_path, env=env)
    assert code == 2, err
    errors = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "no-such-org/no-such-vlm" in errors[0] and "HF_HUB_OFFLINE=1" in errors[0]
    assert "Traceback" not in err
    assert not (tmp_path / "exp").exists()  # the run directory made for the workers was removed again


def test_configs_name_only_program_caches_that_ship_or_are_made_on_first_use():
    listed = (ROOT / "programs" / "README.md").read_text().split("| file |", 1)[1]
    shipped = {p.name for p in (ROOT / "programs").iterdir() if p.name.endswith((".json", ".json.gz"))}
    rows_in_readme = {ln.split("|")[1].strip().strip("`") for ln in listed.splitlines()[2:] if ln.startswith("|")}
    assert rows_in_readme == shipped  # the README's list of shipped caches is the truth (none yet)
    for cfg in sorted((ROOT / "configs").glob("*.json")):
        cache = json.loads(cfg.read_text()).get("program_cache_address", "")
        if cache:
            # relative, under programs/: created there on the first run of the config (from the repo root)
            assert cache.startswith("programs/") and cache.endswith((".json", ".json.gz")), (cfg.name, cache)
