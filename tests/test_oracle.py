"""The scene oracle answers the canonical CLEVR phrasings (and variants) from scene
annotations; the ground-truth detector returns the sample's boxes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from neptune_core.clevr_vocab import query_question, relation_question, same_question, unary_question
from neptune_core.errors import UserError
from neptune_core.types import Sample, box_iou
from vision_agents import DETECTORS, VLMS
from vision_agents.oracle import GroundTruthDetector, SceneOracleAgent

IMG = Image.new("RGB", (8, 8))
# object 0 is left of 1 and 2; 2 is in front of 0 and 1
SCENE = {
    "objects": [
        {"size": "large", "color": "red", "material": "metal", "shape": "cube"},
        {"size": "small", "color": "green", "material": "rubber", "shape": "sphere"},
        {"size": "small", "color": "red", "material": "rubber", "shape": "cylinder"},
    ],
    "relationships": {
        "left": [[], [0, 2], [0]],
        "right": [[1, 2], [], [1]],
        "front": [[2], [2], []],
        "behind": [[], [0], [0, 1]],
    },
}
BOXES = [[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0], [10.0, 20.0, 20.0, 30.0]]


@pytest.fixture
def oracle() -> SceneOracleAgent:
    agent = SceneOracleAgent()
    agent.begin_sample(Sample(id="s", question="?", scene=SCENE, boxes=BOXES))
    return agent


def test_unary_canonical_and_variant_questions(oracle: SceneOracleAgent) -> None:
    qs = [unary_question("red"), unary_question("cube"), unary_question("small"), unary_question("rubber")]
    qs += ["Is the object in the red box shiny?", "Is the object in the red box a small red rubber cylinder?"]
    qs += ["Is there an object in the red box?", "Does the red box contain anything?"]
    got = oracle.score(IMG, BOXES, qs, 1)
    assert got.shape == (8, 3) and got.dtype == torch.float32
    assert got.tolist() == [[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 1], [1, 1, 1]]


def test_relations_follow_clevr_relationships(oracle: SceneOracleAgent) -> None:
    got = oracle.score(IMG, BOXES, [relation_question("left"), relation_question("front")], 2)
    # score[x][y] = 1 iff x is <rel> of y
    assert got[0].tolist() == [[0, 1, 1], [0, 0, 0], [0, 1, 0]]
    assert got[1].tolist() == [[0, 0, 0], [0, 0, 0], [1, 1, 0]]
    variant = oracle.score(IMG, BOXES, ["Is the object in the red box to the left of the object in the green box?"], 2)
    assert torch.equal(variant[0], got[0])


def test_same_attribute_excludes_the_object_itself(oracle: SceneOracleAgent) -> None:
    got = oracle.score(IMG, BOXES, [same_question("color"), same_question("size")], 2)
    assert got[0].tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    assert got[1].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_whole_image_questions(oracle: SceneOracleAgent) -> None:
    got = oracle.score(IMG, BOXES, ["Is there a red cylinder?", "Is there a large sphere?", "Is there an object?"], 0)
    assert got.tolist() == [1.0, 0.0, 1.0]


def test_answers_and_box_matching(oracle: SceneOracleAgent) -> None:
    assert oracle.answer(IMG, BOXES[2], query_question("shape")) == "cylinder"
    assert oracle.answer(IMG, BOXES[1], query_question("color")) == "green"
    assert oracle.answer(IMG, BOXES[0], "What material is the object in the red box made of?") == "metal"
    # boxes from elsewhere: shifted and reordered, each matched to the best-IoU scene object
    moved = [[b[0] + 2, b[1] + 1, b[2] + 2, b[3]] for b in (BOXES[2], BOXES[0])]
    assert oracle.object_indices(moved) == [2, 0]
    assert oracle.score(IMG, moved, [unary_question("cube")], 1).tolist() == [[0.0, 1.0]]
    assert oracle.answer(IMG, moved[0], query_question("size")) == "small"
    with pytest.raises(ValueError, match="overlaps no scene object"):
        oracle.object_indices([[100.0, 100.0, 110.0, 110.0]])


def test_iou() -> None:
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0


@pytest.mark.parametrize(
    "question,arity",
    [
        ("Is the object in the red box happy?", 1),
        ("Is the object in the red box left of the object in the green box?", 1),
        ("Is the object in the red box a cube?", 2),
        ("Are these two friends?", 2),
        ("Is it sunny?", 0),
        ("Is the object in the red box not red?", 1),
        ("Is the object in the red box red or blue?", 1),
        ("Is the object in the red box an object?", 1),
    ],
)
def test_questions_outside_the_vocabulary_raise(oracle: SceneOracleAgent, question: str, arity: int) -> None:
    with pytest.raises(ValueError, match="scene_oracle cannot answer") as err:
        oracle.score(IMG, BOXES, [question], arity)
    assert question in str(err.value)


def test_bad_answer_questions_raise(oracle: SceneOracleAgent) -> None:
    with pytest.raises(ValueError, match="cannot answer 'Why is the sky blue"):
        oracle.answer(IMG, BOXES[0], "Why is the sky blue?")
    with pytest.raises(ValueError, match="about a box"):
        oracle.answer(IMG, None, query_question("color"))


def test_oracle_needs_a_scene_and_begin_sample() -> None:
    with pytest.raises(RuntimeError, match="begin_sample"):
        SceneOracleAgent().score(IMG, BOXES, [unary_question("red")], 1)
    with pytest.raises(UserError, match="sample z has no CLEVR scene"):
        SceneOracleAgent().begin_sample(Sample(id="z", question="?"))


def test_boxes_from_scene_bboxes_when_the_sample_has_none() -> None:
    scene = {**SCENE, "objects": [dict(o, bbox=b) for o, b in zip(SCENE["objects"], BOXES, strict=True)]}
    agent = SceneOracleAgent()
    agent.begin_sample(Sample(id="s", question="?", scene=scene))
    assert agent.score(IMG, [BOXES[1]], [unary_question("sphere")], 1).tolist() == [[1.0]]


def test_gt_detector() -> None:
    det = GroundTruthDetector()
    det.begin_sample(Sample(id="s", question="?", boxes=BOXES))
    out = det.detect(IMG, ["cube"])
    assert out.boxes == BOXES and out.scores == [1.0] * 3 and out.labels == ["object"] * 3
    det.begin_sample(Sample(id="nb", question="?"))
    with pytest.raises(UserError, match="sample nb has no ground-truth boxes"):
        det.detect(IMG, [])


def test_registered_names() -> None:
    assert VLMS.get("scene_oracle") is SceneOracleAgent
    assert DETECTORS.get("gt") is GroundTruthDetector
