"""The classic detector and VisionAgent on rendered synthetic scenes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bench.bench_classic import match
from bench.fit_classic import fit_softmax
from local_datasets.synthetic.world import make_scene
from neptune_core.clevr_vocab import relation_question, unary_question
from neptune_core.config import SyntheticConfig
from vision_agents import DETECTORS, VLMS
from vision_agents.classic_agent import ClassicAgent, content_words
from vision_agents.classic_detector import ClassicDetector


@pytest.fixture(scope="module")
def scenes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [make_scene(SyntheticConfig(), "val", k) for k in range(4)]


def test_registered():
    assert VLMS.get("classic") is ClassicAgent
    assert DETECTORS.get("classic") is ClassicDetector


def test_detector_recall_precision(scenes):
    tp = n_gt = n_pred = 0
    for scene, image in scenes:
        boxes = ClassicDetector().detect(image, ["object"]).boxes
        gt = [o["bbox"] for o in scene["objects"]]
        tp, n_gt, n_pred = tp + match(gt, boxes), n_gt + len(gt), n_pred + len(boxes)
    assert tp / n_gt >= 0.9 and tp / n_pred >= 0.9


def test_agent_colour_and_size_on_gt_boxes(scenes):
    agent = ClassicAgent()
    right = total = 0
    for scene, image in scenes:
        for o in scene["objects"]:
            total += 3
            right += agent.answer(image, o["bbox"], "What color is the object in the red box?") == o["color"]
            right += agent.answer(image, o["bbox"], "What size is the object in the red box?") == o["size"]
            right += agent.answer(image, o["bbox"], "What material is the object in the red box?") == o["material"]
    assert right / total >= 0.9


def test_fit_softmax_learns_and_is_calibrated():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.normal(size=(600, 2)) + np.array([[0, 0], [4, 0], [0, 4]])[y]
    m = fit_softmax(x, y, 3)
    z = (x - np.array(m["mean"])) / np.array(m["std"])
    s = z @ np.array(m["weights"]) + np.array(m["bias"])
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert (p.argmax(axis=1) == y).mean() > 0.9
    assert abs(p.max(axis=1).mean() - (p.argmax(axis=1) == y).mean()) < 0.05  # confidence matches accuracy


def test_unary_scores_follow_the_object_not_the_marker(scenes):
    scene, image = scenes[0]
    boxes = [o["bbox"] for o in scene["objects"]]
    p = ClassicAgent().score(image, boxes, [unary_question("red")], 1)[0]
    truth = [o["color"] == "red" for o in scene["objects"]]
    assert [bool(v > 0.5) for v in p] == truth
    assert content_words("Is the object in the red box red?").count("red") == 1


def test_relations_and_unknown_questions(scenes):
    scene, image = scenes[1]
    boxes = [o["bbox"] for o in scene["objects"]]
    agent = ClassicAgent()
    left = agent.score(image, boxes, [relation_question("left")], 2)[0]
    for i in range(len(boxes)):
        for j in range(len(boxes)):
            if i != j:
                assert bool(left[i, j] > 0.5) == (i in scene["relationships"]["left"][j])
    unknown = agent.score(image, boxes, ["Is the object in the red box happy?"], 1)[0]
    assert all(abs(float(v) - 0.5) < 1e-6 for v in unknown)
    assert agent.logits(image, boxes, ["Is the object in the red box happy?"], 1).abs().max() == 0
