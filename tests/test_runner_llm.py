"""The run loop with the LLM generator: programs of a chunk are generated concurrently,
and every result row still records its own path (generated / repaired / fallback)."""

from __future__ import annotations

from neptune_core.config import load_config
from runners.base import Runner
from tests import fake_openai_server
from tests.fake_openai_server import InFlight, reply
from tests.test_codegen_llm import make_config
from vision_agents.oracle import GroundTruthDetector, SceneOracleAgent

fake_openai = fake_openai_server.fake_openai  # the fixture

GOOD = 'Objects: ["cube"]\n```python\ndef execute(score, query, n):\n    return score("Is the object in the red box a cube?", 1).count()\n```\n'
BROKEN = "Objects: []\n```python\ndef execute(score, query, n)\n    return 1\n```\n"


def test_llm_programs_overlap_and_rows_keep_their_path(fake_openai, tmp_path):
    probe = InFlight(lambda body: reply(BROKEN if "sphere" in body["messages"][-1]["content"] else GOOD))
    fake_openai.responder = probe
    base = make_config(fake_openai, tmp_path, code_gen_concurrency=4, code_gen_max_retries=0)
    synthetic = load_config(
        None,
        {"synthetic": {"num_scenes": 3, "questions_per_scene": 4, "seed": 5, "image_width": 160, "image_height": 120}},
    )
    samples = Runner(synthetic).load_samples()
    base.dataset = "clevr_synthetic"
    runner = Runner(base, agent=SceneOracleAgent(), detector=GroundTruthDetector())
    rows = list(runner.process_all(samples))
    assert [r["id"] for r in rows] == [s.id for s in samples]
    assert probe.peak > 1  # requests overlapped
    for sample, row in zip(samples, rows, strict=True):
        expected = "fallback" if "sphere" in sample.question else "generated"
        assert row["program_origin"] == expected, (sample.question, row["program_origin"], row["error"])
        assert row["error"] is None or row["program_origin"] == "fallback"
    assert {r["program_origin"] for r in rows} == {"generated", "fallback"}
    assert fake_openai.request_count == len(samples)
