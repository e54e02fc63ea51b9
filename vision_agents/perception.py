"""A run's object perception beyond boxes: masks (``segmenter``), depths (``depth_model``) and the
marking style (``marking``), built once per run from the config and shared by everything that
needs them: the VisionAgent (marks), the ``closer()`` primitive (depths over masks), the result
row and the report (masks).

The runner builds a :class:`Perception` (``Perception.from_config``), hands its marker to the
agent (``VisionAgent.use_marker``), checks it in the preflight, calls ``begin_sample`` before
each sample, records each row's masks (:meth:`Perception.mask_record`) and passes it to the
executor, whose ``CallContext`` carries it to the primitives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from neptune_core.errors import ConfigError
from neptune_core.perception_config import DepthConfig
from neptune_core.types import Box, Sample
from vision_agents.depth import CachedDepth, DepthEstimator, as_distance, closer_matrix, reduce_depth
from vision_agents.masks import encode_rle
from vision_agents.object_marking import ObjectMarker
from vision_agents.segmenters import CachedSegmenter

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

NO_DEPTH = (
    "no depth model is configured: set depth_model (depth_anything_v2_small, ..., a hub id, or scene_depth on the "
    "synthetic world)"
)


@dataclass
class Perception:
    """Segmenter, depth model and marker of one run (see the module docstring)."""

    segmenter: CachedSegmenter | None = None
    depth: CachedDepth | None = None
    marker: ObjectMarker = field(default_factory=ObjectMarker)
    depth_config: DepthConfig = field(default_factory=DepthConfig)

    @classmethod
    def from_config(cls, config: RunConfig) -> Perception:
        """Build the named backends (an unknown name fails here, listing the known ones); load nothing yet."""
        from vision_agents import build_depth_model, build_segmenter

        seg = build_segmenter(config)
        segmenter = CachedSegmenter(seg, images=config.marking.mask_cache_images) if seg is not None else None
        est = build_depth_model(config)
        depth = CachedDepth(est, images=config.depth.cache_images) if est is not None else None
        if config.depth.reduce == "exact" and est is not None and type(est).exact_depths is DepthEstimator.exact_depths:
            raise ConfigError(f"depth.reduce 'exact' needs the scene_depth oracle, not depth_model '{est.name}'")
        return cls(segmenter, depth, ObjectMarker.from_config(config, segmenter), config.depth)

    @property
    def components(self) -> list[Any]:
        return [c for c in (self.segmenter, self.depth) if c is not None]

    # ---- the run's hooks -------------------------------------------------------------------
    def check_available(self) -> None:
        """Preflight, first part: each backend's weights can be had (no loading)."""
        for c in self.components:
            quick = getattr(c.inner, "check_available", None)
            if quick is not None:
                quick()

    def preflight(self, samples: Sequence[Sample] = ()) -> None:
        """Preflight, second part: the samples suit the backends (oracles need scenes); weights load."""
        for c in self.components:
            c.check_samples(samples)
            c.preflight()

    def begin_sample(self, sample: Sample) -> None:
        for c in self.components:
            c.begin_sample(sample)

    # ---- masks -------------------------------------------------------------------------------
    def mask_record(self, image: Image.Image, boxes: list[Box]) -> dict[str, Any] | None:
        """Every box's mask (segmented once per image and box) as the row's ``masks``; None without a segmenter."""
        if self.segmenter is None or not boxes:
            return None
        masks = self.segmenter.masks(image, boxes)
        return {
            "segmenter": self.segmenter.name,
            "marking": self.marker.style,
            "rle": [encode_rle(m) for m in masks],
        }

    # ---- depth -------------------------------------------------------------------------------
    def object_depths(self, image: Image.Image, boxes: list[Box]) -> tuple[list[float], dict[str, Any]]:
        """One distance per box (larger is farther; see vision_agents/depth.py) and what it was made from."""
        if self.depth is None:
            raise ConfigError(NO_DEPTH)
        reduce = self.depth_config.reduce
        info: dict[str, Any] = {"depth_model": self.depth.name, "reduce": reduce}
        if not boxes:
            return [], info
        if reduce == "exact":
            return [float(v) for v in self.depth.exact_depths(image, boxes)], info
        depth = self.depth.depth_map(image)
        masks = self.segmenter.masks(image, boxes) if reduce == "mask_median" and self.segmenter is not None else None
        values, regions = [], []
        for i, box in enumerate(boxes):
            v, where = reduce_depth(depth, box, None if masks is None else masks[i])
            values.append(v)
            regions.append(where)
        info["over"] = regions
        info["kind"] = self.depth.kind
        return as_distance(values, self.depth.kind), info

    def closer(self, image: Image.Image, boxes: list[Box]) -> tuple[torch.Tensor, list[float], dict[str, Any]]:
        """p(x closer to the camera than y) over the boxes (n, n), the distances, and the info for the trace."""
        distances, info = self.object_depths(image, boxes)
        info["temperature"] = self.depth_config.temperature
        return closer_matrix(distances, self.depth_config.temperature), distances, info


__all__ = ["NO_DEPTH", "Perception"]
