"""LoRA fine-tuning through programs on a tiny random transformers VLM (built here, nothing downloaded).

The runner's own executor runs each program in-process with autograd; the loss on the
program's output (yes/no, count, box) trains peft LoRA adapters on the language model
only. Over 20 optimizer steps the loss falls, only adapter parameters receive gradients
(the base weights are bit-identical afterwards), and the saved adapter loaded by path
(``vlm_adapter``) reproduces the trained model's scores.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from neptune_core.config import LoraConfig, RunConfig, TrainConfig  # noqa: E402
from neptune_core.errors import ConfigError, ModelUnavailableError  # noqa: E402
from neptune_core.types import Program, Sample  # noqa: E402
from probabilistic_tensor import Semantics  # noqa: E402
from runners.base import Runner  # noqa: E402
from runners.train import ProgramTrainer  # noqa: E402
from tests.test_vlm_tiny_models import FAMILIES, marked_scene  # noqa: E402
from vision_agents.hf_vlm import HFVisionAgent  # noqa: E402
from vision_agents.lora import load_adapter, target_modules  # noqa: E402
from vision_agents.oracle import GroundTruthDetector  # noqa: E402

BOXES = [[2.0, 3.0, 20.0, 25.0], [30.0, 5.0, 60.0, 40.0], [10.0, 20.0, 40.0, 46.0]]
CUBE = "Is the object in the red box a cube?"
RED = "Is the object in the red box red?"
# (program body, gold answer): one of each answer kind the loss knows, on different images
CASES = [
    (f'return score("{CUBE}", 1).exists()', "yes"),
    (f'return score("{RED}", 1).forall()', "no"),
    (f'return score("{CUBE}", 1).count()', "2"),
    (f'return score("{RED}", 1).iota()', BOXES[1]),
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one torch thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class GivenPrograms:
    """The generator around the thing under test: each sample carries its program's source."""

    def program_for(self, sample: Sample) -> Program:
        return Program(source=sample.program, origin="given")


def tiny_agent(seed: int = 0, **kwargs) -> HFVisionAgent:
    torch.manual_seed(seed)
    model, proc = FAMILIES["qwen2_vl"]()
    return HFVisionAgent("tiny", device="cpu", batch_size=16, model=model, processor=proc, **kwargs)


def samples() -> list[Sample]:
    return [
        Sample(
            id=f"s{k}",
            question="q",
            answer=gold,
            image=marked_scene(10 + k),
            boxes=BOXES,
            program=f"def execute(score, query, n):\n    {body}\n",
        )
        for k, (body, gold) in enumerate(CASES)
    ]


