"""The detection cache: boxes reused per (image, object names, detector settings).

CLEVR asks about ten questions per image, and a detector prompted with the same names on
the same image returns the same boxes, so :class:`CachedDetector` keeps the detections of
the ``images`` most recently used images (an LRU over images, each holding one entry per
tuple of object names) and counts a detection (:mod:`vision_agents.calls`) only when the
wrapped detector runs. The detector's settings are part of the key (``settings``: the
``od_*`` fields of the run config), so one cache never mixes two configurations.
A detector that is not ``cacheable`` (it reads the sample, like ``gt``: by default any detector
that overrides ``begin_sample``) is called every time.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from PIL import Image

from neptune_core.types import Detection, Sample
from vision_agents.base import Detector
from vision_agents.calls import count
from vision_agents.memo import ImageLRU, image_fingerprint

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


def detector_settings(config: RunConfig) -> tuple[Any, ...]:
    """What a detection depends on besides the image and the names: the detector and its thresholds."""
    return (
        config.od_model,
        config.od_box_threshold,
        config.od_text_threshold,
        config.od_nms_iou,
        config.device,
        repr(config.ensemble.detector_members) if config.od_model == "ensemble" else None,
    )


class CachedDetector(Detector):
    """``inner`` behind a per-image LRU of detections (see the module docstring)."""

    def __init__(self, inner: Detector, *, images: int = 8, settings: tuple[Any, ...] = ()) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = settings
        self.images = images
        self._cache: ImageLRU[dict[tuple, Detection]] = ImageLRU(images, dict)
        self.hits = 0
        self.misses = 0

    @property
    def cacheable(self) -> bool:
        return self.inner.cacheable

    def begin_sample(self, sample: Sample) -> None:
        self.inner.begin_sample(sample)

    def preflight(self) -> None:
        self.inner.preflight()

    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        if not self.inner.cacheable or self.images == 0:
            return self._run(image, object_names)
        store = self._cache.get(image_fingerprint(image))
        key = (self.settings, tuple(object_names))
        if key in store:
            self.hits += 1
            return copy.deepcopy(store[key])  # callers may change their copy
        store[key] = self._run(image, object_names)
        return copy.deepcopy(store[key])

    def _run(self, image: Image.Image, object_names: list[str]) -> Detection:
        self.misses += 1
        if not self.inner.counts_own_calls:
            count(detections=1)
        return self.inner.detect(image, object_names)
