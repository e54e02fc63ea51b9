"""Device and dtype choice, and weight loading that fails in one line.

CUDA runs in bfloat16 by default, CPU in float32. ``device="auto"`` picks CUDA when
available and lets accelerate spread a model over all visible GPUs
(``device_map="auto"``) so models larger than one GPU still load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

from neptune_core.errors import ConfigError, ModelUnavailableError

T = TypeVar("T")


def resolve_device(device: str) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a torch.device (CUDA must exist when asked for)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"bad device '{device}': use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' asked for, but CUDA is not available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"bad device '{device}': use auto, cpu, cuda or cuda:N")
    return dev


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA, float32 on CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_kwargs(device_setting: str, device: torch.device) -> dict[str, Any]:
    """``from_pretrained`` kwargs: dtype, and device_map (auto across GPUs, or pinned)."""
    kwargs: dict[str, Any] = {"dtype": default_dtype(device)}
    if device.type == "cuda":
        kwargs["device_map"] = "auto" if device_setting in ("auto", "cuda") else {"": str(device)}
    return kwargs


def load_pretrained(load: Callable[..., T], model_id: str, **kwargs: Any) -> T:
    """``load(model_id, **kwargs)``; missing weights / no network -> one-line ModelUnavailableError."""
    try:
        return load(model_id, **kwargs)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ModelUnavailableError(
            f"cannot load model '{model_id}' ({type(e).__name__}: {first}). Download it once with network "
            f"(`hf download {model_id}`) or pass a local directory as the model name"
        ) from None


def load_model(auto_class: Any, model_id: str, device_setting: str, *, trust_remote_code: bool = False) -> Any:
    """``auto_class.from_pretrained`` in the device's dtype, on the device (or spread by device_map), in eval mode."""
    device = resolve_device(device_setting)
    kwargs = load_kwargs(device_setting, device)
    model = load_pretrained(auto_class.from_pretrained, model_id, trust_remote_code=trust_remote_code, **kwargs)
    if "device_map" not in kwargs:
        model = model.to(device)
    return model.eval()


def to_model(encoding: Any, model: Any) -> dict[str, Any]:
    """A processor's output moved to the model's device; floating tensors also take its dtype."""
    p = next(model.parameters())
    return {
        k: (v.to(p.device, dtype=p.dtype) if v.is_floating_point() else v.to(p.device)) if torch.is_tensor(v) else v
        for k, v in encoding.items()
    }
