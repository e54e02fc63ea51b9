"""The verifier/ensemble ablation table (VLAgent Table 4 layout): rows placed by each run's
config, columns by planner, the paper's GQA numbers beside, deltas to the naive row."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.tables import ABLATION_ROWS, ablation_row, main


def _run(root: Path, name: str, config: dict, correct: list[bool]) -> Path:
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(
        json.dumps({"dataset": "clevr_synthetic", "program_generator": "llm", "code_gen_model_name": "m1", **config})
    )
    rows = [{"id": str(i), "correct": c, "family": "exist"} for i, c in enumerate(correct)]
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


ENSEMBLE = {"vlm_model_name": "ensemble", "ensemble": {"vlm_members": [{"name": "a"}, {"name": "b"}]}}
CAPTION = {"verify": {"verifiers": ["caption"]}}


def test_rows_follow_the_config() -> None:
    assert ablation_row({}) == ABLATION_ROWS[0]
    assert ablation_row(CAPTION) == ABLATION_ROWS[1]
    assert ablation_row({**ENSEMBLE, **CAPTION}) == ABLATION_ROWS[2]
    assert ablation_row(ENSEMBLE) == ABLATION_ROWS[3]
    one_member = {"vlm_model_name": "ensemble", "ensemble": {"vlm_members": [{"name": "a"}]}}
    assert ablation_row(one_member) == ABLATION_ROWS[0]  # a single noisy member is no ensemble


def test_ablation_table(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    runs = [
        _run(tmp_path, "naive", {}, [True, False, False, False]),
        _run(tmp_path, "cap", CAPTION, [True, True, False, False]),
        _run(tmp_path, "full", {**ENSEMBLE, **CAPTION}, [True, True, True, False]),
        _run(tmp_path, "other", {"code_gen_model_name": "m2"}, [True, True]),
    ]
    assert main(["--ablation", *map(str, runs)]) == 0
    out = capsys.readouterr().out
    lines = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert "paper GQA: GPT 3.5" in lines["method"] and "this run: clevr_synthetic: m1" in lines["method"]
    assert lines["naive"].endswith("| 25.00 (n=4) | 100.00 (n=2) |")
    assert "58.9 (+4.5)" in lines[ABLATION_ROWS[1]] and "50.00 (+25.0) (n=4)" in lines[ABLATION_ROWS[1]]
    assert "61.9 (+7.5)" in lines[ABLATION_ROWS[2]] and "75.00 (+50.0) (n=4)" in lines[ABLATION_ROWS[2]]
    assert main(["--ablation", str(tmp_path / "missing")]) == 2
