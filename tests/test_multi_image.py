"""Samples with several images: ``image=`` on score and query (checked on both sides of the sandbox,
in both isolation modes), the detector once per image, every image with its boxes on the row and
in the report, the memo never mixing images, and one-image samples exactly as before."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from analysis.report import write_report
from code_generator.checks import check_program
from neptune_core.config import ExecutorConfig, load_config
from neptune_core.executor import Executor, to_answer
from neptune_core.types import Detection, Program, Sample
from probabilistic_tensor import Semantics
from runners.base import Runner
from vision_agents.base import Detector, MemoizedAgent, VisionAgent

RED, BLUE = (200, 30, 30), (30, 30, 200)


class ColourAgent(VisionAgent):
    """p(yes) = how red the image's top-left pixel is (about 0.9 for the red image, 0.1 for the blue one);
    answers name that colour, with the number of boxes it was shown."""

    name = "colour"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    @staticmethod
    def _red(image: Image.Image) -> float:
        return 0.9 if image.getpixel((0, 0))[0] > 100 else 0.1

    def score(self, image, boxes, questions, arity):  # noqa: ANN001, ANN201
        self.calls.append(("score", len(boxes)))
        return torch.full((len(questions),) + (len(boxes),) * arity, self._red(image))

    def answer(self, image, box, question):  # noqa: ANN001, ANN201
        self.calls.append(("answer", 0 if box is None else 1))
        return "red" if self._red(image) > 0.5 else "blue"


def _images() -> list[Image.Image]:
    return [Image.new("RGB", (40, 30), RED), Image.new("RGB", (40, 30), BLUE)]


BOXES = [[[0, 0, 10, 10], [10, 0, 20, 10], [20, 0, 30, 10]], [[0, 0, 5, 5]]]  # 3 boxes on image 0, 1 on image 1

PAIR_PROGRAM = """def execute(score, query, n):
    left = score("Is it red?", 1, image=0)
    right = score("Is it red?", 1, image=1)
    whole = score("Is it red?", 0, image=1)
    return [len(left), len(right), round(left.count().item(), 2), round(right.count().item(), 2),
            round(whole.item(), 2), query("What color?", None, image=1), query("What color?", right.iota(), 1), n]
"""


@pytest.mark.parametrize("isolation", ["in_process", "process"])
def test_image_argument_picks_the_image_and_its_boxes(isolation: str) -> None:
    executor = Executor(ExecutorConfig(isolation=isolation), Semantics())
    try:
        (left, right), agent = _images(), ColourAgent()
        out = executor.run(PAIR_PROGRAM, agent, left, BOXES[0], more_images=[(right, BOXES[1])])
        assert out.error is None, out.error
        assert out.value == [3, 1, 2.7, 0.1, 0.1, "blue", "blue", 3]  # n counts the first image's boxes
        assert [e.get("image") for e in out.trace] == [0, 1, 1, 1, 1]  # every entry names its image
        assert ("score", 1) in agent.calls and ("score", 3) in agent.calls

        # a one-image sample: the same program cannot address image 1, and its entries carry no image key
        out = executor.run(PAIR_PROGRAM, ColourAgent(), left, BOXES[0])
        assert out.error is not None and out.error.type == "IndexError"
        assert "score() image 1 is out of range: this sample has one image (image=0)" in out.error.message
        out = executor.run('def execute(score, query, n):\n    return score("Is it red?", 1).exists()\n',
                           ColourAgent(), left, BOXES[0])  # fmt: skip
        assert out.error is None and to_answer(out.value) == "yes" and "image" not in out.trace[0]

        # object ids are checked against the boxes of the image they refer to
        bad = 'def execute(score, query, n):\n    return query("What color?", 2, image=1)\n'
        out = executor.run(bad, ColourAgent(), left, BOXES[0], more_images=[(right, BOXES[1])])
        assert out.error is not None and "object_id 2 is out of range for 1 boxes of image 1" in out.error.message
        bad = 'def execute(score, query, n):\n    return score("Is it red?", 1, image=True)\n'
        out = executor.run(bad, ColourAgent(), left, BOXES[0], more_images=[(right, BOXES[1])])
        assert out.error is not None and "image must be an int image index" in out.error.message
    finally:
        executor.close()


def test_the_parent_checks_image_again() -> None:
    """A request from the sandbox is bound again in the parent: an image index beyond the sample's fails there."""
    from neptune_core.primitives import get_primitive
    from neptune_core.primitives.base import CallContext

    left, right = _images()
    ctx = CallContext(ColourAgent(), left, BOXES[0], ExecutorConfig(), more_images=[(right, BOXES[1])])
    score = get_primitive("score")
    request = {"question": "Is it red?", "num_objects": 1, "type": None, "image": 2}
    with pytest.raises(IndexError, match="score\\(\\) image 2 is out of range: this sample has 2 images \\(0 to 1\\)"):
        score.call(ctx, request)
    assert score.call(ctx, {**request, "image": 1}).shape == (1,)


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        ('score("q", 1, image=1)', None),
        ('score("q", 1, None, k)', None),
        ('query("q", 0, image=k)', None),
        ('query("q", None, 1)', None),
        ('score("q", 1, image="left")', "score's image must be an image index"),
        ('query("q", 0, image=-1)', "query's image must be an image index"),
        ('score("q", 1, picture=1)', "score takes (question, num_objects, type, image)"),
        ('query("q", 0, 1, 2)', "query takes (question, object_id, image)"),
    ],
)
def test_the_auditor_knows_the_image_argument(call: str, problem: str | None) -> None:
    source = f"def execute(score, query, n):\n    k = 1\n    return {call}\n"
    found = check_program(source)
    if problem is None:
        assert found == [], found
    else:
        assert any(problem in p for p in found), found
    ast.parse(source)


