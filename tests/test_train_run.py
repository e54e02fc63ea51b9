"""A training run through run.py end to end (tiny settings), and what it leaves: summary fields,
the loss curve, the report's training card, the tuned weights loading back, the tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import run
from analysis.tables import format_training_tables
from analysis.tables import main as tables_main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # the run sets train.torch_threads for the process


def test_demo_tune_tiny_end_to_end(tmp_path, capsys):
    args = [
        "--config",
        str(ROOT / "configs" / "demo-tune.json"),
        "--synthetic.num_scenes",
        "1",
        "--train.num_scenes",
        "3",
        "--train.epochs",
        "2",
        "--output_dir",
        str(tmp_path),
        "--run_name",
        "tune",
    ]
    assert run.main(args) == 0
    out = capsys.readouterr().out
    assert "fine-tuned through programs: accuracy" in out
    d = tmp_path / "tune"
    summary = json.loads((d / "summary.json").read_text())
    assert 0 <= summary["accuracy_before"] <= 100 and summary["accuracy_after"] == summary["accuracy"]
    before = json.loads((d / "before" / "summary.json").read_text())
    assert before["accuracy"] == summary["accuracy_before"] and before["num_samples"] == summary["num_samples"] == 10
    t = summary["training"]
    assert t["train_samples"] == 30 and t["epochs"] == 2 and t["train_seconds"] > 0 and t["final_loss"] > 0
    assert t["skipped"].keys() <= {"not_differentiable"} and t["loss_kinds"]["yes_no"] > 0
    png = d / "training_loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (d / "report" / "index.html").read_text()
    assert "Fine-tuning through programs" in index and "data:image/png;base64," in index

    # the trained heads load back by path and reproduce the fine-tuned run's answers
    again = [*args[:-1], "evalonly", "--train.enabled", "false", "--vlm_adapter", t["vlm_adapter"], "--report", "false"]
    assert run.main(again) == 0
    rows = [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines()]
    rows2 = [json.loads(x) for x in (tmp_path / "evalonly" / "results.jsonl").read_text().splitlines()]
    assert [r["pred"] for r in rows] == [r["pred"] for r in rows2]

    assert tables_main([str(d)]) == 0
    text = capsys.readouterr().out
    assert "Fine-tuning through programs" in text and "| tune | clevr_synthetic |" in text


def _fake_run(base: Path, dataset: str, before: list[bool], after: list[bool]) -> Path:
    d = base / f"{dataset}-tuned"
    (d / "before").mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"dataset": dataset}))
    for where, marks in ((d, after), (d / "before", before)):
        lines = [json.dumps({"id": f"r{i}", "family": "all", "correct": ok}) for i, ok in enumerate(marks)]
        (where / "results.jsonl").write_text("\n".join(lines) + "\n")
    (d / "training.json").write_text(json.dumps({"train_samples": 1000, "epochs": 2, "train_seconds": 12.5}))
    return d


def test_tables_put_training_runs_beside_the_fine_tuning_rows(tmp_path):
    gta = _fake_run(tmp_path, "refgta", [True, False, False, False], [True, True, True, False])
    adv = _fake_run(tmp_path, "refadv", [True, False], [True, True])
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"dataset": "refgta"}))
    text = format_training_tables([gta, adv, plain])
    lines = text.splitlines()
    assert "| refgta-tuned | refgta | NePTune (1B) | 34.92 | 25.00 (n=4) |" in lines
    assert any(
        line.startswith("| | | NePTune (1B) fine-tuned through programs (1,000 samples) | 69.90 ± 1.16 | 75.00 (n=4)")
        for line in lines
    )
    assert "| refadv-tuned | refadv | NePTune (1B) | 60.69 | 50.00 (n=2) |" in lines
    assert any("| 68.06 | 100.00 (n=2)" in line for line in lines)
    assert "plain" not in text
    assert format_training_tables([plain]) == ""


def test_training_where_no_sample_gives_a_loss_fails_in_one_line(tmp_path, capsys):
    args = [
        "--config",
        str(ROOT / "configs" / "demo-tune.json"),
        "--synthetic.num_scenes",
        "1",
        "--train.num_scenes",
        "1",
        "--train.evaluate_before",
        "false",
        "--executor.max_operations",
        "3",  # every program runs out of operations
        "--report",
        "false",
        "--output_dir",
        str(tmp_path),
    ]
    assert run.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no training sample gave a loss") and "OperationLimitError" in err
    assert "\n" not in err
