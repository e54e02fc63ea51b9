"""The shared program cache: keys, .json.gz, legacy files, corruption, many writers at once."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from code_generator.cache import SCHEMA_VERSION, CacheCorruptError, ProgramCache, cache_key
from tests import fake_openai_server
from tests.fake_openai_server import reply

fake_openai = fake_openai_server.fake_openai  # the pytest fixture

REPO = Path(__file__).resolve().parent.parent
ENTRY = {"program": "def execute(score, query, n):\n    return n\n", "object_names": ["cube"], "model": "m"}


def test_key_depends_on_every_part():
    base = cache_key("q", "prompt", "m", {"temperature": 0})
    assert base == cache_key("q", "prompt", "m", {"temperature": 0})
    others = {
        cache_key("q2", "prompt", "m", {"temperature": 0}),
        cache_key("q", "prompt2", "m", {"temperature": 0}),
        cache_key("q", "prompt", "m2", {"temperature": 0}),
        cache_key("q", "prompt", "m", {"temperature": 0.5}),
    }
    assert base not in others and len(others) == 4


def test_put_get_roundtrip_and_file_layout(tmp_path):
    path = tmp_path / "sub" / "programs.json"
    cache = ProgramCache(path)
    cache.put("k1", ENTRY)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["entries"]["k1"] == ENTRY
    assert ProgramCache(path).get("k1") == ENTRY and ProgramCache(path).get("nope") is None


def test_gz_is_read_and_written(tmp_path):
    path = tmp_path / "programs.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"schema_version": 1, "entries": {"k": ENTRY}}).encode()))
    cache = ProgramCache(path)
    assert cache.get("k") == ENTRY
    cache.put("k2", ENTRY)
    assert set(json.loads(gzip.decompress(path.read_bytes()))["entries"]) == {"k", "k2"}


def test_legacy_question_table_is_read_and_kept(tmp_path):
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps({"How many cubes?": ENTRY["program"]}))
    cache = ProgramCache(path)
    assert cache.get_legacy("How many cubes?") == ENTRY["program"] and len(cache) == 0
    cache.put("k", ENTRY)
    again = ProgramCache(path)
    assert again.get("k") == ENTRY and again.get_legacy("How many cubes?") == ENTRY["program"]


@pytest.mark.parametrize(
    "content", [b"{truncated", b"[1, 2]", b'{"schema_version": 99, "entries": {}}', b"\x1f\x8bjunk"]
)
def test_corrupt_file_is_kept_aside_with_clear_error(tmp_path, content):
    path = tmp_path / "programs.json"
    path.write_bytes(content)
    with pytest.raises(CacheCorruptError, match="moved to") as info:
        ProgramCache(path)
    assert "\n" not in str(info.value)
    aside = list(tmp_path.glob("programs.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content  # nothing lost
    assert not path.exists()
    ProgramCache(path).put("k", ENTRY)  # a new cache starts fresh after the user was told
    assert aside[0].read_bytes() == content


def test_writer_merges_entries_from_another_instance(tmp_path):
    path = tmp_path / "programs.json"
    a, b = ProgramCache(path), ProgramCache(path)
    a.put("a", ENTRY)
    b.put("b", ENTRY)  # b never saw "a" in memory, but must not drop it
    assert set(json.loads(path.read_text())["entries"]) == {"a", "b"}
    assert a.get("b") == ENTRY  # a re-reads the changed file on a miss


_WORKER = """
import sys
from code_generator.llm_generator import LLMProgramGenerator
from neptune_core.config import RunConfig
base_url, cache, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = RunConfig(dataset="clevr", code_gen_provider="vllm", code_gen_base_url=base_url,
                   code_gen_model_name="fake-model", program_cache_address=cache, code_gen_concurrency=4,
                   code_gen_backoff_s=0.001, code_gen_max_backoff_s=0.01)
gen = LLMProgramGenerator.from_config(config)
questions = [f"How many cubes are left of sphere {i}?" for i in range(6)]
questions += [f"Is worker {worker} looking at cube {i}?" for i in range(6)]
programs = gen.programs_for(questions)
assert all(p.origin in ("generated", "cache") for p in programs), [p.origin for p in programs]
print(len(programs))
"""


@pytest.mark.slow
def test_four_processes_share_one_cache(fake_openai, tmp_path):
    fake_openai.responder = lambda body: reply(
        'Objects: ["cube"]\n```python\ndef execute(score, query, n):\n    return score("Is this a cube?", 1).count()\n```'
    )
    cache_path = tmp_path / "shared" / "programs.json"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, fake_openai.base_url, str(cache_path), str(w)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "12"
    data = json.loads(cache_path.read_text())
    questions = {e["question"] for e in data["entries"].values()}
    expected = {f"How many cubes are left of sphere {i}?" for i in range(6)}
    expected |= {f"Is worker {w} looking at cube {i}?" for w in range(4) for i in range(6)}
    assert questions == expected and len(data["entries"]) == 30
    assert all(e["object_names"] == ["cube"] and e["model"] == "fake-model" for e in data["entries"].values())
    assert not list(cache_path.parent.glob("*.tmp")) and not list(cache_path.parent.glob("*.corrupt-*"))
    assert 30 <= fake_openai.request_count <= 48  # shared questions may be generated by several workers at once
