"""The masks of a sample's page: what the segmenter made of each box (row ``masks``, runners/base.py).

A run with a ``segmenter`` records every box's mask as COCO RLE (vision_agents/masks.py) with
the segmenter's name and the marking style. The sample page then draws the image with each
mask tinted in its box's colour (the numbered boxes on top, as without masks) and a line
saying which segmenter made them, how the VLM was shown the objects, and how many pixels
each mask has (an empty mask: that box was marked by its outline). A mask that cannot be
decoded is named, not drawn. A sample with several images has masks for its first image only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from analysis.report_assets import _BOX_COLOURS, esc
from vision_agents.masks import decode_rle

TINT = 0.45  # share of the box colour in a mask's pixels


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)


def decoded_masks(row: dict[str, Any], size: tuple[int, int]) -> list[np.ndarray | None]:
    """The row's masks (None for one that is unreadable or not of the image's ``size`` (W, H))."""
    record = row.get("masks")
    rles = record.get("rle") if isinstance(record, dict) else None
    out: list[np.ndarray | None] = []
    for rle in rles if isinstance(rles, list) else []:
        try:
            m = decode_rle(rle)
        except (ValueError, TypeError, KeyError, AttributeError):
            m = None
        out.append(m if m is not None and m.shape == (size[1], size[0]) else None)
    return out


def masked_image(image: Image.Image | None, row: dict[str, Any]) -> Image.Image | None:
    """``image`` with every decodable mask of the row tinted in its box's colour (the image itself without masks)."""
    if image is None or not isinstance(row.get("masks"), dict):
        return image
    masks = decoded_masks(row, image.size)
    if not any(m is not None for m in masks):
        return image
    arr = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    for i, m in enumerate(masks):
        if m is not None:
            arr[m] = (1 - TINT) * arr[m] + TINT * _rgb(_BOX_COLOURS[i % len(_BOX_COLOURS)])
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


def with_masks(image: Image.Image | list[Image.Image] | None, row: dict[str, Any]) -> Any:
    """What the page draws: the first image with the row's masks (they are image 0's), any others as they are."""
    if isinstance(image, list):
        return [masked_image(image[0], row), *image[1:]] if image else image
    return masked_image(image, row)


def masks_caption(row: dict[str, Any], image: Image.Image | list[Image.Image] | None) -> str:
    """One table row about the masks ("" for a run without a segmenter); they are image 0's."""
    if isinstance(image, list):
        image = image[0] if image else None
    record = row.get("masks")
    if not isinstance(record, dict):
        return ""
    size = image.size if image is not None else (0, 0)
    masks = decoded_masks(row, size) if image is not None else []
    pixels = ", ".join(f"#{i}: {'?' if m is None else int(m.sum())}" for i, m in enumerate(masks))
    unreadable = sum(m is None for m in masks)
    note = f' <span class="err">{unreadable} unreadable</span>' if unreadable else ""
    return (
        f"<tr><th>masks</th><td>segmenter {esc(record.get('segmenter'))}, marking {esc(record.get('marking'))}"
        f'{note}<div class="muted">pixels {esc(pixels or "(image not available)")}</div></td></tr>'
    )


__all__ = ["decoded_masks", "masked_image", "masks_caption", "with_masks"]
