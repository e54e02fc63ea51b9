"""Ensemble pruning (VLAgent Algorithm 2): agreement scores from recorded member outputs,
K-means with silhouette-chosen K, and the command on a pool of six noisy members."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.ensemble_pruning import agreement_scores, prune, union_area_iou
from neptune_core.config import load_config
from runners.prune_ensemble import main


def test_union_area_iou() -> None:
    assert union_area_iou([[0, 0, 10, 10]], [[0, 0, 10, 10]]) == 1.0
    assert union_area_iou([[0, 0, 10, 10]], [[0, 0, 5, 10]]) == pytest.approx(0.5)
    # the union of two halves equals the whole box
    assert union_area_iou([[0, 0, 5, 10], [5, 0, 10, 10]], [[0, 0, 10, 10]]) == 1.0
    assert union_area_iou([[0, 0, 10, 10]], [[20, 20, 30, 30]]) == 0.0
    assert union_area_iou([], [[0, 0, 1, 1]]) == 0.0 and union_area_iou([], []) == 1.0


def test_agreement_scores_from_rows() -> None:
    rows = [
        {
            "trace": [
                # fused [0.67, 0.33, 0.5]: the tie (0.5) has no pseudo-label and is left out
                {
                    "primitive": "score",
                    "probs": [0.67, 0.33, 0.5],
                    "info": {"members": {"a": [1, 0, 1], "b": [1, 1, 0]}},
                },
                {"primitive": "query", "answer": "red", "info": {"members": {"a": "red", "b": "dark blue"}}},
                {"primitive": "score", "probs": [0.9]},  # no members recorded: not an ensemble call
            ],
            "boxes": [[0, 0, 10, 10]],
            "detection": {"members": {"d1": {"boxes": [[0, 0, 10, 10]]}, "d2": {"boxes": [[0, 0, 5, 10]]}}},
        }
    ]
    scores = agreement_scores(rows)
    assert scores["vlm"]["a"] == {"score": 1.0, "calls": 2}
    assert scores["vlm"]["b"] == {"score": 0.25, "calls": 2}  # (1/2 + 0) / 2
    assert scores["detector"]["d1"]["score"] == 1.0 and scores["detector"]["d2"]["score"] == pytest.approx(0.5)


def test_prune_picks_the_best_cluster_and_records_silhouettes() -> None:
    scores = {"a": 0.96, "b": 0.95, "c": 0.92, "d": 0.74, "e": 0.64, "f": 0.59}
    chosen, rounds = prune(scores, 3)
    assert sorted(chosen) == ["a", "b", "c"] and len(rounds) == 1
    r = rounds[0]
    assert r.k == 2 and set(r.silhouettes) == {2, 3, 4, 5} and max(r.silhouettes.values()) == r.silhouettes[2]
    # asking for more members adds the next-best cluster in a second round
    chosen, rounds = prune(scores, 4)
    assert chosen[:3] == ["a", "b", "c"] and "d" in chosen and len(rounds) == 2
    # two members left: each is its own cluster, the best is added
    chosen, rounds = prune({"x": 0.5, "y": 0.9}, 1)
    assert chosen == ["y"] and rounds[0].silhouettes == {}


@pytest.mark.slow
def test_prune_command_on_a_mixed_noise_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "chosen.json"
    rc = main(
        ["--config", "configs/prune-pool.json", "--select", "3", "--out", str(out), "--output_dir", str(tmp_path)]
        + ["--synthetic.num_scenes", "8"]
    )
    assert rc == 0
    result = json.loads(out.read_text())
    record = result["_pruning"]["vlm"]
    assert sorted(record["chosen"]) == ["noise05_a", "noise05_b", "noise10"]
    assert record["rounds"][0]["k"] == 2
    scores = {n: s["score"] for n, s in record["scores"].items()}
    assert min(scores[n] for n in record["chosen"]) > max(s for n, s in scores.items() if n not in record["chosen"])
    # the fragment is a valid config section: members with their noise settings
    cfg = load_config(None, {"vlm_model_name": "ensemble", "ensemble": result["ensemble"]})
    assert sorted(m.flip_rate for m in cfg.ensemble.vlm_members) == [0.05, 0.05, 0.1]
    printed = capsys.readouterr().out
    assert "silhouette K=2" in printed and "K* = 2" in printed
