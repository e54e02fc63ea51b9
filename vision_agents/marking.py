"""Box marking: the subject box in red and the object box in green, drawn on a copy.

The line width scales with the image (about 0.6% of the longer side, at least 2 px),
so that a box reads the same on a 480x320 CLEVR render and on a 4000x3000 photo.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from neptune_core.types import Box

SUBJECT_COLOR = (255, 0, 0)
OBJECT_COLOR = (0, 255, 0)


def line_width(image: Image.Image) -> int:
    """Box outline width in pixels for ``image``."""
    return max(2, round(0.006 * max(image.size)))


def _check_box(box: Box, image: Image.Image) -> tuple[float, float, float, float]:
    if len(box) != 4:
        raise ValueError(f"a box must be [x1, y1, x2, y2], got {box!r}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box {box!r} is not xyxy (x2 < x1 or y2 < y1)")
    w, h = image.size
    return max(0.0, x1), max(0.0, y1), min(float(w - 1), x2), min(float(h - 1), y2)


def mark_boxes(image: Image.Image, subject: Box | None = None, obj: Box | None = None) -> Image.Image:
    """A copy of ``image`` (RGB) with ``subject`` outlined in red and ``obj`` in green."""
    out = image.convert("RGB").copy()
    if subject is None and obj is None:
        return out
    draw = ImageDraw.Draw(out)
    width = line_width(out)
    for box, color in ((obj, OBJECT_COLOR), (subject, SUBJECT_COLOR)):
        if box is not None:
            draw.rectangle(_check_box(box, out), outline=color, width=width)
    return out
