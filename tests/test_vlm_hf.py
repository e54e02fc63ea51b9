"""HFVisionAgent on tiny random models of every family this machine can build.

Batched scoring must equal one-by-one scoring (arity 0, 1, 2), probabilities lie in
[0, 1], memoised repeats (any question about the same image) reach no model forward, and
missing weights fail in one line.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from neptune_core.config import RunConfig  # noqa: E402
from neptune_core.errors import ModelUnavailableError, UnknownNameError  # noqa: E402
from neptune_core.types import Sample  # noqa: E402
from tests.test_vlm_tiny_models import FAMILIES, make_tokenizer, marked_scene  # noqa: E402
from vision_agents.base import MemoizedAgent  # noqa: E402
from vision_agents.hf_vlm import NO_VARIANTS, YES_VARIANTS, HFVisionAgent, answer_token_ids, p_yes  # noqa: E402

BOXES = [[2.0, 3.0, 20.0, 25.0], [30.0, 5.0, 60.0, 40.0], [10.0, 20.0, 40.0, 46.0]]
QUESTIONS = ["Is the object in the red box a cube?", "What color is it? Answer yes or no."]


class ForwardCounter:
    """Counts calls of ``model.forward`` through a forward hook (independent of the agent)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.count = 0
        model.register_forward_hook(lambda *_: self._tick())

    def _tick(self) -> None:
        self.count += 1


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def tiny(request: pytest.FixtureRequest) -> tuple[str, Any, Any, ForwardCounter]:
    torch.manual_seed(0)
    model, proc = FAMILIES[request.param]()
    return request.param, model, proc, ForwardCounter(model)


def agent_for(tiny: tuple, batch_size: int) -> HFVisionAgent:
    _, model, proc, _ = tiny
    return HFVisionAgent("tiny", device="cpu", batch_size=batch_size, max_new_tokens=3, model=model, processor=proc)


@pytest.mark.parametrize("arity", [0, 1, 2])
def test_batched_equals_one_by_one(tiny: tuple, arity: int) -> None:
    image = marked_scene(3)
    counter = tiny[3]
    batched, single = agent_for(tiny, 16), agent_for(tiny, 1)
    boxes = BOXES if arity < 2 else BOXES[:2]  # 2 ordered pairs x 2 questions keeps the CPU time low
    before = counter.count
    a = batched.score(image, boxes, QUESTIONS, arity)
    mid = counter.count
    b = single.score(image, boxes, QUESTIONS, arity)
    n_items = {0: 1, 1: len(boxes), 2: len(boxes) * (len(boxes) - 1)}[arity] * len(QUESTIONS)
    assert mid - before == 1  # all items fit one batch of 16
    assert counter.count - mid == n_items
    expected_shape = {0: (2,), 1: (2, 3), 2: (2, 2, 2)}[arity]
    assert a.shape == b.shape == expected_shape
    assert torch.allclose(a, b, atol=1e-5, rtol=0), (a - b).abs().max()
    assert ((a >= 0) & (a <= 1)).all()
    if arity == 2:
        assert torch.all(a[:, [0, 1], [0, 1]] == 0)
        assert a[0, 0, 1] != a[0, 1, 0]  # (red, green) order matters: different marked images


def test_memoised_repeats_make_no_forward(tiny: tuple) -> None:
    image = marked_scene(4)
    counter = tiny[3]
    agent = MemoizedAgent(agent_for(tiny, 8))
    agent.begin_sample(Sample(id="s", question="q"))
    first = agent.score(image, BOXES, QUESTIONS, 1)
    after_first = counter.count
    again = agent.score(image, BOXES, list(reversed(QUESTIONS)) + QUESTIONS, 1)
    assert counter.count == after_first
    assert torch.equal(again[1], first[0]) and torch.equal(again[2], first[0])
    agent.begin_sample(Sample(id="t", question="q"))  # another question about the same image: shared
    agent.score(image, BOXES, QUESTIONS[:1], 1)
    assert counter.count == after_first
    agent.score(marked_scene(5), BOXES, QUESTIONS[:1], 1)  # another image: a forward pass
    assert counter.count == after_first + 1
    per_sample = MemoizedAgent(agent_for(tiny, 8), images=0)  # calls.memo_images 0: one memo per sample
    per_sample.begin_sample(Sample(id="s", question="q"))
    per_sample.score(image, BOXES, QUESTIONS[:1], 1)
    per_sample.begin_sample(Sample(id="t", question="q"))
    per_sample.score(image, BOXES, QUESTIONS[:1], 1)
    assert counter.count == after_first + 3