def train_config(**kwargs) -> RunConfig:
    settings = dict(
        enabled=True,
        epochs=20,
        grad_accum=len(CASES),  # one optimizer step per epoch: 20 steps
        lr=0.02,
        scheduler="constant",
        max_grad_norm=0.0,
        keep_checkpoints=1,
        lora=LoraConfig(rank=4, alpha=8.0, dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )
    train = TrainConfig(**{**settings, **kwargs})
    return RunConfig(dataset="jsonl", od_model="gt", semantics=Semantics(iota="minmax"), train=train)


@pytest.mark.slow
def test_lora_loss_falls_only_adapters_learn_and_the_adapter_reloads(tmp_path: Path) -> None:
    agent = tiny_agent()
    base_before = {n: p.detach().clone() for n, p in agent.model.named_parameters()}
    runner = Runner(train_config(), agent=agent, detector=GroundTruthDetector(), generator=GivenPrograms())
    trainer = ProgramTrainer(runner, tmp_path)
    data = samples()
    history = trainer.train(data)

    losses = [s["loss"] for s in history["steps"]]
    assert len(losses) == 20 and all(v is not None for v in losses)
    assert history["loss_kinds"] == {"yes_no": 40, "count": 20, "box": 20}, history
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses

    # only the adapters receive gradients; the base weights are untouched by training
    model = agent.model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(".language_model." in n for n in trainable)  # not the vision tower
    trainer.tuner.set_training(True)
    model.zero_grad(set_to_none=True)
    result = trainer.sample_loss(data[0])
    result.loss.backward()
    with_grad = [n for n, p in model.named_parameters() if p.grad is not None]
    assert with_grad and all("lora_" in n for n in with_grad)
    assert any(float(p.grad.abs().sum()) > 0 for _, p in model.named_parameters() if p.grad is not None)
    model.zero_grad(set_to_none=True)
    trainer.tuner.set_training(False)
    for name, p in model.get_base_model().named_parameters():
        if "lora_" not in name:
            assert torch.equal(p, base_before[name.replace(".base_layer", "")]), name

    # the saved adapter, loaded by path onto a fresh copy of the base model, gives the same scores
    adapter = trainer.tuner.save(tmp_path / "tuned")
    assert (adapter / "adapter_config.json").is_file()
    reloaded = tiny_agent(adapter=str(adapter))
    image = marked_scene(10)
    trained_scores = agent.score(image, BOXES, [CUBE, RED], 1)
    reloaded_scores = reloaded.score(image, BOXES, [CUBE, RED], 1)
    assert torch.allclose(trained_scores, reloaded_scores, atol=1e-6, rtol=0)
    assert not torch.allclose(tiny_agent().score(image, BOXES, [CUBE, RED], 1), trained_scores, atol=1e-3)


def test_lora_scope_is_the_language_model_of_every_family() -> None:
    for family in ("llava", "smolvlm"):
        torch.manual_seed(0)
        model, _ = FAMILIES[family]()
        pattern = target_modules(model, LoraConfig(target_modules=["q_proj"]))
        import re

        hits = [n for n, _ in model.named_modules() if re.match(pattern, n)]
        assert hits and all("vision" not in n for n in hits), (family, hits)
    with pytest.raises(ConfigError, match="match no module"):
        target_modules(model, LoraConfig(target_modules=["no_such_proj"]))


def test_subset_method_and_bad_adapter_paths(tmp_path: Path) -> None:
    agent = tiny_agent()
    config = train_config(method="subset", parameters=[r"lm_head\."], epochs=2)
    runner = Runner(config, agent=agent, detector=GroundTruthDetector(), generator=GivenPrograms())
    trainer = ProgramTrainer(runner, tmp_path)
    assert [n for n, _ in trainer.tuner.named_trainable()] == ["lm_head.weight"]
    trainer.train(samples())
    saved = trainer.tuner.save(tmp_path / "tuned")
    fresh = tiny_agent()
    fresh.load()
    loaded = load_adapter(fresh.model, str(saved))
    assert torch.equal(loaded.lm_head.weight, agent.model.lm_head.weight)
    with pytest.raises(ModelUnavailableError, match="neither a peft adapter"):
        load_adapter(fresh.model, str(tmp_path / "nothing-here"))


class Interrupted(Exception):
    pass


def test_lora_resume_after_interruption_matches_an_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:
    """Adapter, optimizer, scheduler and dropout RNG come back from the checkpoint: identical losses."""
    config = train_config(epochs=3, lr=0.01, scheduler="cosine", warmup_steps=1)
    config.train.lora.dropout = 0.1  # dropout draws random numbers: the RNG state must be restored too
    data = samples()

    def trainer_in(run_dir: Path) -> ProgramTrainer:
        runner = Runner(config, agent=tiny_agent(), detector=GroundTruthDetector(), generator=GivenPrograms())
        return ProgramTrainer(runner, run_dir)

    whole = trainer_in(tmp_path / "whole").train(data)

    save = ProgramTrainer.save_checkpoint

    def save_then_die(self: ProgramTrainer, state: dict) -> Path:
        path = save(self, state)
        if state["epoch"] == 1:
            raise Interrupted
        return path

    monkeypatch.setattr(ProgramTrainer, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        trainer_in(tmp_path / "cut").train(data)
    monkeypatch.setattr(ProgramTrainer, "save_checkpoint", save)
    resumed = trainer_in(tmp_path / "cut").train(data)  # a fresh model and optimizer, as after a kill

    assert [s["loss"] for s in resumed["steps"]] == [s["loss"] for s in whole["steps"]]
    assert resumed["epochs"][-1]["loss"] == whole["epochs"][-1]["loss"]


def test_gradient_checkpointing_gives_the_same_losses(tmp_path: Path) -> None:
    runs = []
    for flag in (False, True):
        config = train_config(epochs=2, gradient_checkpointing=flag)
        runner = Runner(config, agent=tiny_agent(), detector=GroundTruthDetector(), generator=GivenPrograms())
        trainer = ProgramTrainer(runner, tmp_path / str(flag))
        runs.append([s["loss"] for s in trainer.train(samples())["steps"]])
        if flag:
            assert trainer.tuner.module.is_activation_checkpointing
    assert runs[0] == pytest.approx(runs[1], rel=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_lora_on_cuda(tmp_path: Path) -> None:
    agent = tiny_agent()
    agent.model = agent.model.to("cuda", dtype=torch.bfloat16)
    runner = Runner(train_config(epochs=5), agent=agent, detector=GroundTruthDetector(), generator=GivenPrograms())
    trainer = ProgramTrainer(runner, tmp_path)
    history = trainer.train(samples())
    losses = [s["loss"] for s in history["steps"]]
    assert all(v is not None and v == v for v in losses) and losses[-1] < losses[0]
    lora = [p for n, p in trainer.tuner.named_trainable()]
    assert lora and all(p.dtype == torch.float32 and p.device.type == "cuda" for p in lora)
