"""``Primitive.known`` (neptune_core/primitives/score.py: ``known_call``): how the parent records a call
its sandbox answered from a kept reply, from the agent's memo without calling the agent.

What it records and counts must be exactly what running the call again records and counts (the
trace entry, ``model_calls``), for every form of ``score`` call; where the memo cannot say, it
must say None so that the call is run.
"""

from __future__ import annotations

import pytest

from neptune_core.config import ExecutorConfig
from neptune_core.executor.guards import PrimitiveLimitError
from neptune_core.primitives import get_primitive
from neptune_core.primitives.base import CallContext
from probabilistic_tensor import LazyPolicy
from tests.score_fakes import BOXES, IMAGES, ShiftAgent
from vision_agents.base import MemoizedAgent, VisionAgent
from vision_agents.calls import counting


def _context(agent: VisionAgent, *, lazy: bool = False, two_images: bool = False, **config) -> CallContext:
    more = [(IMAGES[1], BOXES[:2])] if two_images else []
    policy = LazyPolicy(0.01) if lazy else None
    return CallContext(agent, IMAGES[0], BOXES, ExecutorConfig(**config), lazy=policy, more_images=more)


REQUESTS = [
    ("Is it red?", 1, None, 0),
    ("Is it daytime?", 0, None, 0),
    ("Is it left of it?", 2, None, 0),
    ("cube", 1, "class", 0),
    ("Is it metal?", 1, "material", 0),
]


CASES = [(*request, two) for request in REQUESTS for two in (False, True)] + [("Is it red?", 1, None, 1, True)]


@pytest.mark.parametrize(("question", "arity", "kind", "image", "two_images"), CASES)
def test_known_call_records_and_counts_what_running_it_again_does(question, arity, kind, image, two_images):
    agent = MemoizedAgent(ShiftAgent())
    ctx = _context(agent, two_images=two_images)
    score = get_primitive("score")
    request = score.request(ctx.limits, (question, arity), {"type": kind, "image": image})
    score.call(ctx, request)  # the first call: the memo now holds its row
    with counting() as rerun:
        score.call(ctx, request)
    asked = agent.inner.calls
    with counting() as replayed:
        known = score.known(ctx, request)
        assert known is not None
        ctx.replay(known)
    assert agent.inner.calls == asked  # the agent was not called
    assert ctx.trace[-1] == ctx.trace[-2]  # the entry is the one the call records
    assert ctx.trace[-1]["info"] == {"tokens": len(ctx.trace[-1]["question"])}
    assert replayed.to_dict() == rerun.to_dict()
    assert rerun.memo_hits == (1 if arity == 0 else len(ctx.view(image)[1]) ** arity)
    assert ctx.calls == 3


def test_known_call_says_none_where_the_memo_cannot_answer():
    score = get_primitive("score")
    agent = MemoizedAgent(ShiftAgent())
    ctx = _context(agent)
    request = score.request(ctx.limits, ("Is it red?", 1), {})
    assert score.known(ctx, request) is None  # not evaluated yet: the call must reach the model
    score.call(ctx, request)
    other_boxes = CallContext(agent, IMAGES[0], BOXES[:2], ExecutorConfig())
    assert score.known(other_boxes, score.request(other_boxes.limits, ("Is it red?", 1), {})) is None
    assert score.known(_context(ShiftAgent()), request) is None  # an agent without a memo cannot say

    lazy = _context(agent, lazy=True)  # a lazy relation's handle is made by the call itself
    relation = score.request(lazy.limits, ("Is it left of it?", 2), {})
    score.call(_context(agent), relation)
    assert score.known(lazy, relation) is None


def test_a_known_call_is_counted_against_the_call_limit():
    score = get_primitive("score")
    agent = MemoizedAgent(ShiftAgent())
    ctx = _context(agent, max_primitive_calls=2)
    request = score.request(ctx.limits, ("Is it red?", 1), {})
    score.call(ctx, request)
    known = score.known(ctx, request)
    ctx.replay(known)
    with pytest.raises(PrimitiveLimitError):
        ctx.replay(score.known(ctx, request))
    assert len(ctx.trace) == 2
