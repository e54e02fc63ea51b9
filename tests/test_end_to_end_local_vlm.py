"""A user's own VLM from a local directory, through run.py, end to end.

A tiny random LLaVA is saved with save_pretrained and named by path in --vlm_model_name,
so the production loading path (AutoProcessor / AutoModelForImageTextToText.from_pretrained)
runs: real marked-box scoring, symbolic programs, results with traces. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os

import pytest

import run
from tests.test_vlm_tiny_models import tiny_llava


@pytest.mark.slow
def test_run_with_a_saved_tiny_vlm(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, processor = tiny_llava()
    model_dir = tmp_path / "my-tiny-llava"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    assert os.path.isdir(model_dir)

    config = tmp_path / "local-vlm.json"
    config.write_text(json.dumps({
        "dataset": "clevr_synthetic",
        "synthetic": {"num_scenes": 2, "questions_per_scene": 3, "seed": 2, "image_width": 96, "image_height": 64},
        "vlm_model_name": str(model_dir),
        "device": "cpu",
        "od_model": "gt",
        "program_generator": "symbolic_clevr",
        "semantics": {"iota": "minmax"},
        "report": False,
    }))  # fmt: skip
    out = tmp_path / "exp"
    assert run.main(["--config", str(config), "--output_dir", str(out), "--run_name", "local"]) == 0
    rows = [json.loads(line) for line in (out / "local" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    scored = [t for r in rows for t in r["trace"] if t["primitive"] == "score"]
    assert scored, [r["error"] for r in rows]
    for entry in scored:
        flat = entry["probs"] if entry["arity"] == 1 else [p for row in entry["probs"] for p in row]
        flat = [p for p in flat if p is not None]  # None: a pair the lazy relation never evaluated
        assert flat and all(0.0 <= p <= 1.0 for p in flat)
    # a random model answers at random, but every sample ran through it without an error
    assert all(r["error"] is None and r["pred"] is not None for r in rows), [r["error"] for r in rows]
    assert {t["arity"] for t in scored} >= {1, 2}
    queried = [t for r in rows for t in r["trace"] if t["primitive"] == "query"]
    assert queried and all(isinstance(t["answer"], str) for t in queried)
    assert json.loads((out / "local" / "summary.json").read_text())["num_samples"] == 6
