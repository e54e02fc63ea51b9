"""What a training run (runners/train.py) needs from a VisionAgent it fine-tunes: a Tuner.

A trainable agent has a ``make_tuner(train_config) -> Tuner`` method; the Tuner picks the
parameters to train (``train.method``: LoRA adapters, a regex-chosen subset, or all),
switches the agent between training (autograd on) and inference, hands its trainable
state to checkpoints, and saves the result where ``vlm_adapter`` can load it back.

Add a trainable backend: subclass :class:`Tuner` next to the backend, implement
:meth:`Tuner.save` (and override :meth:`Tuner.set_training` if the agent has an autograd
switch), and give the agent a ``make_tuner`` method returning it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from torch import nn

from neptune_core.errors import ConfigError, UserError
from neptune_core.types import Box

if TYPE_CHECKING:
    from neptune_core.config import TrainConfig
    from vision_agents.base import VisionAgent

METHODS = ("auto", "lora", "subset", "all")


def tuner_for(agent: VisionAgent, train: TrainConfig) -> Tuner:
    """The agent's Tuner; a one-line error for an agent without trainable parameters."""
    inner = getattr(agent, "inner", agent)  # a MemoizedAgent: tune the model behind it
    make = getattr(inner, "make_tuner", None)
    if make is None:
        raise UserError(
            f"vision agent '{inner.name}' has no trainable parameters; fine-tuning works with "
            "vlm_model_name 'classic' and transformers VLMs"
        )
    if train.method not in METHODS:
        raise ConfigError(f"train.method must be one of {', '.join(METHODS)}, got {train.method!r}")
    return make(train)


def select_parameters(module: nn.Module, method: str, patterns: list[str]) -> list[str]:
    """Set requires_grad for ``method`` "all" (every parameter) or "subset" (names matching a regex)."""
    if method == "subset" and not patterns:
        raise ConfigError("train.method 'subset' needs train.parameters: regexes of the parameter names to train")
    compiled = [re.compile(p) for p in patterns]
    chosen = []
    for name, p in module.named_parameters():
        p.requires_grad_(method == "all" or any(c.search(name) for c in compiled))
        if p.requires_grad:
            chosen.append(name)
    if not chosen:
        names = [n for n, _ in module.named_parameters()][:8]
        raise ConfigError(f"train.parameters {patterns} match no parameter (some names: {', '.join(names)})")
    return chosen


class Tuner(ABC):
    """The trainable side of one VisionAgent during a training run."""

    def __init__(self, agent: VisionAgent, module: nn.Module) -> None:
        self.agent = agent
        self.module = module

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def named_trainable(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]

    def parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_trainable()]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained state a checkpoint keeps (the trainable parameters, detached copies)."""
        return {n: p.detach().clone() for n, p in self.named_trainable()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.named_trainable())
        if set(state) != set(params):
            raise UserError(
                "the checkpoint's trainable parameters do not match this model's "
                f"({len(state)} vs {len(params)}); start a new run (--run_name NEW)"
            )
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state[n].to(p.device, p.dtype))

    def set_training(self, on: bool) -> None:
        """Training (autograd, dropout) or inference mode."""
        self.module.train(on)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass (``train.gradient_checkpointing``)."""
        raise ConfigError(f"train.gradient_checkpointing is not available for vision agent '{self.agent.name}'")

    def answer_log_probs(self, image: Image.Image, box: Box, question: str) -> tuple[list[str], torch.Tensor] | None:
        """Candidate answers of an open question and their differentiable log-probabilities, or None if unknown."""
        return None

    @abstractmethod
    def save(self, directory: Path) -> Path:
        """Write the trained weights under ``directory``; return the path ``vlm_adapter`` takes."""

    def describe(self) -> dict[str, Any]:
        trainable = sum(p.numel() for p in self.parameters())
        total = sum(p.numel() for p in self.module.parameters())
        return {"trainable_parameters": trainable, "total_parameters": total}
