"""Ensembles: flip/jitter noise members, score/query fusion, weighted boxes fusion, the
config section, member outputs in the trace, and the demo (three 20 %-noise members)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from neptune_core.config import load_config
from neptune_core.errors import ConfigError
from neptune_core.executor import Executor
from neptune_core.types import Detection, Sample
from probabilistic_tensor import Semantics
from runners import RUNNERS
from runners.results import read_results
from runners.verifiers import VerifyStage
from vision_agents import build_detector, build_vision_agent
from vision_agents.base import Detector, VisionAgent
from vision_agents.ensemble import EnsembleAgent, FlipNoiseAgent, vote
from vision_agents.ensemble_detector import EnsembleDetector, JitterDetector, fuse_boxes

IMAGE = Image.new("RGB", (100, 80))
BOXES = [[float(10 * i), 10.0, float(10 * i + 8), 30.0] for i in range(8)]


class ConstAgent(VisionAgent):
    """p(yes) = ``p`` everywhere; answers ``word``."""

    def __init__(self, p: float, word: str = "red") -> None:
        self.p, self.word = p, word

    def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
        shape = (len(questions), *([len(boxes)] * arity))
        return torch.full(shape, self.p)

    def answer(self, image, box, question):  # type: ignore[no-untyped-def]
        return self.word


def _sample(i: int = 0) -> Sample:
    return Sample(id=f"s{i}", question="q", image=IMAGE)


# ---- flip noise -------------------------------------------------------------------------
def test_flip_noise_rate_determinism_and_independence() -> None:
    images = [Image.new("RGB", (100, 80), (i, 0, 0)) for i in range(40)]

    def mask(seed: int, rate: float) -> torch.Tensor:
        agent = FlipNoiseAgent(ConstAgent(1.0), rate, seed)
        out = []
        for i, image in enumerate(images):
            agent.begin_sample(Sample(id=f"s{i}", question="q", image=image))
            out.append(agent.score(image, BOXES, ["Is it red?", "Is it a cube?"], 2).reshape(-1) < 0.5)
        return torch.cat(out)

    a, a2, b = mask(1, 0.2), mask(1, 0.2), mask(2, 0.2)
    assert torch.equal(a, a2)  # reproducible
    n = a.numel()  # 40 images x 2 questions x 64 pairs
    assert abs(a.float().mean().item() - 0.2) < 0.02 and abs(b.float().mean().item() - 0.2) < 0.02
    assert abs((a & b).float().mean().item() - 0.04) < 0.01  # independent members: 0.2 * 0.2
    assert not mask(1, 0.0).any() and mask(1, 1.0).all() and n == 5120


def test_flip_noise_is_a_function_of_the_image_like_a_model() -> None:
    """Two questions about one image see the same errors (the per-image memo and the tuple path rely on it)."""
    agent = FlipNoiseAgent(ConstAgent(1.0), 0.3, 7)
    seen = []
    for i in range(2):
        agent.begin_sample(Sample(id=f"q{i}", question="q", image=IMAGE))
        seen.append(agent.score(IMAGE, BOXES, ["Is it red?"], 2))
    assert torch.equal(seen[0], seen[1]) and 0 < int((seen[0] < 0.5).sum()) < 64
    pairs = [(BOXES[i], BOXES[j]) for i in range(8) for j in range(8)]
    tuples, _ = agent.score_tuples_with_info(IMAGE, pairs, ["Is it red?"], 2)
    assert torch.equal(tuples.reshape(8, 8), seen[0][0])  # pair by pair = the full grid


def test_flip_noise_on_answers_picks_another_value_of_the_attribute() -> None:
    agent = FlipNoiseAgent(ConstAgent(1.0, word="red"), 1.0, 0)
    agent.begin_sample(_sample())
    ans, info = agent.answer_with_info(IMAGE, BOXES[0], "What color is the object in the red box?")
    assert ans != "red" and ans in ("gray", "blue", "green", "brown", "purple", "cyan", "yellow")
    assert info == {"flipped": 1, "unflipped": "red"}
    ans, info = agent.answer_with_info(IMAGE, BOXES[0], "Where is it?")
    assert ans == "red" and "unchanged" in info["noise"]  # says so instead of inventing an answer


# ---- fusion -----------------------------------------------------------------------------------
def test_score_fusion_mean_and_weighted_mean_with_members_in_info() -> None:
    members = [("a", ConstAgent(1.0), 1.0), ("b", ConstAgent(0.0), 3.0)]
    mean = EnsembleAgent(members, score_fusion="mean")
    out, infos = mean.score_with_info(IMAGE, BOXES[:2], ["Is it red?"], 1)
    assert out.tolist() == [[0.5, 0.5]]
    assert infos[0]["fusion"] == "mean" and infos[0]["members"] == {"a": [1.0, 1.0], "b": [0.0, 0.0]}
    assert set(infos[0]["member_ms"]) == {"a", "b"}
    weighted = EnsembleAgent(members, score_fusion="weighted_mean")
    assert weighted.score(IMAGE, BOXES[:2], ["Is it red?"], 0).tolist() == [0.25]


def test_vote_majority_weights_and_ties() -> None:
    w = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert vote({"a": "Red", "b": "blue", "c": "red"}, w) == ("red", {"red": 2.0, "blue": 1.0})
    assert vote({"a": "cube", "b": "sphere", "c": "cylinder"}, w)[0] == "cube"  # tie: earliest member
    assert vote({"a": "cube", "b": "sphere", "c": "cylinder"}, {"a": 1.0, "b": 2.5, "c": 1.0})[0] == "sphere"
    ens = EnsembleAgent(
        [("a", ConstAgent(1, "red"), 1), ("b", ConstAgent(1, "blue"), 1), ("c", ConstAgent(1, "blue"), 1)]
    )
    ans, info = ens.answer_with_info(IMAGE, BOXES[0], "What color?")
    assert ans == "blue" and info["members"] == {"a": "red", "b": "blue", "c": "blue"}


def test_member_outputs_land_on_the_trace() -> None:
    ens = EnsembleAgent([("a", ConstAgent(0.9), 1.0), ("b", ConstAgent(0.3), 1.0)])
    src = 'def execute(score, query, n):\n    return score("Is it red?", 1).exists()\n'
    outcome = Executor(load_config(None).executor, Semantics()).run(src, ens, IMAGE, BOXES[:3])
    assert outcome.error is None and outcome.value.item() == pytest.approx(0.6)
    (entry,) = outcome.trace
    assert entry["info"]["members"] == {"a": [0.9] * 3, "b": [0.3] * 3}


# ---- detectors ----------------------------------------------------------------------------------
class FixedDetector(Detector):
    def __init__(self, boxes: list[list[float]], scores: list[float] | None = None, label: str = "object") -> None:
        self.boxes, self.scores, self.label = boxes, scores or [1.0] * len(boxes), label

    def detect(self, image, object_names):  # type: ignore[no-untyped-def]
        return Detection(list(map(list, self.boxes)), list(self.scores), [self.label] * len(self.boxes))


def test_weighted_boxes_fusion_per_label() -> None:
    a = Detection([[10, 10, 30, 30], [60, 40, 90, 70]], [0.9, 0.8], ["cube", "cube"])
    b = Detection([[14, 10, 34, 30]], [0.9], ["cube"])
    c = Detection([[12, 10, 32, 30]], [0.6], ["ball"])
    fused = fuse_boxes([a, b, c], [1.0, 1.0, 1.0], (100, 80), iou=0.55, skip_score=0.0)
    cubes = [bx for bx, lab in zip(fused.boxes, fused.labels, strict=True) if lab == "cube"]
    assert len(fused.boxes) == 3 and fused.labels.count("ball") == 1  # labels are not fused together
    assert [12.0, 10.0, 32.0, 30.0] in cubes  # the two overlapping cubes averaged (equal scores)
    assert [60.0, 40.0, 90.0, 70.0] in cubes
    assert fused.scores == sorted(fused.scores, reverse=True)
    assert fuse_boxes([Detection([], [], [])], [1.0], (100, 80), iou=0.5, skip_score=0.0).boxes == []


def test_jitter_detector_is_reproducible_and_drops() -> None:
    inner = FixedDetector(BOXES)
    j1, j2 = (JitterDetector(inner, jitter=0.1, drop_rate=0.0, seed=5) for _ in range(2))
    for j in (j1, j2):
        j.begin_sample(_sample())
    d1, d2 = j1.detect(IMAGE, []), j2.detect(IMAGE, [])
    assert d1.boxes == d2.boxes and d1.boxes != BOXES and len(d1.boxes) == len(BOXES)
    dropper = JitterDetector(inner, jitter=0.0, drop_rate=1.0, seed=5)
    dropper.begin_sample(_sample())
    assert dropper.detect(IMAGE, []).boxes == []


def test_ensemble_detector_records_members() -> None:
    det = EnsembleDetector(
        [("x", FixedDetector([[10, 10, 30, 30]]), 1.0), ("y", FixedDetector([[12, 10, 32, 30]]), 1.0)]
    )
    out = det.detect(IMAGE, ["cube"])
    assert out.boxes == [[11.0, 10.0, 31.0, 30.0]]
    assert out.info["fusion"] == "wbf" and set(out.info["members"]) == {"x", "y"}
    assert out.info["members"]["y"]["boxes"] == [[12.0, 10.0, 32.0, 30.0]]


# ---- config -------------------------------------------------------------------------------------
def _members(*specs: dict) -> dict:
    return {"ensemble": {"vlm_members": list(specs)}}


def test_config_builds_members_and_rejects_bad_ones() -> None:
    cfg = load_config(
        None,
        {
            "vlm_model_name": "ensemble",
            "od_model": "ensemble",
            "ensemble": {
                "vlm_members": [
                    {"name": "a", "model": "scene_oracle", "flip_rate": 0.2, "seed": 1},
                    {"name": "b", "model": "classic"},
                ],
                "detector_members": [{"name": "d", "model": "gt", "jitter": 0.05, "seed": 2}],
            },
        },
    )
    agent = build_vision_agent(cfg)
    assert isinstance(agent, EnsembleAgent) and list(agent.members) == ["a", "b"]
    assert isinstance(agent.members["a"].inner, FlipNoiseAgent) and agent.members["a"].inner.rate == 0.2
    det = build_detector(cfg)
    assert isinstance(det, EnsembleDetector) and isinstance(det.members["d"], JitterDetector)

    with pytest.raises(ConfigError, match="did you mean 'ensemble.vlm_members.flip_rate'"):
        load_config(None, _members({"name": "a", "model": "scene_oracle", "flip": 0.2}))
    with pytest.raises(ConfigError, match="use 'weighted_mean'"):
        load_config(None, _members({"name": "a", "model": "x", "weight": 1}, {"name": "b", "model": "x", "weight": 2}))
    with pytest.raises(ConfigError, match="unique"):
        load_config(None, _members({"name": "a", "model": "x"}, {"name": "a", "model": "y"}))
    with pytest.raises(ConfigError, match="flip_rate must be in"):
        load_config(None, _members({"name": "a", "model": "x", "flip_rate": 2}))
    with pytest.raises(ConfigError, match="needs members"):
        build_vision_agent(load_config(None, {"vlm_model_name": "ensemble"}))
    nested = load_config(None, {"vlm_model_name": "ensemble", **_members({"name": "a", "model": "ensemble"})})
    with pytest.raises(ConfigError, match="itself an ensemble"):
        build_vision_agent(nested)
    jitter_vlm = load_config(
        None, {"vlm_model_name": "ensemble", **_members({"name": "a", "model": "classic", "jitter": 1})}
    )
    with pytest.raises(ConfigError, match="detector members only"):
        build_vision_agent(jitter_vlm)
    with pytest.raises(ConfigError, match="member_accuracy needs"):
        VerifyStage.from_config(load_config(None, {"ensemble": {"member_accuracy": True}}))


def test_unused_sections_keep_config_hashes() -> None:
    plain = load_config("configs/demo.json")
    # sections left at their defaults do not enter the hash (runs from before them keep their directory)
    assert load_config("configs/demo.json", {"ensemble.score_fusion": "mean"}).config_hash() == plain.config_hash()
    with_verify = load_config("configs/demo.json", {"verify.box.max_candidates": "2"})
    assert with_verify.config_hash() != plain.config_hash()
    # so do training's settings (issue 15: train, vlm_adapter, classic_params), which count once set
    for changed in ({"train.enabled": "true"}, {"classic_params": "weak"}, {"vlm_adapter": "x.json"}):
        assert load_config("configs/demo.json", changed).config_hash() != plain.config_hash()


# ---- the demo: three members with independent 20 % noise ------------------------------------------
def _run(config_path: str, tmp_path: Path, **overrides: str) -> tuple[dict, list[dict]]:
    cfg = load_config(config_path, {"output_dir": str(tmp_path), "report": "false", **overrides})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    summary = RUNNERS.get(cfg.dataset)(cfg).run(run_dir)
    rows, dropped = read_results(run_dir / "results.jsonl")
    assert dropped == 0
    return summary, rows


def test_small_ensemble_run_records_members(tmp_path: Path) -> None:
    summary, rows = _run("configs/demo-ensemble.json", tmp_path, num_samples="20")
    assert summary["total"] == 20 and summary["errors"]["total"] == 0
    assert set(summary["member_accuracy"]) == {"oracle_a", "oracle_b", "oracle_c"}
    for row in rows:
        assert set(row["members"]) == {"oracle_a", "oracle_b", "oracle_c"}
        scores = [t for t in row["trace"] if t["primitive"] == "score"]
        assert scores and all(set(t["info"]["members"]) == set(row["members"]) for t in scores)
    # each member's accuracy is the mean of its own rows
    for name, acc in summary["member_accuracy"].items():
        assert acc == pytest.approx(100.0 * sum(r["members"][name]["correct"] for r in rows) / len(rows))


@pytest.mark.slow
def test_demo_ensemble_beats_every_member(tmp_path: Path) -> None:
    summary, rows = _run("configs/demo-ensemble.json", tmp_path)
    assert summary["total"] >= 500 and summary["errors"]["total"] == 0
    members = summary["member_accuracy"]
    assert len(members) == 3 and all(summary["accuracy"] > acc for acc in members.values()), (
        summary["accuracy"],
        members,
    )
