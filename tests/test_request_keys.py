"""The keys the sandbox and its parent know requests and boxes by (faster than the JSON text and the
``repr`` they replace, and exactly as strict): ``wire.request_key``, the reply scope's coordinates,
the parent's checked requests of replayed calls, and ``rounded_boxes``.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from neptune_core.config import ExecutorConfig
from neptune_core.executor.process import SandboxProcess
from neptune_core.executor.wire import request_key
from neptune_core.primitives import get_primitive
from neptune_core.primitives.base import CallContext
from neptune_core.types import Detection
from probabilistic_tensor import Semantics
from runners.multi_image import rounded_boxes
from vision_agents.base import MemoizedAgent, VisionAgent

IMAGE = Image.new("RGB", (40, 20), (90, 90, 90))
SEVEN = [[float(4 * i), 0.0, float(4 * i + 3), 10.0] for i in range(7)]


class ConstantAgent(VisionAgent):
    name = "constant"
    shares_across_samples = True

    def score(self, image, boxes, questions, arity):
        return torch.full((len(questions), *((len(boxes),) * arity)), 0.25)

    def answer(self, image, box, question):
        return "red"


@pytest.fixture(autouse=True)
def _inference():  # as the runner runs samples: results without gradients are shared (a reply scope)
    with torch.no_grad():
        yield


def _context(agent: VisionAgent, boxes: list[list[float]]) -> CallContext:
    return CallContext(agent, IMAGE, boxes, ExecutorConfig())


def test_request_key_is_equal_exactly_for_equal_requests():
    a = {"question": "Is it red?", "num_objects": 1, "type": None, "image": 0}
    assert request_key("score", a) == request_key("score", dict(a))
    assert hash(request_key("score", a)) == hash(request_key("score", dict(a)))
    assert request_key("score", a) != request_key("query", a)
    assert request_key("score", a) != request_key("score", {**a, "question": "Is it blue?"})
    # values equal in Python but not the same request: they keep keys of their own
    assert request_key("score", {**a, "num_objects": True}) != request_key("score", a)
    assert request_key("score", {**a, "num_objects": 1.0}) != request_key("score", a)
    assert request_key("score", {**a, "num_objects": 1.0}) != request_key("score", {**a, "num_objects": True})
    # the same items in another order are another request text, as they were
    assert request_key("score", dict(reversed(list(a.items())))) != request_key("score", a)
    pairs = {"relation": 0, "entries": [[0, 1]], "dropped_mass": 0.0, "image": 0}
    assert request_key("score_pairs", pairs) == request_key("score_pairs", {**pairs, "entries": [[0, 1]]})
    assert request_key("score_pairs", pairs) != request_key("score_pairs", {**pairs, "entries": [[1, 0]]})


def test_reply_scope_follows_every_coordinate_and_box_but_not_int_or_float():
    agent = MemoizedAgent(ConstantAgent())
    scope = _context(agent, SEVEN).reply_scope()
    assert scope is not None
    assert _context(agent, [list(b) for b in SEVEN]).reply_scope() == scope
    assert _context(agent, [[int(v) for v in b] for b in SEVEN]).reply_scope() == scope  # the same boxes
    moved = [list(b) for b in SEVEN]
    moved[6][3] = 10.01
    assert _context(agent, moved).reply_scope() != scope
    assert _context(agent, SEVEN[:6]).reply_scope() != scope
    two = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    one = [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]
    assert _context(agent, two).reply_scope() != _context(agent, one).reply_scope()


def test_a_request_checked_under_other_boxes_is_checked_again():
    """The parent remembers checked requests per reply scope: one the sandbox replays under fewer boxes
    must meet the check of those boxes, not pass on what an earlier run with more boxes allowed."""
    sandbox = SandboxProcess(ExecutorConfig(), Semantics())
    query = get_primitive("query")
    agent = MemoizedAgent(ConstantAgent())
    seven = _context(agent, SEVEN)
    raw = {"question": "What color is it?", "object_id": 5, "image": 0}
    first = sandbox._checked_request(query, seven, dict(raw))
    assert first == query.checked(seven.limits, dict(raw))
    assert sandbox._checked_request(query, _context(agent, SEVEN), dict(raw)) is first  # same scope: remembered
    with pytest.raises(IndexError, match="object_id"):
        sandbox._checked_request(query, _context(agent, SEVEN[:3]), dict(raw))
    with pytest.raises((TypeError, ValueError)):  # a malformed request is refused every time, never remembered
        sandbox._checked_request(query, seven, {"question": "What color is it?", "object_id": "5", "image": 0})


def test_rounded_boxes_are_rounded_fresh_lists():
    raw = [[10.123456, 20.005, 30.0, 40.999], [1, 2, 3, 4]]
    detection = Detection(boxes=raw, scores=[0.9, 0.8], labels=["a", "b"])
    first = rounded_boxes(detection)
    assert first == [[round(float(v), 2) for v in b] for b in raw]
    assert all(type(v) is float for b in first for v in b)
    first[0][0] = -1.0  # a row's boxes are its own
    assert rounded_boxes(detection)[0][0] == round(10.123456, 2)
