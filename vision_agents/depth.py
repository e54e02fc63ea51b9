"""Depth models (config ``depth_model``): a depth map per image, a depth per object, and the soft
"closer to the camera than" relation the ``closer()`` primitive returns.

A :class:`DepthEstimator` gives a depth map of the image's size. Its ``kind`` says how to read
it: ``"distance"`` (larger is farther: metric models, the synthetic oracle) or ``"inverse"``
(larger is nearer: Depth Anything's relative models output inverse depth up to scale).
Backends: ``depth_anything_v2_small`` / ``_base`` / ``_large``, ``depth_anything_small`` (v1), the
metric ``depth_anything_v2_metric_indoor_small`` / ``_outdoor_small``, or any hub id or local
directory of a transformers depth-estimation model (vision_agents/hf_depth.py), and
``scene_depth``, the synthetic world's exact depths (vision_agents/scene_maps.py).

One depth per box (config ``depth.reduce``): the median of the map over the object's mask
(``mask_median``; over its box when the run has no segmenter), over its box (``box_median``),
or ``exact`` (a backend that knows each object's true depth, i.e. the scene oracle's object
centres). Inverse depths are turned into distances (1 / value) after the reduction.
:func:`closer_matrix` makes the relation: p(x closer than y) = sigmoid((d_y - d_x) /
(temperature * (d_x + d_y) / 2)), 0 on the diagonal.

:class:`CachedDepth` keeps the maps of the ``depth.cache_images`` most recently used images.
Add a backend: subclass :class:`DepthEstimator`, implement ``depth_map`` and ``kind``, add one
lazy line to ``DEPTH_MODELS`` in vision_agents/__init__.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from neptune_core.types import Box, Sample
from vision_agents.masks import box_mask
from vision_agents.memo import ImageLRU, image_fingerprint

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

KINDS = ("distance", "inverse")


class DepthEstimator(ABC):
    """An image -> a depth map (see the module docstring)."""

    name: str = "depth"
    kind: str = "distance"

    @classmethod
    def from_config(cls, config: RunConfig) -> DepthEstimator:
        return cls()

    def begin_sample(self, sample: Sample) -> None:  # noqa: B027 (an optional hook)
        """Called by the runner before each sample. Default: nothing."""

    def check_samples(self, samples: Sequence[Sample]) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample with the samples to run; raise a UserError if they cannot work."""

    def preflight(self) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample; load weights, raise a UserError if the backend cannot work."""

    @abstractmethod
    def depth_map(self, image: Image.Image) -> np.ndarray:
        """A float (H, W) map of the image's size, read as ``kind`` says."""

    def exact_depths(self, image: Image.Image, boxes: list[Box]) -> list[float]:
        """The true distance of each box's object (only an oracle knows it; ``depth.reduce: exact``)."""
        raise ValueError(
            f"depth model '{self.name}' has no exact per-object depths (depth.reduce 'exact' is for the scene_depth "
            "oracle); use mask_median or box_median"
        )


def reduce_depth(depth: np.ndarray, box: Box, mask: np.ndarray | None) -> tuple[float, str]:
    """The median of ``depth`` over ``mask`` (if it has pixels), else over ``box``; and which was used."""
    h, w = depth.shape
    if mask is not None and mask.any():
        return float(np.median(depth[mask])), "mask"
    region = box_mask(box, (w, h))
    if not region.any():  # a degenerate box: its nearest pixel
        x = min(max(int(box[0]), 0), w - 1)
        y = min(max(int(box[1]), 0), h - 1)
        return float(depth[y, x]), "box"
    return float(np.median(depth[region])), "box"


def as_distance(values: list[float], kind: str) -> list[float]:
    """Per-object values of a ``kind`` map as distances (larger is farther); inverse depth is inverted."""
    if kind == "distance":
        return [float(v) for v in values]
    if kind == "inverse":
        top = max([abs(v) for v in values] + [1e-12])
        return [1.0 / max(float(v), 1e-6 * top) for v in values]
    raise ValueError(f"depth kind must be one of {', '.join(KINDS)}, got {kind!r}")


def closer_matrix(distances: list[float], temperature: float) -> torch.Tensor:
    """(n, n): p(object x is closer to the camera than object y), 0 on the diagonal (see the module docstring)."""
    d = torch.tensor(distances, dtype=torch.float64)
    n = len(distances)
    if n == 0:
        return torch.zeros(0, 0)
    scale = (temperature * (d[:, None] + d[None, :]).abs() / 2).clamp_min(1e-12)
    p = torch.sigmoid((d[None, :] - d[:, None]) / scale)
    p.fill_diagonal_(0.0)
    return p.float()


class CachedDepth:
    """A depth model behind a per-image LRU of its maps. ``calls`` counts the maps computed."""

    def __init__(self, inner: DepthEstimator, *, images: int = 8) -> None:
        self.inner = inner
        self.name = inner.name
        self._maps: ImageLRU[dict[str, np.ndarray]] = ImageLRU(images, dict)
        self.calls = 0

    @property
    def kind(self) -> str:
        return self.inner.kind

    def begin_sample(self, sample: Sample) -> None:
        self.inner.begin_sample(sample)

    def check_samples(self, samples: Sequence[Sample]) -> None:
        self.inner.check_samples(samples)

    def preflight(self) -> None:
        self.inner.preflight()

    def depth_map(self, image: Image.Image) -> np.ndarray:
        store = self._maps.get(image_fingerprint(image))
        if "map" not in store:
            self.calls += 1
            depth = np.asarray(self.inner.depth_map(image), dtype=np.float32)
            if depth.shape != (image.size[1], image.size[0]):
                raise ValueError(
                    f"depth model '{self.name}' returned a {depth.shape} map for a {image.size[0]}x{image.size[1]} "
                    "image; expected (height, width)"
                )
            store["map"] = depth
        return store["map"]

    def exact_depths(self, image: Image.Image, boxes: list[Box]) -> list[float]:
        return self.inner.exact_depths(image, boxes)


__all__ = ["KINDS", "CachedDepth", "DepthEstimator", "as_distance", "closer_matrix", "reduce_depth"]
