"""Fine-tuning a transformers VLM through programs: LoRA (peft) on its language model, or a parameter subset.

:class:`HFTuner` is :class:`vision_agents.hf_vlm.HFVisionAgent`'s Tuner (runners/train.py):

- ``train.method`` "lora" (the default for these models): ``peft`` LoRA adapters of rank
  ``train.lora.rank`` and scale ``train.lora.alpha`` on the modules named in
  ``train.lora.target_modules`` (e.g. q_proj, v_proj) inside the language model only
  (``train.lora.scope`` "language_model": the model's ``get_decoder()``, whatever its
  attribute is called; another value: a module-path substring; "": anywhere). The vision
  tower and everything else stay frozen. Saved as a peft adapter directory.
- "subset": the parameters whose names match a regex of ``train.parameters``; "all": every
  parameter. Saved as ``trainable.safetensors``.

:func:`load_adapter` loads either back on top of the base model (config ``vlm_adapter``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from neptune_core.errors import ConfigError, ModelUnavailableError
from vision_agents.tuning import Tuner, select_parameters

if TYPE_CHECKING:
    from neptune_core.config import LoraConfig, TrainConfig
    from vision_agents.hf_vlm import HFVisionAgent

SUBSET_FILE = "trainable.safetensors"


def module_path(model: nn.Module, module: nn.Module) -> str:
    """The dotted path of ``module`` inside ``model``."""
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError("module is not part of the model")


def target_modules(model: nn.Module, lora: LoraConfig) -> str:
    """A peft ``target_modules`` regex: the named projections inside the configured scope."""
    if not lora.target_modules:
        raise ConfigError("train.lora.target_modules is empty: name the linear layers to adapt (e.g. q_proj v_proj)")
    names = "|".join(re.escape(n) for n in lora.target_modules)
    if lora.scope == "language_model":
        get_decoder = getattr(model, "get_decoder", None)
        if get_decoder is None:
            raise ConfigError("this model has no get_decoder(); set train.lora.scope to a module-path substring")
        prefix = re.escape(module_path(model, get_decoder())) + r"\."
    elif lora.scope:
        prefix = r".*" + re.escape(lora.scope) + r".*\."
    else:
        prefix = ""
    pattern = rf"^{prefix}(.*\.)?({names})$"
    if not any(re.match(pattern, n) for n, _ in model.named_modules()):
        raise ConfigError(
            f"train.lora.target_modules {lora.target_modules} match no module in scope '{lora.scope}' of this model"
        )
    return pattern


def load_adapter(model: nn.Module, path: str) -> nn.Module:
    """``model`` with trained weights from ``path``: a peft adapter directory, or a ``trainable.safetensors``."""
    p = Path(path).expanduser()
    if p.is_dir() and (p / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(p)).eval()
    file = p / SUBSET_FILE if p.is_dir() else p
    if file.is_file() and file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(file))
        unexpected = [k for k in state if k not in dict(model.named_parameters())]
        if unexpected:
            raise ModelUnavailableError(f"vlm_adapter {file} holds parameters this model lacks: {unexpected[:3]}")
        model.load_state_dict(state, strict=False)
        return model
    raise ModelUnavailableError(
        f"vlm_adapter {p} is neither a peft adapter directory (adapter_config.json) nor a {SUBSET_FILE} "
        "(pass the 'tuned/...' path a training run printed)"
    )


class HFTuner(Tuner):
    """LoRA adapters, a regex subset, or all parameters of an HFVisionAgent's model."""

    def __init__(self, agent: HFVisionAgent, train: TrainConfig) -> None:
        agent.load()
        self.method = "lora" if train.method == "auto" else train.method
        model = agent.model
        if self.method == "lora":
            from peft import LoraConfig as PeftLoraConfig
            from peft import PeftModel, get_peft_model

            if isinstance(model, PeftModel):  # an adapter from vlm_adapter: train it further
                for name, p in model.named_parameters():
                    p.requires_grad_("lora_" in name)
            else:
                lora = train.lora
                config = PeftLoraConfig(
                    r=lora.rank,
                    lora_alpha=lora.alpha,
                    lora_dropout=lora.dropout,
                    target_modules=target_modules(model, lora),
                    bias="none",
                )
                model = agent.model = get_peft_model(model, config)
        else:
            select_parameters(model, self.method, train.parameters)
        super().__init__(agent, model)
        self.hf = agent

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.method == "lora":
            from peft import get_peft_model_state_dict

            return {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.module).items()}
        return super().state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if self.method == "lora":
            from peft import set_peft_model_state_dict

            result = set_peft_model_state_dict(self.module, state)
            if getattr(result, "unexpected_keys", None):
                raise ConfigError(f"the checkpoint's adapter does not fit this model: {result.unexpected_keys[:3]}")
            return
        super().load_state_dict(state)

    def set_training(self, on: bool) -> None:
        self.hf.trainable = on
        self.module.train(on)

    def enable_gradient_checkpointing(self) -> None:
        model: Any = self.module
        if hasattr(model, "activation_checkpointing_enable"):  # transformers' newer name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.method == "lora":
            model.enable_input_require_grads()

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        if self.method == "lora":
            out = directory / "adapter"
            self.module.save_pretrained(str(out))
            return out
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        out = directory / SUBSET_FILE
        save_file({n: p.detach().cpu().contiguous() for n, p in self.named_trainable()}, str(out))
        return out
