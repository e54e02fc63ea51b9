"""The classic backends off the CLEVR floor: no box on a plain background, names for what is
drawn instead of CLEVR's words, and every concept they do not know reported on the trace."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from analysis.summary import format_summary, summarize
from analysis.unknown_concepts import count_unknown_concepts, unknown_concepts_warning
from neptune_core.types import box_iou
from tests.fixtures.own_data import IMAGES, draw, figure_box
from vision_agents.base import MemoizedAgent
from vision_agents.classic_agent import ClassicAgent
from vision_agents.classic_detector import ClassicDetector
from vision_agents.vocabulary import parse


@pytest.mark.parametrize("background", [(255, 255, 255), (40, 40, 40), (240, 235, 220), (200, 220, 255), (0, 90, 0)])
def test_detector_boxes_nothing_on_a_plain_background(background: tuple[int, int, int]) -> None:
    assert ClassicDetector().detect(Image.new("RGB", (200, 150), background), ["object"]).boxes == []


@pytest.mark.parametrize("name", list(IMAGES))
def test_detector_finds_each_drawn_figure_and_no_background(name: str) -> None:
    background, figures = IMAGES[name]
    boxes = ClassicDetector().detect(draw(background, figures), ["object"]).boxes
    assert len(boxes) == len(figures)
    for kind, _, _ in figures:
        assert max(box_iou(figure_box(name, kind), b) for b in boxes) > 0.7, (name, kind, boxes)


def _box_of(name: str, kind: str) -> list[float]:
    image = draw(*IMAGES[name])
    boxes = ClassicDetector().detect(image, []).boxes
    return max(boxes, key=lambda b: box_iou(b, figure_box(name, kind)))


@pytest.mark.parametrize(
    ("name", "kind", "colour"),
    [("paper", "triangle", "orange"), ("paper", "star", "pink"), ("paper", "circle", "blue"),
     ("night", "square", "white"), ("sand", "star", "black"), ("sand", "triangle", "green")],
)  # fmt: skip
def test_answers_name_what_is_drawn_not_clevr_words(name: str, kind: str, colour: str) -> None:
    agent = ClassicAgent()
    image, box = draw(*IMAGES[name]), _box_of(name, kind)
    assert agent.answer_with_info(image, box, "What shape is this object?") == (kind, {})
    assert agent.answer_with_info(image, box, "What color is this object?") == (colour, {})
    p = agent.score(image, [box], [f"Is this a {kind}?", "Is this a sphere?", "Is this a cube?"], 1)[:, 0]
    assert p[0] > 0.75 and p[1] < 0.1 and p[2] < 0.1  # a drawn circle is not a sphere, a square not a cube


def test_unknown_concepts_are_p_half_and_recorded() -> None:
    agent = ClassicAgent()
    image = draw(*IMAGES["paper"])
    boxes = ClassicDetector().detect(image, []).boxes
    questions = ["Is this a hexagon?", "Is this a red hexagon?", "Is this made of metal?", "Is this a triangle?"]
    p, infos = agent.score_with_info(image, boxes, questions, 1)
    assert infos[:3] == [{"unknown_concepts": ["hexagon"]}, {"unknown_concepts": ["hexagon"]},
                         {"unknown_concepts": ["metal"]}] and infos[3] == {}  # fmt: skip
    assert p[0].tolist() == [0.5, 0.5, 0.5] and p[2].tolist() == [0.5, 0.5, 0.5]
    assert (p[1] <= 0.5).all()  # an unknown concept in a conjunction can lower p, never raise it
    (p_pair,), (info,) = agent.score_with_info(image, boxes, ["Is the red object next to the green object?"], 2)
    assert info == {"unknown_concepts": ["next"]} and (p_pair == 0.5).all()
    same = [
        "Does the red object have the same shape as the green object?",
        "Is the red object the same size as the green one?",
    ]
    p_same, infos = agent.score_with_info(image, boxes, same, 2)
    assert infos == [{}, {"unknown_concepts": ["size"]}]  # size is measured for CLEVR renders only
    assert (p_same[0].diagonal() > 0.8).all() and (p_same[0] - torch.diag(p_same[0].diagonal()) < 0.1).all()
    answer, info = agent.answer_with_info(image, boxes[0], "What is this object used for?")
    assert answer == "unknown" and info == {"unknown_concepts": ["used"]}
    assert agent.answer_with_info(image, boxes[0], "What material is it?") == (
        "unknown",
        {"unknown_concepts": ["material"]},
    )
    # "is there no ...": the negation applies to the existence, not to each box
    there, _ = agent.score_with_info(image, boxes, ["Is there a star?", "Is there no star?", "Is there no square?"], 0)
    assert there[0] > 0.9 and there[1] < 0.1 and there[2] > 0.9


def test_memoised_agent_keeps_the_info_and_the_trace_carries_it() -> None:
    from neptune_core.config import ExecutorConfig
    from neptune_core.executor import Executor
    from probabilistic_tensor import Semantics

    image = draw(*IMAGES["sky"])
    boxes = ClassicDetector().detect(image, []).boxes
    src = (
        "def execute(score, query, n):\n"
        "    a = score('Is this a hexagon?', 1)\n"
        "    b = score('Is this a hexagon?', 1)\n"
        "    return (a & b & score('Is this a circle?', 1)).exists()\n"
    )
    outcome = Executor(ExecutorConfig(), Semantics()).run(src, MemoizedAgent(ClassicAgent()), image, boxes)
    assert outcome.error is None
    assert [e.get("info") for e in outcome.trace] == [{"unknown_concepts": ["hexagon"]}] * 2 + [None]
    block = count_unknown_concepts([{"trace": outcome.trace, "correct": True}])
    assert block == {
        "calls": 2,
        "perception_calls": 3,
        "samples": 1,
        "samples_correct": 1,
        "by_concept": {"hexagon": 2},
    }


def test_summary_warns_only_when_many_calls_hit_unknown_concepts() -> None:
    def row(i: int, unknown: bool) -> dict:
        info = {"info": {"unknown_concepts": ["teal"]}} if unknown else {}
        return {"id": str(i), "correct": True, "trace": [{"primitive": "score", **info}, {"primitive": "score"}]}

    few = summarize([row(i, i == 0) for i in range(20)])  # 1 of 40 calls: 2.5 %
    assert few["unknown_concepts"]["calls"] == 1 and unknown_concepts_warning(few["unknown_concepts"]) is None
    assert "warning" not in format_summary(few)
    many = summarize([row(i, i < 4) for i in range(20)])  # 4 of 40 calls: 10 %
    line = unknown_concepts_warning(many["unknown_concepts"])
    assert line == (
        "warning: 4 of 40 perception calls (4 samples) hit concepts the vision model does not know, "
        "answered as p = 0.5: teal (4)"
    )
    assert line in format_summary(many)


def test_vocabulary_parse() -> None:
    q = parse("Is the object in the red box a large red cube?")
    assert q.values == ["large", "red", "cube"] and q.unknown == [] and not q.negated
    q = parse("Is the red object to the left of the green object?", 2)
    assert q.relation == "left" and q.values == [] and q.unknown == []
    q = parse("Isn't this a triangular teal thing?")
    assert q.values == ["triangle"] and q.unknown == ["teal"] and q.negated
    assert parse("Does the red object have the same colour as the green object?", 2).same


def test_box_tuples_score_as_the_grid_does() -> None:
    """Lazy relations ask the classic agent for single boxes and pairs: each must equal its cell of the grid."""
    from local_datasets import load_samples
    from neptune_core.config import RunConfig, SyntheticConfig
    from vision_agents.classic_agent import ClassicAgent

    sample = load_samples(RunConfig(dataset="clevr_synthetic", synthetic=SyntheticConfig(num_scenes=1)))[0]
    image, boxes, agent = sample.load_image(), sample.boxes, ClassicAgent()
    unary = ["Is the object in the red box a large red cube?", "Is it not metal?", "Is it a hexagon?"]
    grid, infos = agent.score_with_info(image, boxes, unary, 1)
    tuples, tuple_infos = agent.score_tuples_with_info(image, [(b,) for b in boxes], unary, 1)
    assert torch.equal(grid, tuples) and infos == tuple_infos
    assert tuple_infos[2]["unknown_concepts"]  # hexagons are not in its vocabulary
    pair = ["Is the red-box object left of the green-box object?", "Does it have the same color as the green one?"]
    grid, infos = agent.score_with_info(image, boxes, pair, 2)
    tuples, tuple_infos = agent.score_tuples_with_info(image, [(b, c) for b in boxes for c in boxes], pair, 2)
    assert torch.equal(grid.reshape(len(pair), -1), tuples) and infos == tuple_infos
