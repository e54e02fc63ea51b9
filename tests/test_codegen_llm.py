"""Program generation against a local OpenAI-compatible server, through the real openai client."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from code_generator import GENERATORS
from code_generator.llm_client import ChatClient, LLMError, RetryPolicy
from code_generator.llm_generator import LLMProgramGenerator, fallback_source
from code_generator.providers import Endpoint, MissingAPIKeyError, resolve_endpoint
from neptune_core.config import RunConfig
from neptune_core.errors import UserError
from neptune_core.executor import check_source
from neptune_core.types import Sample
from tests import fake_openai_server
from tests.fake_openai_server import FakeOpenAIServer, InFlight, delay, disconnect, error, raw, reply

fake_openai = fake_openai_server.fake_openai  # the pytest fixture

GOOD = 'Objects: ["cube"]\n```python\ndef execute(score, query, n):\n    return score("Is this a red cube?", 1).count()\n```\n'
BROKEN = (
    'Objects: ["cube"]\n```python\ndef execute(score, query, n)\n    return score("Is this a cube?", 1).count()\n```\n'
)


def make_config(server: FakeOpenAIServer, tmp_path: Path, **overrides) -> RunConfig:
    values = dict(
        dataset="clevr",
        program_generator="llm",
        code_gen_provider="vllm",
        code_gen_base_url=server.base_url,
        code_gen_model_name="fake-model",
        code_gen_timeout_s=0.5,
        code_gen_http_retries=3,
        code_gen_backoff_s=0.001,
        code_gen_max_backoff_s=0.01,
        code_gen_max_retries=2,
        program_cache_address=str(tmp_path / "programs.json"),
    )
    values.update(overrides)
    return RunConfig(**values)


def generator(server: FakeOpenAIServer, tmp_path: Path, **overrides) -> LLMProgramGenerator:
    return GENERATORS.get("llm").from_config(make_config(server, tmp_path, **overrides))


def test_plain_success_records_path_and_objects(fake_openai, tmp_path):
    fake_openai.script(reply(GOOD))
    program = generator(fake_openai, tmp_path).program_for(Sample(id="1", question="How many red cubes are there?"))
    assert program.origin == "generated"
    assert program.object_names == ["cube"]
    assert "def execute(score, query, n)" in program.source
    check_source(program.source)
    assert fake_openai.request_count == 1
    body = fake_openai.requests[0]
    assert body["model"] == "fake-model" and body["temperature"] == 0
    assert body["messages"][0]["role"] == "system" and "How many red cubes" in body["messages"][-1]["content"]


def test_429_honours_retry_after(fake_openai, tmp_path):
    fake_openai.script(error(429, "slow down", retry_after=0.3), reply(GOOD))
    gen = generator(fake_openai, tmp_path)
    start = time.monotonic()
    program = gen.program_for("How many red cubes are there?")
    assert time.monotonic() - start >= 0.3  # backoff alone would be ~1 ms (max 10 ms)
    assert program.origin == "generated" and fake_openai.request_count == 2


def test_500_then_success(fake_openai, tmp_path):
    fake_openai.script(error(500), error(503), reply(GOOD))
    program = generator(fake_openai, tmp_path).program_for("How many red cubes are there?")
    assert program.origin == "generated" and fake_openai.request_count == 3


def test_response_slower_than_timeout_is_retried(fake_openai, tmp_path):
    fake_openai.script(delay(1.5, reply(GOOD)), reply(GOOD))
    start = time.monotonic()
    program = generator(fake_openai, tmp_path, code_gen_timeout_s=0.3).program_for("How many red cubes are there?")
    assert program.origin == "generated" and fake_openai.request_count == 2
    assert time.monotonic() - start < 1.5


def test_malformed_json_is_retried_then_falls_back_uncached(fake_openai, tmp_path):
    fake_openai.script(raw("{not json"), reply(GOOD))
    assert generator(fake_openai, tmp_path).program_for("How many red cubes are there?").origin == "generated"
    fake_openai.reset()
    fake_openai.responder = lambda body: raw("<html>bad gateway</html>", content_type="text/html")
    gen = generator(fake_openai, tmp_path / "other")
    program = gen.program_for(Sample(id="2", question="How many red cubes are there?"))
    assert program.origin == "fallback"
    assert "malformed response" in program.info["error"]
    assert fake_openai.request_count == 4  # 1 + code_gen_http_retries
    assert gen.cache is not None and len(gen.cache) == 0  # a transport failure is not cached


@pytest.mark.parametrize("bad", [reply(""), reply(None), reply("I think the answer is three red cubes.")])
def test_empty_or_prose_reply_gets_error_feedback(fake_openai, tmp_path, bad):
    fake_openai.script(bad, reply(GOOD))
    program = generator(fake_openai, tmp_path).program_for("How many red cubes are there?")
    assert program.origin == "repaired"
    assert fake_openai.request_count == 2
    feedback = fake_openai.requests[1]["messages"][-1]["content"]
    assert "Problems found" in feedback and ("empty" in feedback or "no code" in feedback)


def test_syntax_error_fixed_by_repair_round(fake_openai, tmp_path):
    fake_openai.script(reply(BROKEN), reply(GOOD))
    program = generator(fake_openai, tmp_path).program_for("How many red cubes are there?")
    assert program.origin == "repaired" and program.info["attempts"] == 2
    second = fake_openai.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": BROKEN}
    assert "syntax error at line 1" in second[-1]["content"]


def test_certain_repair_needs_no_second_request(fake_openai, tmp_path):
    yes = 'Objects: ["cube"]\n```python\ndef execute(score, query, n):\n    return score("Is there a cube?", 0) == "yes"\n```'
    fake_openai.script(reply(yes))
    program = generator(fake_openai, tmp_path).program_for("Is there a cube?")
    assert program.origin == "repaired" and fake_openai.request_count == 1
    assert "'yes'" not in program.source and '"yes"' not in program.source
    assert program.info["rounds"][-1]["repairs"]


def test_stays_broken_falls_back_and_is_cached(fake_openai, tmp_path):
    fake_openai.responder = lambda body: reply(BROKEN)
    gen = generator(fake_openai, tmp_path, code_gen_max_retries=2)
    program = gen.program_for("What color is the big sphere?")
    assert program.origin == "fallback"
    assert program.source == fallback_source("What color is the big sphere?", "clevr")
    check_source(program.source)
    assert fake_openai.request_count == 3  # first try + 2 repair rounds
    assert program.object_names == ["big sphere"]  # spaCy noun chunks
    assert "no valid program after 3 attempts" in program.info["error"]
    again = generator(fake_openai, tmp_path).program_for("What color is the big sphere?")
    assert again.origin == "cache" and fake_openai.request_count == 3


def test_refexp_fallback_scores_every_box():
    source = fallback_source("the dog on the left", "refexp")
    check_source(source)
    assert 'score("Is this the dog on the left?", 1)' in source


def test_second_run_makes_no_requests(fake_openai, tmp_path):
    questions = [f"How many red cubes are behind object {i}?" for i in range(5)]
    fake_openai.responder = lambda body: reply(GOOD)
    first = generator(fake_openai, tmp_path).programs_for(questions)
    assert [p.origin for p in first] == ["generated"] * 5 and fake_openai.request_count == 5
    second = generator(fake_openai, tmp_path).programs_for(questions)
    assert [p.origin for p in second] == ["cache"] * 5
    assert fake_openai.request_count == 5
    assert [p.source for p in second] == [p.source for p in first]
    assert [p.key for p in second] == [p.key for p in first]


def test_cache_key_changes_with_model_and_prompt_and_skips_sampling(fake_openai, tmp_path):
    fake_openai.responder = lambda body: reply(GOOD)
    generator(fake_openai, tmp_path).program_for("How many cubes?")
    other_model = generator(fake_openai, tmp_path, code_gen_model_name="other-model").program_for("How many cubes?")
    assert other_model.origin == "generated"
    other_task = generator(fake_openai, tmp_path).program_for("How many cubes?", task="clevr_humans")
    assert other_task.origin == "generated"
    sampled = generator(fake_openai, tmp_path, code_gen_temperature=0.7)
    sampled.program_for("How many spheres?")
    assert sampled.program_for("How many spheres?").origin == "generated"
    assert fake_openai.request_count == 5


def test_client_gives_up_with_clear_error(fake_openai):
    fake_openai.responder = lambda body: error(502)
    client = ChatClient(Endpoint("vllm", fake_openai.base_url, "k"), "m", policy=RetryPolicy(2, 0.001, 0.01))
    with pytest.raises(LLMError, match="InternalServerError 502|APIStatusError 502"):
        client.complete([{"role": "user", "content": "hi"}])
    assert fake_openai.request_count == 3


def test_400_is_not_retried_and_disconnect_is(fake_openai):
    client = ChatClient(Endpoint("vllm", fake_openai.base_url, "k"), "m", policy=RetryPolicy(3, 0.001, 0.01))
    fake_openai.script(disconnect(), reply("fine"))
    assert client.complete([{"role": "user", "content": "hi"}]) == "fine"
    fake_openai.reset()
    fake_openai.script(error(400, "bad request"), reply("never"))
    with pytest.raises(LLMError, match="400"):
        client.complete([{"role": "user", "content": "hi"}])
    assert fake_openai.request_count == 1


def test_concurrency_is_bounded(fake_openai):
    probe = InFlight(lambda body: reply("ok"))
    fake_openai.responder = probe
    client = ChatClient(Endpoint("vllm", fake_openai.base_url, "k"), "m", concurrency=2)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(lambda i: client.complete([{"role": "user", "content": str(i)}]), range(8)))
    assert out == ["ok"] * 8 and probe.peak == 2


def test_missing_key_is_one_line_error_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    config = RunConfig(dataset="clevr", program_generator="llm", code_gen_provider="openrouter")
    with pytest.raises(MissingAPIKeyError, match="OPENROUTER_API_KEY") as info:
        LLMProgramGenerator.from_config(config)
    assert "\n" not in str(info.value) and isinstance(info.value, UserError)


def test_key_from_dotenv_is_used_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DEEPSEEK_API_KEY=sk-secret-123\n")
    config = RunConfig(dataset="clevr", code_gen_provider="deepseek", code_gen_model_name="deepseek-chat")
    gen = LLMProgramGenerator.from_config(config)
    assert gen.client.endpoint.api_key == "sk-secret-123"
    assert "sk-secret" not in repr(gen.client.endpoint)
    assert gen.client.endpoint.base_url == "https://api.deepseek.com/v1"


def test_provider_table():
    env = {"OPENAI_API_KEY": "a", "OPENROUTER_API_KEY": "b"}
    assert resolve_endpoint("openrouter", env=env).base_url == "https://openrouter.ai/api/v1"
    assert resolve_endpoint("openai", env=env).api_key == "a"
    assert resolve_endpoint("vllm", "http://10.0.0.5:9000/v1/", env={}).base_url == "http://10.0.0.5:9000/v1"
    assert resolve_endpoint("my_server", "http://gpu-box:8000/v1", env={}).provider == "my_server"
    assert resolve_endpoint("openai", "http://127.0.0.1:8000/v1", env={}).api_key  # local: no key needed
    with pytest.raises(UserError, match="unknown code_gen_provider 'openruoter'"):
        resolve_endpoint("openruoter", env=env)


def test_object_names_are_normalised_singular(fake_openai, tmp_path):
    fake_openai.script(reply(GOOD.replace('["cube"]', '["Red Cubes", "glass", "red cube"]')))
    program = generator(fake_openai, tmp_path).program_for("How many red cubes are there?")
    assert program.object_names == ["red cube", "glass"]