def test_the_memo_never_serves_one_image_for_another() -> None:
    inner = ColourAgent()
    agent = MemoizedAgent(inner)
    left, right = _images()
    boxes = BOXES[0]
    a = agent.score(left, boxes, ["Is it red?"], 1)
    b = agent.score(right, boxes, ["Is it red?"], 1)
    assert a[0, 0].item() == pytest.approx(0.9) and b[0, 0].item() == pytest.approx(0.1)
    assert agent.answer(left, None, "What color?") == "red" and agent.answer(right, None, "What color?") == "blue"
    agent.score(left, boxes, ["Is it red?"], 1)  # the same image again: from the memo
    assert inner.calls.count(("score", 3)) == 2 and agent.calls == 4


class PerImageDetector(Detector):
    """One box on a red image, two on a blue one; records the images it saw."""

    name = "per_image"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []

    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        self.seen.append(image.getpixel((0, 0)))
        boxes = [[1.0, 1.0, 9.0, 9.0]] if image.getpixel((0, 0))[0] > 100 else [[2, 2, 8, 8], [12, 2, 18, 8]]
        return Detection(boxes=boxes, scores=[1.0] * len(boxes), labels=["thing"] * len(boxes))


class FixedGenerator:
    def __init__(self, source: str) -> None:
        self.source = source

    def program_for(self, sample: Sample) -> Program:
        return Program(self.source, origin="given", object_names=["thing"])


PAIR_COUNT = 'def execute(score, query, n):\n    return score("Is it red?", 1, image=1).count() < 1\n'


def _runner(tmp_path: Path, detector: Detector, source: str = PAIR_COUNT) -> Runner:
    config = load_config(None, {"dataset": "jsonl", "output_dir": str(tmp_path), "executor.isolation": "in_process"})
    return Runner(config, agent=ColourAgent(), detector=detector, generator=FixedGenerator(source))


def test_the_row_keeps_every_image_with_its_own_boxes(tmp_path: Path) -> None:
    left, right = _images()
    detector = PerImageDetector()
    pair = Sample(
        "pair", "The right image has fewer than one red thing.", answer="yes", image=left, more_images=[right]
    )
    row = _runner(tmp_path, detector).process(pair)
    assert row["error"] is None and row["pred"] == "yes" and row["correct"] is True
    assert detector.seen == [RED, BLUE]  # the detector ran once per image, in order
    assert row["boxes"] == [[1.0, 1.0, 9.0, 9.0]]  # the first image's, as for any sample
    assert row["images"] == [
        {"image": "image 0", "boxes": [[1.0, 1.0, 9.0, 9.0]]},
        {"image": "image 1", "boxes": [[2.0, 2.0, 8.0, 8.0], [12.0, 2.0, 18.0, 8.0]]},
    ]
    assert row["trace"][0]["image"] == 1 and len(row["trace"][0]["probs"]) == 2

    single = Sample("one", "Is it red?", answer="yes", image=left)
    row1 = _runner(tmp_path, PerImageDetector(), 'def execute(score, query, n):\n    return score("q", 0)\n').process(
        single
    )
    assert row1["error"] is None and "images" not in row1 and "image" not in row1["trace"][0]