def test_class_type_and_answer(tiny: tuple) -> None:
    image = marked_scene(5)
    agent = agent_for(tiny, 4)
    cls = agent.score(image, BOXES, ["cube", "sphere"], 1, type="class")
    explicit = agent.score(
        image, BOXES, [f"Is the object in the red box a {c}? Answer yes or no." for c in ("cube", "sphere")], 1
    )
    assert torch.allclose(cls, explicit, atol=1e-6)
    counter = tiny[3]
    before = counter.count
    ans = agent.answer(image, BOXES[0], "What shape is the object in the red box?")
    assert counter.count > before  # generate ran the model
    assert ans == ans.strip().lower() and not ans.endswith((".", "?"))
    assert agent.answer(image, BOXES[0], "What shape is the object in the red box?") == ans  # greedy


def test_yes_no_variants_pooled() -> None:
    tok = make_tokenizer(["Yes", "yes", "YES"])
    yes, no = answer_token_ids(tok, YES_VARIANTS), answer_token_ids(tok, NO_VARIANTS)
    assert len(yes) == 3 and len(no) == 2  # "Yes", "yes", "YES"; "No", "no"
    logits = torch.randn(4, len(tok))
    expected = torch.sigmoid(logits[:, yes].logsumexp(-1) - logits[:, no].logsumexp(-1))
    assert torch.allclose(p_yes(logits, yes, no), expected, atol=1e-6)


def test_missing_weights_fail_in_one_line(tmp_path: Any) -> None:
    agent = HFVisionAgent("no-such-org/no-such-model-xyz", device="cpu")
    with pytest.raises(ModelUnavailableError) as err:
        agent.load()
    msg = str(err.value)
    assert "no-such-org/no-such-model-xyz" in msg and "\n" not in msg and "local model directory" in msg
    empty = tmp_path / "empty_model"
    empty.mkdir()
    with pytest.raises(ModelUnavailableError, match="empty_model"):
        HFVisionAgent(str(empty), device="cpu").load()


def test_from_config_aliases() -> None:
    agent = HFVisionAgent.from_config(RunConfig(vlm_model_name="intern25_8b", vlm_batch_size=5, device="cpu"))
    assert agent.model_id == "OpenGVLab/InternVL2_5-8B-MPO-hf" and agent.batch_size == 5 and agent.model is None
    assert HFVisionAgent.from_config(RunConfig(vlm_model_name="qwen2_2b")).model_id == "Qwen/Qwen2-VL-2B-Instruct"
    assert HFVisionAgent.from_config(RunConfig(vlm_model_name="org/some-vlm")).model_id == "org/some-vlm"
    with pytest.raises(UnknownNameError, match="intern25_8b"):
        HFVisionAgent.from_config(RunConfig(vlm_model_name="intern25_8c"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_on_cuda_matches_batched() -> None:
    torch.manual_seed(0)
    model, proc = FAMILIES["qwen2_vl"]()
    model = model.to("cuda", dtype=torch.bfloat16)
    image = marked_scene(6)
    a = HFVisionAgent("tiny", batch_size=16, model=model, processor=proc).score(image, BOXES, QUESTIONS, 2)
    b = HFVisionAgent("tiny", batch_size=1, model=model, processor=proc).score(image, BOXES, QUESTIONS, 2)
    assert a.dtype == torch.float32 and ((a >= 0) & (a <= 1)).all()
    assert torch.allclose(a, b, atol=2e-2)  # bf16: batch shapes change the kernels' rounding


def test_trainable_agent_passes_program_gradients_into_the_model() -> None:
    """Fine-tuning through programs: a loss on a program's output reaches the VLM's weights."""
    from neptune_core.config import ExecutorConfig
    from neptune_core.executor import Executor
    from probabilistic_tensor import Semantics

    torch.manual_seed(0)
    model, proc = FAMILIES["qwen2_vl"]()
    program = (
        "def execute(score, query, n):\n"
        '    cube = score("Is the object in the red box a cube?", 1)\n'
        '    left = score("Is the object in the red box left of the object in the green box?", 2)\n'
        '    return (left.contract(cube.iota()("y")) & ~cube).exists()\n'
    )
    frozen = HFVisionAgent("tiny", device="cpu", model=model, processor=proc)
    out = Executor(ExecutorConfig(), Semantics(iota="minmax")).run(program, frozen, marked_scene(), BOXES)
    assert out.error is None, out.error
    assert not out.value.data.requires_grad

    agent = MemoizedAgent(HFVisionAgent("tiny", device="cpu", model=model, processor=proc, trainable=True))
    # gradients flow only in-process (a sandbox process returns data, not the autograd graph)
    out = Executor(ExecutorConfig(isolation="in_process"), Semantics(iota="minmax")).run(
        program, agent, marked_scene(), BOXES
    )
    assert out.error is None, out.error
    model.zero_grad()
    loss = torch.nn.functional.binary_cross_entropy(out.value.data.clamp(1e-6, 1 - 1e-6), torch.tensor(1.0))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
