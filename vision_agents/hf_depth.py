"""Depth Anything (and any transformers depth-estimation model) as a ``depth_model``.

``AutoImageProcessor`` + ``AutoModelForDepthEstimation`` (Depth Anything checkpoints ->
``DepthAnythingForDepthEstimation``); the prediction is brought to the image's size by the
processor's ``post_process_depth_estimation``. How to read the map comes from the model's
config: ``depth_estimation_type: "metric"`` -> distances (larger is farther), otherwise
(Depth Anything's relative models, DPT) -> inverse depth (larger is nearer).
Weights load lazily, once; ``preflight`` loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from vision_agents.availability import PretrainedWeights
from vision_agents.depth import DepthEstimator
from vision_agents.devices import load_model, load_pretrained, to_model

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

DEPTH_ALIASES: dict[str, str] = {
    "depth_anything_v2_small": "depth-anything/Depth-Anything-V2-Small-hf",
    "depth_anything_v2_base": "depth-anything/Depth-Anything-V2-Base-hf",
    "depth_anything_v2_large": "depth-anything/Depth-Anything-V2-Large-hf",
    "depth_anything_v2_metric_indoor_small": "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
    "depth_anything_v2_metric_outdoor_small": "depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf",
    "depth_anything_small": "LiheYoung/depth-anything-small-hf",
}
METRIC_TYPES = ("metric",)


class HFDepthEstimator(PretrainedWeights, DepthEstimator):
    """A transformers depth model. Pass ``model`` / ``processor`` to use built objects."""

    name = "depth_anything"
    weights_setting = "depth_model"

    def __init__(self, model_id: str, *, device: str = "auto", model: Any = None, processor: Any = None) -> None:
        self.model_id = model_id
        self.device_setting = device
        self.model = model
        self.processor = processor
        self.forward_passes = 0

    @classmethod
    def from_config(cls, config: RunConfig) -> HFDepthEstimator:
        est = cls(DEPTH_ALIASES.get(config.depth_model, config.depth_model), device=config.device)
        est.name = config.depth_model
        return est

    @property
    def kind(self) -> str:  # type: ignore[override]
        self.load()
        metric = getattr(self.model.config, "depth_estimation_type", "relative") in METRIC_TYPES
        return "distance" if metric else "inverse"

    def _load(self) -> None:
        if self.processor is None:
            from transformers import AutoImageProcessor

            self.processor = load_pretrained(AutoImageProcessor.from_pretrained, self.model_id)
        if self.model is None:
            from transformers import AutoModelForDepthEstimation

            self.model = load_model(AutoModelForDepthEstimation, self.model_id, self.device_setting)

    def depth_map(self, image: Image.Image) -> np.ndarray:
        self.load()
        rgb = image.convert("RGB")
        enc = self.processor(images=rgb, return_tensors="pt")
        with torch.inference_mode():
            self.forward_passes += 1
            out = self.model(**to_model(enc, self.model))
        out.predicted_depth = out.predicted_depth.float().cpu()
        post = self.processor.post_process_depth_estimation(out, target_sizes=[(rgb.height, rgb.width)])
        return post[0]["predicted_depth"].float().numpy()


__all__ = ["DEPTH_ALIASES", "HFDepthEstimator"]
