"""Perception backends: VisionAgents (``vlm_model_name``) and Detectors (``od_model``).

Add a backend: subclass :class:`vision_agents.base.VisionAgent` (or ``Detector``)
in a module of this package, implement ``score``/``answer`` (or ``detect``) and
``from_config``, then add one lazy line to the table below. Importing this package
loads nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neptune_core.registry import Registry

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from vision_agents.base import Detector, VisionAgent

VLMS: Registry = Registry("vlm_model_name")
DETECTORS: Registry = Registry("od_model")

# --- vision agents -------------------------------------------------------------
VLMS.register_lazy("scene_oracle", "vision_agents.oracle:SceneOracleAgent")

# --- detectors ------------------------------------------------------------------
DETECTORS.register_lazy("gt", "vision_agents.oracle:GroundTruthDetector")


def build_vision_agent(config: RunConfig) -> VisionAgent:
    """The VisionAgent named by ``config.vlm_model_name``."""
    return VLMS.get(config.vlm_model_name).from_config(config)


def build_detector(config: RunConfig) -> Detector:
    """The Detector named by ``config.od_model``."""
    return DETECTORS.get(config.od_model).from_config(config)