def test_ground_truth_boxes_are_refused_for_a_sample_with_several_images(tmp_path: Path) -> None:
    from vision_agents.oracle import GroundTruthDetector

    left, right = _images()
    pair = Sample("pair", "q", answer="yes", image=left, more_images=[right], boxes=[[0, 0, 5, 5]])
    row = _runner(tmp_path, GroundTruthDetector()).process(pair)
    assert (
        row["error"]["stage"] == "detect"
        and "od_model 'gt' has ground-truth boxes for one image" in (row["error"]["message"])
    )


def test_the_report_draws_every_image_of_a_sample(tmp_path: Path) -> None:
    left, right = _images()
    runner = _runner(tmp_path, PerImageDetector())
    pair = Sample(
        "pair", "The right image has fewer than one red thing.", answer="yes", image=left, more_images=[right]
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    summary = runner.run(run_dir, [pair])
    assert summary["num_samples"] == 1
    write_report(run_dir, [pair])
    page = (run_dir / "report" / "sample_pair.html").read_text()
    assert page.count("<svg") == 2 and "image=0: image 0 (1 boxes)" in page and "image=1: image 1 (2 boxes)" in page
    assert "image=0: 1, image=1: 2 detected" in page
    assert "arity=1 image=1" in page  # the trace entry names the image it looked at
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert rows[0]["images"][1]["boxes"] == [[2.0, 2.0, 8.0, 8.0], [12.0, 2.0, 18.0, 8.0]]


LAZY_PAIR = """def execute(score, query, n):
    thing = score("Is it red?", 1, image=1).iota()("y")
    near = score("Is the red object near the green object?", 2, image=1)
    return [len(near), round(near.contract(thing).exists().item(), 2)]
"""


@pytest.mark.parametrize("isolation", ["in_process", "process"])
def test_a_lazy_relation_on_the_second_image_fetches_its_pairs_there(isolation: str) -> None:
    from probabilistic_tensor import LazyPolicy

    executor = Executor(ExecutorConfig(isolation=isolation), Semantics(), lazy=LazyPolicy(0.0))
    try:
        left, right = _images()
        two_boxes = [[0, 0, 5, 5], [5, 0, 10, 5]]
        agent = ColourAgent()
        out = executor.run(LAZY_PAIR, agent, left, BOXES[0], more_images=[(right, two_boxes)])
        assert out.error is None, out.error
        assert out.value == [2, 0.1]  # 2 boxes of the (blue) right image, its p = 0.1, not the red image's 0.9
        relation = next(e for e in out.trace if e.get("arity") == 2)
        assert relation["image"] == 1
        assert all(n <= 2 for kind, n in agent.calls if kind == "score")  # never the left image's 3 boxes
    finally:
        executor.close()


def test_score_pairs_checks_pairs_against_the_relation_image() -> None:
    from neptune_core.primitives import get_primitive
    from neptune_core.primitives.base import CallContext
    from probabilistic_tensor import LazyPolicy

    left, right = _images()
    ctx = CallContext(
        ColourAgent(), left, BOXES[0], ExecutorConfig(), lazy=LazyPolicy(0.0), more_images=[(right, BOXES[1])]
    )
    get_primitive("score").call(ctx, {"question": "near?", "num_objects": 2, "type": None, "image": 1})
    pairs = get_primitive("score_pairs")
    with pytest.raises(ValueError, match="a pair must be two box indices below 1"):
        pairs.call(ctx, {"relation": 0, "entries": [[0, 2]], "dropped_mass": 0.0, "image": 1})
    with pytest.raises(ValueError, match="lazy relation 0 is about image 1, not 0"):
        pairs.call(ctx, {"relation": 0, "entries": [[0, 0]], "dropped_mass": 0.0, "image": 0})
    assert pairs.call(ctx, {"relation": 0, "entries": [[0, 0]], "dropped_mass": 0.0, "image": 1}).tolist() == [
        pytest.approx(0.1)
    ]
