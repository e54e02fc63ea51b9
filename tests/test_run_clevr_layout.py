"""The symbolic CLEVR runner end to end on a tiny directory in the official CLEVR_v1.0 layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from local_datasets.synthetic.world import write_dataset
from neptune_core.config import SyntheticConfig

ROOT = Path(__file__).resolve().parent.parent


def test_symbolic_runner_on_official_layout(tmp_path):
    data = tmp_path / "CLEVR_v1.0"
    counts = write_dataset(
        data,
        SyntheticConfig(num_scenes=6, questions_per_scene=8, seed=11, image_width=160, image_height=120),
        split="val",
        progress=False,
    )
    assert (data / "questions" / "CLEVR_val_questions.json").is_file()
    assert (data / "scenes" / "CLEVR_val_scenes.json").is_file()
    assert len(list((data / "images" / "val").glob("CLEVR_val_*.png"))) == 6
    config = tmp_path / "clevr-local.json"
    config.write_text(
        json.dumps(
            {
                "dataset": "clevr",
                "data_root": str(tmp_path),
                "data_path": "CLEVR_v1.0",
                "split": "val",
                "vlm_model_name": "scene_oracle",
                "od_model": "gt",
                "semantics": {"iota": "minmax"},
                "output_dir": str(tmp_path / "exp"),
                "run_name": "local",
                "report": False,
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "runners" / "run_clevr_symbolic.py"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = tmp_path / "exp" / "local"
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    questions = json.loads((data / "questions" / "CLEVR_val_questions.json").read_text())["questions"]
    assert len(rows) == len(questions) == counts["questions"]
    assert all(r["program_origin"] == "symbolic" and r["error"] is None for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"] == 100.0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["program_generator"] == "symbolic_clevr" and saved["dataset"] == "clevr"
    assert json.loads((run_dir / "git.json").read_text())["commit"]
