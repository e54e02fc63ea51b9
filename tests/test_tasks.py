"""End-to-end tests of the paper's task formats on tiny directories in each official
layout: LEFT's CLEVR-Transfer (refexps / puzzles / RPM), REFER (Ref-Adv, Ref-GTA) and
generic JSONL, through Runner.run and run.py's main, checking result rows and accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from code_generator.left_translator import SymbolicLeftGenerator
from local_datasets import load_samples
from neptune_core.config import RunConfig, load_config
from neptune_core.types import Detection, Program, Sample
from runners import RUNNERS
from runners.results import read_results
from tests.fixtures.task_layouts import (
    REFER_ANNS,
    build_clevr_transfer,
    build_jsonl,
    build_refer,
    expected_boxes,
    reference_eval,
)
from vision_agents.base import Detector, VisionAgent
from vision_agents.oracle import GroundTruthDetector, SceneOracleAgent


def _config(tmp_path: Path, **kw: Any) -> RunConfig:
    data = {"data_root": str(tmp_path / "data"), "output_dir": str(tmp_path / "exp"), "semantics": {"iota": "minmax"}}
    data.update(kw)
    return load_config(None, data)


def _rows(run_dir: Path) -> dict[str, dict]:
    rows, dropped = read_results(run_dir / "results.jsonl")
    assert dropped == 0
    return {r["id"]: r for r in rows}


class MirrorOracle(SceneOracleAgent):
    """The scene oracle with left and right swapped: a perception model with a systematic error."""

    def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
        swap = {"left of": "right of", "right of": "left of"}
        qs = []
        for q in questions:
            for a, b in swap.items():
                if a in q:
                    q = q.replace(a, b)
                    break
            qs.append(q)
        return super().score(image, boxes, qs, arity)


# ---- CLEVR-Transfer (LEFT layout) ---------------------------------------------------------
@pytest.fixture()
def transfer(tmp_path: Path) -> dict[str, Any]:
    return build_clevr_transfer(tmp_path / "data")


@pytest.mark.parametrize(
    ("dataset", "key"), [("clevr_refexps", "refexps"), ("clevr_puzzle", "puzzles"), ("clevr_rpm", "rpms")]
)
def test_clevr_transfer_with_ground_truth_programs(tmp_path: Path, transfer: dict, dataset: str, key: str) -> None:
    config = _config(tmp_path, dataset=dataset, data_path="clevr-mini", program_generator="symbolic_left")
    samples = load_samples(config)
    questions = transfer[key]
    assert [s.program for s in samples] == [q["program"] for q in questions]
    for s, q in zip(samples, questions, strict=True):
        idx = q.get("scene_index", q.get("image_index"))
        assert s.boxes == expected_boxes(idx)  # RLE masks -> xyxy boxes
        assert Path(s.image_path).is_file()
    if key == "refexps":
        assert [s.answer for s in samples] == [expected_boxes(q["scene_index"])[q["answer"]] for q in questions]
    else:
        answers = [q["answer"] for q in questions]
        assert True in answers and False in answers  # the fixture tests both outcomes
        assert [s.answer for s in samples] == ["yes" if a else "no" for a in answers]

    runner = RUNNERS.get(dataset)(
        config, agent=SceneOracleAgent(), detector=GroundTruthDetector(), generator=SymbolicLeftGenerator()
    )
    run_dir = tmp_path / "exp" / dataset
    run_dir.mkdir(parents=True)
    summary = runner.run(run_dir)
    rows = _rows(run_dir)
    assert summary["accuracy"] == 100.0 and summary["total"] == len(questions)
    for s in samples:
        row = rows[s.id]
        assert row["error"] is None and row["correct"] is True
        assert row["program_origin"] == "symbolic"
        assert row["program"].startswith("def execute(score, query, n):")
        assert any(t["arity"] == 1 for t in row["trace"] if t["primitive"] == "score")
        if key == "refexps":
            assert row["pred"] == s.boxes[s.meta["answer_index"]]
        else:
            assert row["pred"] == s.answer


def test_clevr_puzzle_accuracy_follows_perception_errors(tmp_path: Path, transfer: dict) -> None:
    """With left/right swapped in perception, the answers are those of the swapped programs."""
    config = _config(tmp_path, dataset="clevr_puzzle", data_path="clevr-mini")
    runner = RUNNERS.get("clevr_puzzle")(
        config, agent=MirrorOracle(), detector=GroundTruthDetector(), generator=SymbolicLeftGenerator()
    )
    run_dir = tmp_path / "exp" / "mirror"
    run_dir.mkdir(parents=True)
    summary = runner.run(run_dir)
    scenes = transfer["scenes"]
    expected = [
        bool(reference_eval(q["program"], scenes[q["image_index"]], swap_left_right=True)) == q["answer"]
        for q in transfer["puzzles"]
    ]
    assert 0 < sum(expected) < len(expected)  # the swap matters on this fixture
    assert summary["correct"] == sum(expected) and summary["total"] == len(expected)


def test_clevr_refexps_with_detected_boxes_uses_iou(tmp_path: Path, transfer: dict) -> None:
    """Boxes that are not the scene's own are judged by IoU >= 0.5 with the gold object's box."""

    class ShrunkDetector(GroundTruthDetector):
        def detect(self, image, object_names):  # type: ignore[no-untyped-def]
            d = super().detect(image, object_names)
            return Detection([[b[0] + 1, b[1] + 1, b[2] - 1, b[3] - 1] for b in d.boxes], d.scores, d.labels)

    config = _config(tmp_path, dataset="clevr_refexps", data_path="clevr-mini", num_samples=5)
    runner = RUNNERS.get("clevr_refexps")(
        config, agent=SceneOracleAgent(), detector=ShrunkDetector(), generator=SymbolicLeftGenerator()
    )
    run_dir = tmp_path / "exp" / "shrunk"
    run_dir.mkdir(parents=True)
    summary = runner.run(run_dir)
    assert summary["accuracy"] == 100.0 and summary["total"] == 5
    for row in _rows(run_dir).values():
        assert row["pred"] != row["gold"] and row["pred"] == [
            v + d for v, d in zip(row["gold"], (1, 1, -1, -1), strict=True)
        ]


def test_clevr_transfer_loader_errors(tmp_path: Path, transfer: dict) -> None:
    from neptune_core.errors import UserError

    with pytest.raises(UserError, match="questions_file matches nothing"):
        load_samples(_config(tmp_path, dataset="clevr_rpm", data_path="clevr-mini", questions_file="nope-*.json"))
    with pytest.raises(UserError, match="scenes file not found"):
        load_samples(_config(tmp_path, dataset="clevr_rpm", data_path="missing"))


# ---- REFER (Ref-Adv / Ref-GTA) with fakes ---------------------------------------------------
class NearGoldDetector(Detector):
    """Two boxes per image: the gold box shifted a little (IoU >= 0.5) and a far distractor."""

    def begin_sample(self, sample: Sample) -> None:
        self.gold = sample.answer

    def detect(self, image, object_names):  # type: ignore[no-untyped-def]
        x1, y1, x2, y2 = self.gold
        boxes = [[x1 + 2, y1 + 1, x2 + 2, y2 + 1], [100.0, 60.0, 118.0, 78.0]]
        return Detection(boxes, [0.9, 0.8], ["object", "object"])


class PickAgent(VisionAgent):
    """Scores high the box index listed for the question (the test decides right or wrong)."""

    def __init__(self, picks: dict[str, int]) -> None:
        self.picks = picks

    def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
        assert arity == 1
        out = torch.full((len(questions), len(boxes)), 0.1)
        for k, q in enumerate(questions):
            out[k, self.picks[q]] = 0.9
        return out

    def answer(self, image, box, question):  # type: ignore[no-untyped-def]
        raise AssertionError("not used")


class EchoGenerator:
    """A fake program generator: one score over boxes with the sentence, then iota."""

    def program_for(self, sample: Sample) -> Program:
        src = f"def execute(score, query, n):\n    return score({sample.question!r}, 1).iota()\n"
        return Program(source=src, origin="generated", object_names=["thing"])


@pytest.mark.parametrize(("dataset", "split_by"), [("refadv", "umd"), ("refgta", "utokyo")])
def test_refer_layout_end_to_end(tmp_path: Path, dataset: str, split_by: str) -> None:
    build_refer(tmp_path / "data" / dataset, split_by)
    config = _config(tmp_path, dataset=dataset, data_path=dataset, split_by=split_by, split="test")
    samples = load_samples(config)
    assert [s.id for s in samples] == ["100_1", "100_2", "101_3"]  # one per sentence, val ref dropped
    x, y, w, h = REFER_ANNS[10][1]
    assert samples[0].answer == [x, y, x + w, y + h]  # xywh -> xyxy
    assert samples[2].meta["family"] == "dog"
    picks = {"the man on the left": 0, "small man": 1, "the dog": 0}  # right, wrong, right
    runner = RUNNERS.get(dataset)(
        config, agent=PickAgent(picks), detector=NearGoldDetector(), generator=EchoGenerator()
    )
    run_dir = tmp_path / "exp" / dataset
    run_dir.mkdir(parents=True)
    summary = runner.run(run_dir)
    rows = _rows(run_dir)
    assert summary["correct"] == 2 and summary["total"] == 3 and summary["accuracy"] == 66.67
    assert rows["100_1"]["correct"] is True and rows["100_1"]["pred"] == [12.0, 11.0, 42.0, 31.0]
    assert rows["100_2"]["correct"] is False and rows["100_2"]["pred"] == [100.0, 60.0, 118.0, 78.0]
    assert rows["101_3"]["gold"] == [60.0, 30.0, 100.0, 70.0]
    all_split = load_samples(_config(tmp_path, dataset=dataset, data_path=dataset, split_by=split_by, split="all"))
    assert len(all_split) == 4


def test_refer_errors(tmp_path: Path) -> None:
    from neptune_core.errors import UserError

    build_refer(tmp_path / "data" / "refadv", "umd")
    with pytest.raises(UserError, match=r"refs\(google\).p not found.*refs\(umd\).p"):
        load_samples(_config(tmp_path, dataset="refadv", data_path="refadv", split_by="google"))
    with pytest.raises(UserError, match="split 'train' has no refs"):
        load_samples(_config(tmp_path, dataset="refadv", data_path="refadv", split_by="umd", split="train"))
    evil = tmp_path / "data" / "evil"
    build_refer(evil, "umd")
    import pickle

    (evil / "refs(umd).p").write_bytes(pickle.dumps(Path("x")))
    with pytest.raises(UserError, match="only plain data"):
        load_samples(_config(tmp_path, dataset="refadv", data_path="evil", split_by="umd"))


# ---- generic JSONL through run.py ------------------------------------------------------------
def test_jsonl_through_run_py(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import code_generator
    import run
    import vision_agents

    if not hasattr(code_generator, "build_generator"):
        pytest.skip("code_generator.build_generator has not landed yet")
    build_jsonl(tmp_path / "data")

    class Agent(VisionAgent):
        """'cat' questions and 'left' sentences score box 0 / the image high; everything else low."""

        @classmethod
        def from_config(cls, config):  # type: ignore[no-untyped-def]
            return cls()

        def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
            if arity == 0:
                return torch.tensor([0.9 if "cat" in q else 0.2 for q in questions])
            return torch.tensor([[0.9, 0.1] if "left" in q else [0.1, 0.9] for q in questions])

        def answer(self, image, box, question):  # type: ignore[no-untyped-def]
            raise AssertionError("not used")

    class Boxes(Detector):
        @classmethod
        def from_config(cls, config):  # type: ignore[no-untyped-def]
            return cls()

        def detect(self, image, object_names):  # type: ignore[no-untyped-def]
            return Detection([[11.0, 10.0, 41.0, 40.0], [10.0, 10.0, 40.0, 40.0]], [1.0, 1.0], ["a", "b"])

    class Gen:
        @classmethod
        def from_config(cls, config):  # type: ignore[no-untyped-def]
            return cls()

        def program_for(self, sample: Sample) -> Program:
            if isinstance(sample.answer, list):
                body = f"return score({sample.question!r}, 1).iota()"
            else:
                body = f"return score({sample.question!r}, 0)"
            return Program(source=f"def execute(score, query, n):\n    {body}\n", origin="generated")

    vision_agents.VLMS.register("test_tasks_agent")(Agent)
    vision_agents.DETECTORS.register("test_tasks_boxes")(Boxes)
    code_generator.GENERATORS.register("test_tasks_gen")(Gen)
    cfg = tmp_path / "jsonl.json"
    cfg.write_text(
        json.dumps(
            {
                "dataset": "jsonl",
                "data_path": "data.jsonl",
                "vlm_model_name": "test_tasks_agent",
                "od_model": "test_tasks_boxes",
                "program_generator": "test_tasks_gen",
            }
        )
    )
    argv = ["--config", str(cfg), "--data_root", str(tmp_path / "data"), "--output_dir", str(tmp_path / "exp")]
    assert run.main(argv) == 0
    (run_dir,) = (tmp_path / "exp").iterdir()
    rows = _rows(run_dir)
    assert {k: r["pred"] for k, r in rows.items()} == {
        "q1": "yes",
        "q2": "no",
        "r1": [11.0, 10.0, 41.0, 40.0],
        "r2": [10.0, 10.0, 40.0, 40.0],
    }
    # q1, q2 right; r1 IoU(=0.94) right; r2 gold [70,10,100,40] has IoU 0 with the chosen box
    assert {k: r["correct"] for k, r in rows.items()} == {"q1": True, "q2": True, "r1": True, "r2": False}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"] == 75.0
    assert "accuracy: 75.0%" in capsys.readouterr().out
