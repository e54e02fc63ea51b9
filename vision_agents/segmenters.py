"""Segmenters (config ``segmenter``): one mask per detected box, for mask marking and per-object depth.

A :class:`Segmenter` turns boxes into boolean masks of the image's size, prompted with each
box. Backends: ``sam_base`` / ``sam_large`` / ``sam_huge`` (Segment Anything) and
``sam2_tiny`` / ``sam2_small`` / ``sam2_base`` / ``sam2_large`` (SAM 2.1) through transformers
(vision_agents/hf_segmenters.py; a hub id or local directory of either family works too),
and ``scene_masks``, the synthetic world's exact visible masks (vision_agents/scene_maps.py).

:class:`CachedSegmenter` is what the run uses: masks are kept per (image, box) for the
``marking.mask_cache_images`` most recently used images, so each box of an image is
segmented once however many questions, programs and agents ask for it; the boxes an image
still lacks are segmented in one call. Add a backend: subclass :class:`Segmenter`, implement
``segment`` (and ``preflight`` / ``check_available`` if it loads weights), add one lazy line
to ``SEGMENTERS`` in vision_agents/__init__.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from neptune_core.types import Box, Sample
from vision_agents.base import box_key
from vision_agents.memo import ImageLRU, image_fingerprint

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


class Segmenter(ABC):
    """Boxes -> masks (see the module docstring)."""

    name: str = "segmenter"

    @classmethod
    def from_config(cls, config: RunConfig) -> Segmenter:
        return cls()

    def begin_sample(self, sample: Sample) -> None:  # noqa: B027 (an optional hook)
        """Called by the runner before each sample. Default: nothing."""

    def check_samples(self, samples: Sequence[Sample]) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample with the samples to run; raise a UserError if they cannot work."""

    def preflight(self) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample; load weights, raise a UserError if the backend cannot work."""

    @abstractmethod
    def segment(self, image: Image.Image, boxes: list[Box]) -> list[np.ndarray]:
        """One boolean (H, W) mask per box (prompted with that box), in order."""


class CachedSegmenter:
    """A segmenter behind a per-image, per-box cache (see the module docstring). ``calls`` counts backend calls."""

    def __init__(self, inner: Segmenter, *, images: int = 8) -> None:
        self.inner = inner
        self.name = inner.name
        self._cache: ImageLRU[dict[tuple, np.ndarray]] = ImageLRU(images, dict)
        self.calls = 0

    def begin_sample(self, sample: Sample) -> None:
        self.inner.begin_sample(sample)

    def check_samples(self, samples: Sequence[Sample]) -> None:
        self.inner.check_samples(samples)

    def preflight(self) -> None:
        self.inner.preflight()

    def masks(self, image: Image.Image, boxes: list[Box]) -> list[np.ndarray]:
        """The mask of every box, segmenting (in one call) only the boxes not seen on this image yet."""
        store = self._cache.get(image_fingerprint(image))
        keys = [box_key(b) for b in boxes]
        todo = list({k: b for k, b in zip(keys, boxes, strict=True) if k not in store}.items())
        if todo:
            self.calls += 1
            masks = self.inner.segment(image, [list(b) for _, b in todo])
            h, w = image.size[1], image.size[0]
            if len(masks) != len(todo) or any(np.shape(m) != (h, w) for m in masks):
                raise ValueError(
                    f"segmenter '{self.name}' returned {len(masks)} masks of shapes {[np.shape(m) for m in masks][:3]} "
                    f"for {len(todo)} boxes on a {w}x{h} image; expected one ({h}, {w}) mask per box"
                )
            for (k, _), m in zip(todo, masks, strict=True):
                store[k] = np.asarray(m, dtype=bool)
        return [store[k] for k in keys]

    def known(self, image: Image.Image, boxes: list[Box]) -> list[np.ndarray | None]:
        """The masks already computed for ``boxes`` on ``image`` (None where not), computing nothing."""
        key = image_fingerprint(image)
        if key not in self._cache:
            return [None] * len(boxes)
        store = self._cache.get(key)
        return [store.get(box_key(b)) for b in boxes]

    def clear(self) -> None:
        self._cache.clear()


__all__ = ["CachedSegmenter", "Segmenter"]
