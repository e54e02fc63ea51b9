"""Object masks as data: COCO run-length encoding (for result rows and the report) and mask geometry.

:func:`encode_rle` / :func:`decode_rle` use COCO's compressed RLE (``{"size": [h, w],
"counts": str}``, column-major runs starting with background), so a row's masks can be read
with ``pycocotools.mask.decode`` too. A mask here is a boolean numpy array of the image's
size, (H, W).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from neptune_core.types import Box


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a boolean (H, W) mask."""
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    flat = m.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]  # runs start with background
    out: list[str] = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = x != -1 if ch & 0x10 else x != 0
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return {"size": [int(h), int(w)], "counts": "".join(out)}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """The boolean (H, W) mask of a COCO compressed (string) or uncompressed (list) RLE."""
    h, w = (int(v) for v in rle["size"])
    raw = rle["counts"]
    if isinstance(raw, list):
        counts = [int(c) for c in raw]
    else:
        counts = []
        p = 0
        while p < len(raw):
            x, k, more = 0, 0, True
            while more:
                c = ord(raw[p]) - 48
                x |= (c & 0x1F) << (5 * k)
                more = bool(c & 0x20)
                p += 1
                k += 1
                if not more and c & 0x10:
                    x |= -1 << (5 * k)
            if len(counts) > 2:
                x += counts[-2]
            counts.append(x)
    if sum(counts) != h * w or any(c < 0 for c in counts):
        raise ValueError(f"RLE counts do not describe a {h}x{w} mask")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape((h, w), order="F")


def box_mask(box: Box, size: tuple[int, int]) -> np.ndarray:
    """The pixels of ``box`` (xyxy, pixel edges) as an (H, W) mask of an image of ``size`` (W, H)."""
    w, h = size
    x1, y1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x2, y2 = min(w, math.ceil(box[2])), min(h, math.ceil(box[3]))
    out = np.zeros((h, w), dtype=bool)
    out[y1:y2, x1:x2] = True
    return out


def crop_to_box(mask: np.ndarray, box: Box) -> np.ndarray:
    """The part of an (H, W) mask inside ``box``, as a box-sized array (rows y1..y2, columns x1..x2)."""
    h, w = mask.shape
    x1, y1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x2, y2 = min(w, math.ceil(box[2])), min(h, math.ceil(box[3]))
    return mask[y1 : max(y1, y2), x1 : max(x1, x2)]


def outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The band of ``mask`` within ``width`` pixels of its border (what an outline mark covers)."""
    if width <= 0 or not mask.any():
        return np.zeros_like(mask, dtype=bool)
    im = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255, "L")
    eroded = np.asarray(im.filter(ImageFilter.MinFilter(2 * width + 1))) > 0
    return np.asarray(mask, dtype=bool) & ~eroded


def mask_box(mask: np.ndarray) -> Box | None:
    """The tight xyxy box (pixel edges) of a mask, or None when it is empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


__all__ = ["box_mask", "crop_to_box", "decode_rle", "encode_rle", "mask_box", "outline"]
