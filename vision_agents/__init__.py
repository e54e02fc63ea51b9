"""Perception backends: VisionAgents (``vlm_model_name``) and Detectors (``od_model``).

Video samples: :mod:`vision_agents.video_agents` turns the run's VisionAgent into a VideoAgent
(``VIDEO_AGENTS`` by ``vlm_model_name``; others frame by frame, Qwen2-VL-like models with video).
Captioners (``verify.caption.captioner``, the caption verifier) follow the same pattern
with :class:`vision_agents.captioners.Captioner`, segmenters (``segmenter``) with
:class:`vision_agents.segmenters.Segmenter` and depth models (``depth_model``) with
:class:`vision_agents.depth.DepthEstimator`; vision_agents/perception.py bundles those two with
the marking style for a run. Ensembles (``ensemble``) are backends too:
their members come from the config's ``ensemble`` section.

Add a backend: subclass :class:`vision_agents.base.VisionAgent` (or ``Detector``)
in a module of this package, implement ``score``/``answer`` (or ``detect``) and
``from_config``, then add one lazy line to the table below. A VisionAgent that can score
box tuples one by one should also implement ``score_tuples_with_info`` (lazy relations ask
for single pairs); one whose answers depend on the sample, not only on the image, leaves
``shares_across_samples`` False (the per-image memo then stays per sample). Importing this package
loads nothing heavy. A backend that can be fine-tuned through programs also has
``make_tuner(train_config)`` returning a :class:`vision_agents.tuning.Tuner`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neptune_core.registry import Registry
from vision_agents.aliases import VLM_ALIASES, looks_like_model_path

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from vision_agents.base import Detector, VisionAgent
    from vision_agents.captioners import Captioner
    from vision_agents.depth import DepthEstimator
    from vision_agents.segmenters import Segmenter

VLMS: Registry = Registry("vlm_model_name")
VIDEO_AGENTS: Registry = Registry("vlm_model_name (video)")  # frame-level perception; others: frame by frame
DETECTORS: Registry = Registry("od_model")
CAPTIONERS: Registry = Registry("verify.caption.captioner")
SEGMENTERS: Registry = Registry("segmenter")
DEPTH_MODELS: Registry = Registry("depth_model")

# --- vision agents -------------------------------------------------------------
VLMS.register_lazy("scene_oracle", "vision_agents.oracle:SceneOracleAgent")
VLMS.register_lazy("classic", "vision_agents.classic_agent:ClassicAgent")
for _name in VLM_ALIASES:  # transformers VLMs (config name -> hub id in vision_agents/aliases.py)
    VLMS.register_lazy(_name, "vision_agents.hf_vlm:HFVisionAgent")
VLMS.register_lazy("intern_vllm", "vision_agents.openai_vlm:OpenAIVisionAgent")
VLMS.register_lazy("openai_vlm", "vision_agents.openai_vlm:OpenAIVisionAgent")
VLMS.register_lazy("ensemble", "vision_agents.ensemble:EnsembleAgent")  # members: config ensemble.vlm_members

# --- video agents (vision_agents/video_agents.py: the frame primitives of video samples) ------
VIDEO_AGENTS.register_lazy("scene_oracle", "vision_agents.video_oracle:VideoOracleAgent")
VIDEO_AGENTS.register_lazy("classic", "vision_agents.classic_video:ClassicVideoAgent")

# --- detectors ------------------------------------------------------------------
DETECTORS.register_lazy("gt", "vision_agents.oracle:GroundTruthDetector")
DETECTORS.register_lazy("classic", "vision_agents.classic_detector:ClassicDetector")
DETECTORS.register_lazy("dino", "vision_agents.hf_detectors:GroundingDinoDetector")
DETECTORS.register_lazy("dino_tiny", "vision_agents.hf_detectors:GroundingDinoDetector")
DETECTORS.register_lazy("owlv2", "vision_agents.hf_detectors:Owlv2Detector")
DETECTORS.register_lazy("florence", "vision_agents.hf_detectors:Florence2Detector")
DETECTORS.register_lazy("florence_base", "vision_agents.hf_detectors:Florence2Detector")
DETECTORS.register_lazy("ensemble", "vision_agents.ensemble_detector:EnsembleDetector")  # ensemble.detector_members

# --- captioners (the caption verifier) -------------------------------------------
CAPTIONERS.register_lazy("florence2", "vision_agents.captioners:Florence2Captioner")
CAPTIONERS.register_lazy("hf_generate", "vision_agents.captioners:HFGenerateCaptioner")
CAPTIONERS.register_lazy("openai_vlm", "vision_agents.captioners:OpenAICaptioner")
CAPTIONERS.register_lazy("scene", "vision_agents.captioners:SceneCaptioner")

# --- segmenters (masks from boxes) and depth models (the closer() primitive) --------
SEGMENTERS.register_lazy("scene_masks", "vision_agents.scene_maps:SceneMaskSegmenter")
for _name in ("sam_base", "sam_large", "sam_huge", "sam2_tiny", "sam2_small", "sam2_base", "sam2_large"):
    SEGMENTERS.register_lazy(_name, "vision_agents.hf_segmenters:HFSegmenter")  # hub ids: hf_segmenters.py
DEPTH_MODELS.register_lazy("scene_depth", "vision_agents.scene_maps:SceneDepth")
for _name in ("depth_anything_v2_small", "depth_anything_v2_base", "depth_anything_v2_large",
              "depth_anything_v2_metric_indoor_small", "depth_anything_v2_metric_outdoor_small",
              "depth_anything_small"):  # fmt: skip
    DEPTH_MODELS.register_lazy(_name, "vision_agents.hf_depth:HFDepthEstimator")  # hub ids: hf_depth.py


def build_vision_agent(config: RunConfig) -> VisionAgent:
    """The VisionAgent named by ``config.vlm_model_name`` (a hub id or local directory: a transformers VLM)."""
    if config.vlm_model_name not in VLMS and looks_like_model_path(config.vlm_model_name):
        from vision_agents.hf_vlm import HFVisionAgent

        return HFVisionAgent.from_config(config)
    return VLMS.get(config.vlm_model_name).from_config(config)


def build_detector(config: RunConfig) -> Detector:
    """The Detector named by ``config.od_model``."""
    return DETECTORS.get(config.od_model).from_config(config)


def build_segmenter(config: RunConfig) -> Segmenter | None:
    """The segmenter named by ``config.segmenter`` (a hub id or local directory: SAM / SAM 2); None for ""."""
    if not config.segmenter:
        return None
    if config.segmenter not in SEGMENTERS and looks_like_model_path(config.segmenter):
        from vision_agents.hf_segmenters import HFSegmenter

        return HFSegmenter.from_config(config)
    return SEGMENTERS.get(config.segmenter).from_config(config)


def build_depth_model(config: RunConfig) -> DepthEstimator | None:
    """The depth model named by ``config.depth_model`` (a hub id or local directory: transformers); None for ""."""
    if not config.depth_model:
        return None
    if config.depth_model not in DEPTH_MODELS and looks_like_model_path(config.depth_model):
        from vision_agents.hf_depth import HFDepthEstimator

        return HFDepthEstimator.from_config(config)
    return DEPTH_MODELS.get(config.depth_model).from_config(config)


def build_captioner(config: RunConfig) -> Captioner:
    """The captioner named by ``config.verify.caption.captioner``."""
    return CAPTIONERS.get(config.verify.caption.captioner).from_config(config)
