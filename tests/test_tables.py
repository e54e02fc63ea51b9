"""analysis/tables.py: the paper's tables with this run's numbers beside the published ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from analysis.tables import PAPER, main, run_numbers

ROOT = Path(__file__).resolve().parent.parent


def _run_dir(base: Path, name: str, dataset: str, rows: list[tuple[str, bool]]) -> Path:
    d = base / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"dataset": dataset}))
    (d / "results.jsonl").write_text(
        "".join(
            json.dumps({"id": f"{name}{i}", "family": fam, "correct": ok}) + "\n" for i, (fam, ok) in enumerate(rows)
        )
    )
    return d


def test_tables_script_prints_paper_and_run_columns(tmp_path):
    clevr = _run_dir(
        tmp_path,
        "clevr-abc",
        "clevr",
        [("exist", True), ("exist", False), ("count", True), ("compare_integer", True), ("query", False)],
    )
    humans = _run_dir(tmp_path, "humans-1", "clevr_humans", [("humans", True)] * 3 + [("humans", False)])
    (humans / "evaluation.json").write_text(
        json.dumps(
            {"overall": {"accuracy": 87.5, "total": 8}, "per_family": {"humans": {"accuracy": 87.5, "total": 8}}}
        )
    )
    refadv = _run_dir(tmp_path, "refadv-1", "refadv", [("person", True), ("car", False)])
    rpm = _run_dir(tmp_path, "rpm-1", "clevr_rpm", [("rpm", True)] * 4)
    out = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "tables.py"), str(clevr), str(humans), str(refadv), str(rpm)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
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


def test_run_numbers_maps_clevr_families_and_bad_dirs(tmp_path, capsys):
    d = _run_dir(tmp_path, "syn", "clevr_synthetic", [("compare_attribute", True), ("compare_attribute", False)])
    assert run_numbers(d).cells == {"overall": (50.0, 2), "compare attr.": (50.0, 2)}
    assert main([str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
