"""How the object a question is about is shown to the vision model: config ``marking.style``.

An :class:`ObjectMarker` marks a box tuple (``()`` the whole image, ``(subject,)``, or
``(subject, object)``) on a copy of the image, the subject in red and the object in green:

- ``box``: the boxes outlined (:func:`vision_agents.marking.mark_boxes`; the paper's marks);
- ``mask_outline``: the objects' masks outlined, as wide as a box outline;
- ``mask_overlay``: the masks tinted and outlined, everything else dimmed to
  ``overlay_dim`` of its brightness;
- ``crop``: the image cut to the tuple's boxes plus ``crop_context`` of their size on every
  side (clipped to the image), the boxes outlined in the crop.

Masks come from the run's segmenter (:class:`vision_agents.segmenters.CachedSegmenter`: each
box of an image is segmented once); an object whose mask is empty is outlined by its box.
Agents that draw marks (transformers and OpenAI-compatible VLMs) take the run's marker through
``VisionAgent.use_marker``; the ``classic`` agent, which reads an object's pixels rather than
a drawing, measures the mask instead of its own segmentation when the style is a mask style.
Only ``box`` marks have a tensor implementation (vision_agents/tensor_marking.py); a
transformers VLM draws the other styles with PIL and says so in its ``marking`` record.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from neptune_core.errors import ConfigError
from neptune_core.perception_config import MARKING_STYLES, MASK_STYLES
from neptune_core.types import Box
from vision_agents.marking import OBJECT_COLOR, SUBJECT_COLOR, line_width, mark_boxes
from vision_agents.masks import outline

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from vision_agents.segmenters import CachedSegmenter

BoxTuple = tuple[Box, ...]
TINT = 0.3  # share of the marker colour in a mask_overlay's tinted object pixels


class ObjectMarker:
    """Marks box tuples in one style (see the module docstring)."""

    def __init__(
        self,
        style: str = "box",
        segmenter: CachedSegmenter | None = None,
        *,
        crop_context: float = 0.5,
        overlay_dim: float = 0.35,
    ) -> None:
        if style not in MARKING_STYLES:
            raise ConfigError(f"unknown marking.style '{style}'; known: {', '.join(MARKING_STYLES)}")
        if style in MASK_STYLES and segmenter is None:
            raise ConfigError(
                f"marking.style '{style}' needs masks: set segmenter (sam_base, sam2_large, ..., or scene_masks on the "
                "synthetic world)"
            )
        self.style = style
        self.segmenter = segmenter
        self.crop_context = float(crop_context)
        self.overlay_dim = float(overlay_dim)

    @classmethod
    def from_config(cls, config: RunConfig, segmenter: CachedSegmenter | None) -> ObjectMarker:
        m = config.marking
        return cls(m.style, segmenter, crop_context=m.crop_context, overlay_dim=m.overlay_dim)

    @property
    def uses_masks(self) -> bool:
        return self.style in MASK_STYLES

    @property
    def tensor_marks(self) -> bool:
        """Whether marks can be drawn into a processor's pixel tensor (only box outlines can)."""
        return self.style == "box"

    def describe(self) -> str:
        seg = f" (masks: {self.segmenter.name})" if self.uses_masks and self.segmenter is not None else ""
        return self.style + seg

    # ---- masks ---------------------------------------------------------------------------
    def prepare(self, image: Image.Image, tuples: list[BoxTuple]) -> None:
        """Segment the boxes of ``tuples`` not segmented yet on this image, in one call (mask styles only)."""
        if self.uses_masks and self.segmenter is not None:
            boxes = list({tuple(float(v) for v in b): list(b) for t in tuples for b in t}.values())
            if boxes:
                self.segmenter.masks(image, boxes)

    def mask(self, image: Image.Image, box: Box) -> np.ndarray:
        """The segmenter's mask of ``box`` (H, W) bool."""
        if self.segmenter is None:
            raise ConfigError("no segmenter configured: masks need the segmenter setting")
        return self.segmenter.masks(image, [box])[0]

    # ---- drawing -------------------------------------------------------------------------
    def mark(self, image: Image.Image, boxes: BoxTuple) -> Image.Image:
        """A marked copy of ``image`` (RGB) for the tuple ``boxes`` (subject first)."""
        if len(boxes) > 2:
            raise ValueError(f"a mark is for at most 2 boxes (subject, object), got {len(boxes)}")
        if not boxes:
            return image.convert("RGB").copy()
        if self.style == "box":
            return mark_boxes(image, *boxes)
        if self.style == "crop":
            return self._crop(image, boxes)
        return self._masks(image, boxes)

    def _crop(self, image: Image.Image, boxes: BoxTuple) -> Image.Image:
        w, h = image.size
        x1, y1 = min(float(b[0]) for b in boxes), min(float(b[1]) for b in boxes)
        x2, y2 = max(float(b[2]) for b in boxes), max(float(b[3]) for b in boxes)
        mx, my = self.crop_context * (x2 - x1), self.crop_context * (y2 - y1)
        left, top = max(0, math.floor(x1 - mx)), max(0, math.floor(y1 - my))
        right, bottom = min(w, math.ceil(x2 + mx)), min(h, math.ceil(y2 + my))
        if right - left < 2 or bottom - top < 2:
            left, top, right, bottom = 0, 0, w, h
        shifted = [[b[0] - left, b[1] - top, b[2] - left, b[3] - top] for b in boxes]
        return mark_boxes(image.convert("RGB").crop((left, top, right, bottom)), *shifted)

    def _masks(self, image: Image.Image, boxes: BoxTuple) -> Image.Image:
        self.prepare(image, [boxes])
        arr = np.asarray(image.convert("RGB"), dtype=np.float32)
        width = line_width(image)
        masks = [self.mask(image, b) for b in boxes]
        colours = [SUBJECT_COLOR, OBJECT_COLOR][: len(boxes)]
        if self.style == "mask_overlay":
            union = np.zeros(arr.shape[:2], dtype=bool)
            for m in masks:
                union |= m
            arr[~union] *= self.overlay_dim
            for m, c in zip(masks, colours, strict=True):
                arr[m] = (1 - TINT) * arr[m] + TINT * np.asarray(c, dtype=np.float32)
        out = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")
        empty = [(b, c) for b, m, c in zip(boxes, masks, colours, strict=True) if not m.any()]
        drawn = np.asarray(out).copy()
        for m, c in reversed(list(zip(masks, colours, strict=True))):  # the object first, the subject over it
            drawn[outline(m, width)] = c
        out = Image.fromarray(drawn, "RGB")
        for b, c in reversed(empty):  # no mask: the box outline instead
            out = mark_boxes(out, b) if c == SUBJECT_COLOR else mark_boxes(out, None, b)
        return out


BOX_MARKER = ObjectMarker()  # the default: box outlines, no segmenter


__all__ = ["BOX_MARKER", "ObjectMarker"]
