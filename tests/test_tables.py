"""analysis/tables.py: the paper's tables with a run's numbers beside the published ones, only
when the run measures the same thing; synthetic and oracle runs are listed apart, with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from analysis.tables import PAPER, TABLES, TableSpec, main, read_run

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"vlm_model_name": "intern25_8b", "od_model": "dino", "program_generator": "llm"}


def _run_dir(base: Path, name: str, config: dict, rows: list[tuple[str, bool]]) -> Path:
    d = base / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    (d / "results.jsonl").write_text(
        "".join(
            json.dumps({"id": f"{name}{i}", "family": fam, "correct": ok}) + "\n" for i, (fam, ok) in enumerate(rows)
        )
    )
    return d


def _tables(*dirs: Path, cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "tables.py"), *map(str, dirs)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_comparable_runs_go_beside_the_paper(tmp_path):
    clevr = _run_dir(
        tmp_path,
        "clevr-abc",
        {"dataset": "clevr", "split": "val", **MODELS},
        [("exist", True), ("exist", False), ("count", True), ("compare_integer", True), ("query", False)],
    )
    humans = _run_dir(
        tmp_path, "humans-1", {"dataset": "clevr_humans", "split": "val", **MODELS}, [("humans", True)] * 3
    )
    (humans / "evaluation.json").write_text(
        json.dumps(
            {"overall": {"accuracy": 87.5, "total": 8}, "per_family": {"humans": {"accuracy": 87.5, "total": 8}}}
        )
    )
    refadv = _run_dir(
        tmp_path, "refadv-1", {"dataset": "refadv", "split": "test", **MODELS}, [("person", True), ("car", False)]
    )
    rpm = _run_dir(
        tmp_path, "rpm-1", {"dataset": "clevr_rpm", **MODELS, "program_generator": "symbolic_left"}, [("rpm", True)] * 4
    )
    text = _tables(clevr, humans, refadv, rpm, cwd=tmp_path)
    for table in PAPER.values():
        assert table.title in text
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| exist |"))
    assert "| 93.19 |" in row and row.endswith("| 50.00 (n=2) |")
    assert next(line for line in lines if line.startswith("| overall |")).endswith("| 60.00 (n=5) |")
    assert next(line for line in lines if line.startswith("| compare number |")).endswith("| 100.00 (n=1) |")
    assert next(line for line in lines if line.startswith("| RPM |")).startswith("| RPM | 80 | 99 | 87 |")
    assert next(line for line in lines if line.startswith("| RPM |")).endswith("| 100.00 (n=4) |")
    assert next(line for line in lines if line.startswith("| Ref |")).endswith("| - |")
    humans_rows = text.split("Table 5")[1].split("###")[0]
    assert "| NePTune | 87.67 | - |" in humans_rows and "| 87.50 (n=8) |" in humans_rows  # from evaluation.json
    ref_rows = text.split("Table 6")[1].split("###")[0]
    assert "| NePTune (8B) | 71.57 | - |" in ref_rows and "| 50.00 (n=2) |" in ref_rows
    assert "69.90 ± 1.16" in text and "this run: clevr-abc" in text
    # each run says what it is
    assert (
        "- run clevr-abc: dataset clevr, split val, real data; perception models: VLM intern25_8b, detector dino"
        in text
    )
    assert "- run rpm-1:" in text and "programs ground-truth programs (symbolic_left)" in text
    assert "not comparable" not in text


def test_synthetic_and_oracle_runs_never_sit_beside_the_paper(tmp_path):
    synthetic = _run_dir(
        tmp_path,
        "mini-oracle",
        {"dataset": "clevr_synthetic", "split": "val", "vlm_model_name": "scene_oracle", "od_model": "gt"},
        [("exist", True)] * 3,
    )
    oracle = _run_dir(
        tmp_path,
        "clevr-oracle",
        {"dataset": "clevr", "split": "val", "vlm_model_name": "intern25_8b", "od_model": "gt"},
        [("count", True)] * 2,
    )
    test_split = _run_dir(tmp_path, "clevr-test", {"dataset": "clevr", "split": "test", **MODELS}, [("count", True)])
    text = _tables(synthetic, oracle, test_split, cwd=tmp_path)
    table3 = text.split("Table 3")[1].split("###")[0]
    assert "100.00" not in table3 and "this run |" in table3  # the paper's table holds no run
    other = text.split("### Runs not comparable with a paper table")[1]
    assert "#### mini-oracle" in other and "synthetic data, not the paper's dataset" in other
    assert "#### clevr-oracle" in other and "ground-truth boxes; the paper's numbers use model perception" in other
    assert "#### clevr-test" in other and "split test; the paper reports the val split" in other
    assert "| overall | 100.00 | 3 |" in other
    assert "run mini-oracle: dataset clevr_synthetic, split val, synthetic data" in text
    assert "perception oracle: oracle answers (scene_oracle: scene annotations), ground-truth boxes" in text


def test_help_bad_dirs_and_adding_a_table(tmp_path, capsys):
    out = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "tables.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "RUN_DIR" in out.stdout and "model perception" in " ".join(out.stdout.split())
    assert main([str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    d = _run_dir(tmp_path, "syn", {"dataset": "clevr_synthetic"}, [("compare_attribute", True), ("query", False)])
    info = read_run(d)
    assert info.overall == (50.0, 2) and info.synthetic and info.oracle  # defaults: scene_oracle and gt boxes
    # a new table is one entry: the spec decides what is comparable
    spec = TableSpec("table5", {"clevr_synthetic": "accuracy"})
    assert spec.comparable(info) == "synthetic data, not the paper's dataset"
    assert all(isinstance(t, TableSpec) and t.key in PAPER for t in TABLES)
