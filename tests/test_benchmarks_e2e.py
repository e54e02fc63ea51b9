"""VLAgent's image benchmarks end to end through run.py, offline: tiny fixtures in the official
layouts, the ``classic`` detector and VisionAgent, hand-written programs (``program_generator:
"given"`` with ``given_programs``). NLVR2 with two images per sample; the official metrics in
summary.json; the sampler's choice in selection.json; analysis/tables.py printing VLAgent's
tables with these runs beside the published numbers (and a run off the protocol apart); and every
new config resolving, and failing in one line (exit 2) when its data is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import run
from analysis import tables
from neptune_core.config import load_config
from runners.results import read_results
from tests.fixtures import benchmarks as fx

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {"vlm_model_name": "classic", "od_model": "classic", "program_generator": "given", "report": False}
NEW_CONFIGS = ["gqa", "nlvr2", "vqav2", "mme", "hc-refloco"]


def _run(tmp_path: Path, name: str, config: dict[str, Any], *extra: str) -> tuple[int, Path | None]:
    cfg = tmp_path / f"{name}.json"
    cfg.write_text(json.dumps(config))
    out = tmp_path / "out"
    code = run.main(["--config", str(cfg), "--data_root", str(tmp_path / "data"), "--output_dir", str(out), *extra])
    dirs = [d for d in out.iterdir() if d.name.startswith(f"{name}-")] if out.exists() else []
    return code, dirs[0] if dirs else None


def _rows(run_dir: Path) -> dict[str, dict[str, Any]]:
    rows, dropped = read_results(run_dir / "results.jsonl")
    assert dropped == 0
    return {r["id"]: r for r in rows}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished run per benchmark on its fixture (shared by the tests below)."""
    tmp_path = tmp_path_factory.mktemp("benchmarks")
    data = tmp_path / "data"
    fx.build_nlvr2(data)
    fx.build_gqa(data)
    fx.build_vqav2(data)
    fx.build_mme(data)
    fx.build_hc_refloco(data)
    configs = {
        "nlvr2": {
            "dataset": "nlvr2",
            "split": "balanced_test1",
            "given_programs": "nlvr2_programs.json",
            "report": True,
        },
        "gqa": {"dataset": "gqa", "split": "testdev", "sampler": {"per_type": 20, "seed": 1}},
        "vqav2": {"dataset": "vqav2", "split": "val2014", "sampler": {"per_type": 20}},
        "mme": {"dataset": "mme", "split": "test", "sampler": {"families": ["existence", "position", "color"]}},
        "hc_refloco": {"dataset": "hc_refloco", "split": "test", "sampler": {"total": 1400}},
        "gqa_first3": {"dataset": "gqa", "split": "testdev", "num_samples": 3},
    }
    runs = {}
    for name, config in configs.items():
        dataset = config["dataset"]
        if dataset != "nlvr2":
            config["given_programs"] = fx.write_given_programs(data, dataset)
        code, run_dir = _run(tmp_path, name, {**OFFLINE, **config})
        assert code == 0 and run_dir is not None, name
        runs[name] = run_dir
    return runs


def test_nlvr2_end_to_end_with_two_images_per_sample(finished: dict[str, Path]) -> None:
    run_dir = finished["nlvr2"]
    rows = _rows(run_dir)
    assert sorted(rows) == sorted(e[0] for e in fx.NLVR2_EXAMPLES[:-1])  # the example without images is left out
    for ident, row in rows.items():
        assert row["outcome"] == "ok" and row["program_origin"] == "given", (ident, row["error"])
        assert row["pred"] in ("True", "False") and row["correct"] is True, (ident, row["pred"], row["gold"])
        assert len(row["images"]) == 2 and row["images"][0]["boxes"] == row["boxes"]
        assert row["images"][0]["image"].endswith("-img0.png") and row["images"][1]["image"].endswith("-img1.png")
        assert {e.get("image") for e in row["trace"]} <= {0, 1} and all("image" in e for e in row["trace"])
    # the right image of test1-0-1-0 (night: a square and a circle) holds no triangle; its entry says so
    (entry,) = rows["test1-0-1-0"]["trace"]
    assert entry["image"] == 1 and len(entry["probs"]) == len(rows["test1-0-1-0"]["images"][1]["boxes"]) == 2
    assert max(entry["probs"]) < 0.5
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["benchmark"]["name"] == "nlvr2" and summary["benchmark"]["accuracy"] == 100.0
    assert summary["benchmark"]["consistency"] == 100.0 and summary["benchmark"]["sentences"] == 3
    page = next((run_dir / "report").glob("sample_test1-1-0-1.html")).read_text()
    assert page.count("<svg") == 2 and "image=1" in page
    assert not (run_dir / "selection.json").exists()  # no sampler: the whole balanced test set


