"""Config names -> model ids, and which native transformers class serves each.

Any name not in these tables may still be a hub id ("org/name") or a local directory;
:func:`resolve_vlm` passes those through. Add a model: add one line to the table.

Honesty notes on the checkpoints (transformers 5.x):
- ``intern25_*``: the paper used OpenGVLab/InternVL2_5-*-MPO. Those repos hold
  remote code (``internvl_chat``) with no processor; the native
  ``InternVLForConditionalGeneration`` loads the converted ``-hf`` repos
  (OpenGVLab/InternVL2_5-2B-MPO-hf is on the hub; the other sizes follow the same
  naming, and a locally converted directory works too).
- ``ovis2_*``: AIDC-AI/Ovis2-* are remote-code repos; the native ``Ovis2ForConditionalGeneration``
  loads converted ``-hf`` repos (the transformers docs use thisisiron/Ovis2-1B-hf and
  -2B-hf; larger sizes assume the same naming, or point to a local conversion).
- ``qwen2*``: Qwen/Qwen2-VL-*-Instruct load natively (``Qwen2VLForConditionalGeneration``).
- ``smolvlm_256m``: HuggingFaceTB/SmolVLM-256M-Instruct, native (``SmolVLMForConditionalGeneration``), CPU-friendly.
- ``florence*``: the native ``Florence2ForConditionalGeneration`` loads florence-community/Florence-2-*;
  microsoft/Florence-2-* are the remote-code originals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from neptune_core.errors import UnknownNameError
from neptune_core.registry import did_you_mean


@dataclass(frozen=True)
class ModelSpec:
    """A model id plus how to load it. ``original`` is the repo the paper used, when different."""

    model_id: str
    trust_remote_code: bool = False
    original: str = ""


def _intern(size: str) -> ModelSpec:
    return ModelSpec(f"OpenGVLab/InternVL2_5-{size}-MPO-hf", original=f"OpenGVLab/InternVL2_5-{size}-MPO")


def _ovis(size: str) -> ModelSpec:
    return ModelSpec(f"thisisiron/Ovis2-{size}-hf", original=f"AIDC-AI/Ovis2-{size}")


VLM_ALIASES: dict[str, ModelSpec] = {
    "intern25_1b": _intern("1B"),
    "intern25_2b": _intern("2B"),
    "intern25_4b": _intern("4B"),
    "intern25_8b": _intern("8B"),
    "intern25_26b": _intern("26B"),
    "ovis2_1b": _ovis("1B"),
    "ovis2_2b": _ovis("2B"),
    "ovis2_4b": _ovis("4B"),
    "ovis2_8b": _ovis("8B"),
    "qwen2": ModelSpec("Qwen/Qwen2-VL-7B-Instruct"),
    "qwen2_2b": ModelSpec("Qwen/Qwen2-VL-2B-Instruct"),
    "qwen2_7b": ModelSpec("Qwen/Qwen2-VL-7B-Instruct"),
    "qwen25_3b": ModelSpec("Qwen/Qwen2.5-VL-3B-Instruct"),
    "qwen25_7b": ModelSpec("Qwen/Qwen2.5-VL-7B-Instruct"),
    "smolvlm_256m": ModelSpec("HuggingFaceTB/SmolVLM-256M-Instruct"),
}

DETECTOR_ALIASES: dict[str, ModelSpec] = {
    "dino": ModelSpec("IDEA-Research/grounding-dino-base"),
    "dino_tiny": ModelSpec("IDEA-Research/grounding-dino-tiny"),
    "florence": ModelSpec("florence-community/Florence-2-large", original="microsoft/Florence-2-large"),
    "florence_base": ModelSpec("florence-community/Florence-2-base", original="microsoft/Florence-2-base"),
    "owlv2": ModelSpec("google/owlv2-base-patch16-ensemble"),
}


def looks_like_model_path(name: str) -> bool:
    """True for a hub id ("org/name") or an existing local directory."""
    return os.path.isdir(os.path.expanduser(name)) or (name.count("/") == 1 and not name.startswith("/"))


def _resolve(name: str, table: dict[str, ModelSpec], kind: str) -> ModelSpec:
    if name in table:
        return table[name]
    if looks_like_model_path(name):
        return ModelSpec(os.path.expanduser(name) if os.path.isdir(os.path.expanduser(name)) else name)
    known = sorted(table)
    raise UnknownNameError(
        f"unknown {kind} '{name}'{did_you_mean(name, known)}; use one of {', '.join(known)}, "
        "a hub id (org/name) or a local model directory"
    )


def resolve_vlm(name: str) -> ModelSpec:
    """The model spec for a ``vlm_model_name`` (alias, hub id or local directory)."""
    return _resolve(name, VLM_ALIASES, "vlm_model_name")


def resolve_detector(name: str) -> ModelSpec:
    """The model spec for an ``od_model`` (alias, hub id or local directory)."""
    return _resolve(name, DETECTOR_ALIASES, "od_model")