def test_official_metrics_of_the_other_benchmarks(finished: dict[str, Path]) -> None:
    summaries = {k: json.loads((d / "summary.json").read_text()) for k, d in finished.items()}
    gqa = summaries["gqa"]["benchmark"]
    assert gqa["name"] == "gqa" and gqa["accuracy"] == 100.0 and gqa["n"] == 7
    vqa = summaries["vqav2"]["benchmark"]
    # 1001, 1002, 1003: at least 4 humans agree (1.0); 1004 "square": 3 of 10 (0.9)
    assert vqa["accuracy"] == 97.5 and summaries["vqav2"]["accuracy"] == 100.0  # correct = at least 3 humans
    assert _rows(finished["vqav2"])["1004"]["metric"] == {
        "benchmark": "vqav2", "vqa_accuracy": 0.9, "question_type": "what shape is the"
    }  # fmt: skip
    mme = summaries["mme"]["benchmark"]
    assert (mme["accuracy"], mme["acc_plus"], mme["score"], mme["n"]) == (100.0, 100.0, 600.0, 8)
    assert set(mme["per_subset"]) == {"existence", "position", "color"}  # artwork left out by the sampler
    hc = summaries["hc_refloco"]["benchmark"]
    ious = [r["metric"]["iou"] for r in _rows(finished["hc_refloco"]).values()]
    assert all(v > 0.75 for v in ious) and hc["acc@0.5"] == 100.0
    assert hc["mAcc"] == pytest.approx(100 * sum(sum(v > t for v in ious) for t in fx_thresholds()) / 40, abs=0.01)


def fx_thresholds() -> list[float]:
    return [0.5 + 0.05 * k for k in range(10)]


def test_the_sampler_choice_is_saved_and_replays(finished: dict[str, Path], tmp_path: Path) -> None:
    selection = json.loads((finished["gqa"] / "selection.json").read_text())
    assert selection["sampler"]["per_type"] == 20 and selection["sampler"]["seed"] == 1
    assert selection["ids"] == list(fx.GQA_QUESTIONS) and selection["available"] == 7
    hc = json.loads((finished["hc_refloco"] / "selection.json").read_text())
    assert hc["selected"] == 4 and hc["sampler"]["total"] == 1400


def test_tables_print_vlagent_tables_with_the_runs_beside_the_published_numbers(
    finished: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tables.main([str(d) for d in finished.values()]) == 0
    out = capsys.readouterr().out
    assert "### VLAgent Table 1: image QA (accuracy %, VLAgent paper)" in out
    assert "| VLAgent (ZS) | 74.1 | 61.9 | 76.9 | 88.4 |" in out
    table1 = out.split("### VLAgent Table 1", 1)[1].split("###", 1)[0]
    ours = next(line for line in table1.splitlines() if line.startswith("| **NePTune, this run"))
    nlvr2, gqa, vqa, mme = [c.strip() for c in ours.split("|")[2:6]]
    assert nlvr2 == "100.0 (n=5, whole split)" and gqa == "100.0 (n=7, VLAgent's sample)"
    assert vqa == "97.5 (n=4, VLAgent's sample)" and mme == "100.0 (n=8, existence, position, color)"
    assert "### VLAgent Table 3: HC-RefLoCo (%, IoU > t, VLAgent paper)" in out
    assert "| VLAgent | 82.6 | 77.4 | 63.2 | 73.9 |" in out
    table3 = out.split("### VLAgent Table 3", 1)[1].split("###", 1)[0]
    ours = next(line for line in table3.splitlines() if line.startswith("| **NePTune, this run"))
    hc = json.loads((finished["hc_refloco"] / "summary.json").read_text())["benchmark"]
    expected = [f"{hc[k]:.1f} (n=4, VLAgent's sample)" for k in ("acc@0.5", "acc@0.75", "acc@0.9", "mAcc")]
    assert [c.strip() for c in ours.split("|")[2:6]] == expected
    assert "acc+ 100.0, score 200.0" in out  # MME's per-subset numbers are listed under the table
    # a run cut to its first samples measures something else: listed apart, with the reason
    apart = out.split("### Runs not comparable with a paper table", 1)[1]
    assert f"#### {finished['gqa_first3'].name}" in apart
    assert "only the first 3 samples (num_samples), not the protocol's sample" in apart


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_every_new_config_resolves_and_missing_data_is_one_line_exit_2(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(ROOT / "configs" / f"{name}.json")
    assert config.dataset in ("gqa", "nlvr2", "vqav2", "mme", "hc_refloco")
    assert config.program_cache_address == f"programs/{name}.json"
    monkeypatch.setenv("OPENROUTER_API_KEY", "test-key-not-used")  # the LLM is not reached: the data fails first
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = run.main(
        ["--config", str(ROOT / "configs" / f"{name}.json"), "--data_root", str(tmp_path / "no_data"),
         "--output_dir", str(tmp_path / "out")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "data not found" in lines[0], err
    assert str(tmp_path / "no_data") in lines[0]
    assert not (tmp_path / "out").exists()


def test_evaluate_reports_the_official_metric_beside_the_judged_accuracy(
    finished: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)  # no judge: exact match only
    base = finished["vqav2"].parent.parent
    argv = ["--config", str(base / "vqav2.json"), "--data_root", str(base / "data"), "--output_dir", str(base / "out")]
    assert run.main([*argv, "--evaluate"]) == 0
    report = json.loads((finished["vqav2"] / "evaluation.json").read_text())
    assert report["benchmark"]["name"] == "vqav2" and report["benchmark"]["accuracy"] == 97.5
    capsys.readouterr()
