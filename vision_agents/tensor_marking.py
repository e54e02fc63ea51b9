"""Marking boxes in the processor's pixel tensor: preprocess an image once, not once per box.

Scoring n boxes used to draw n marked copies of the image with PIL and run the image
processor on each (resize, tiles, normalise, patchify): on a small model most of the time
went there. :class:`TensorMarker` runs the processor once and draws each box's mark into
the already-resized pixel tensor instead, with the same colours and line widths as
:func:`vision_agents.marking.mark_boxes`, at the processor's scale.

How a mark lands in the tensor. The pixel tensor is read as *planes* (3 x h x w pictures:
an image, or one tile or thumbnail of it; Qwen2-VL's flattened patches are folded back into
one). Each plane is a resampled window of the original image: its column j samples the
source around ``x = ax + bx * (j + 0.5)`` (likewise for rows). The mark is rasterised exactly
as PIL draws it (PIL draws it, on a small mask around the box); its coverage of each plane
pixel is that mask resampled with the processor's filter (PIL's kernels: bicubic, bilinear,
box, lanczos, hamming, support scaled when shrinking); the pixel becomes
``(1 - coverage) * pixel + coverage * colour`` with the colour normalised as the processor
normalises. Only near the box's edges does this differ from processing a marked image:
there the filter blends the mark with the neighbouring pixels (``resample(mark * image)``
becomes ``resample(mark) * resample(image)``).

Nothing about a processor is hard-coded beyond the two layouts: the geometry (``ax, bx,
ay, by`` of every plane) and the normalisation are measured once per (processor, image
size) by running the processor on probe images (black, white, a horizontal and a vertical
ramp), and checked: a mark drawn both ways on a probe must agree within
:data:`PROBE_TOLERANCE`. A processor whose output does not fit (padding, another layout)
gets no marker, and the caller marks with PIL as before (``TensorMarker.probe`` says why).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from neptune_core.types import Box
from vision_agents.marking import OBJECT_COLOR, SUBJECT_COLOR, _check_box, line_width, mark_boxes

PROBE_TOLERANCE = 0.08  # mean |tensor mark - PIL mark| over the changed pixels, in units of the normaliser's range


# ---- PIL's resampling kernels (libImaging/Resample.c) ------------------------------------------
def _bicubic(x: torch.Tensor) -> torch.Tensor:
    a = -0.5
    x = x.abs()
    return torch.where(
        x < 1, ((a + 2) * x - (a + 3)) * x * x + 1, torch.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0)
    )


def _bilinear(x: torch.Tensor) -> torch.Tensor:
    return (1 - x.abs()).clamp(min=0)


def _box(x: torch.Tensor) -> torch.Tensor:
    return ((x >= -0.5) & (x < 0.5)).to(x.dtype)


def _sinc(x: torch.Tensor) -> torch.Tensor:
    safe = torch.where(x == 0, torch.ones_like(x), x)
    return torch.where(x == 0, torch.ones_like(x), torch.sin(math.pi * safe) / (math.pi * safe))


def _lanczos(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x.abs() < 3, _sinc(x) * _sinc(x / 3), 0.0)


def _hamming(x: torch.Tensor) -> torch.Tensor:
    x = x.abs()
    return torch.where(x < 1, _sinc(x) * (0.54 + 0.46 * torch.cos(math.pi * x)), 0.0)


# PIL resample code -> (kernel, support); NEAREST is read as BOX (its coverage of a mark is the same)
KERNELS: dict[int, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    0: (_box, 0.5),
    1: (_lanczos, 3.0),
    2: (_bilinear, 1.0),
    3: (_bicubic, 2.0),
    4: (_box, 0.5),
    5: (_hamming, 1.0),
}


def resample_weights(centers: torch.Tensor, scale: float, size: int, lo: int, hi: int, kernel: int) -> torch.Tensor:
    """Weights of source pixels ``lo..hi-1`` in the outputs sampled at ``centers``, as PIL computes them.

    ``scale``: source pixels per output pixel. The kernel is widened by ``scale`` when
    shrinking and normalised over the source pixels inside ``[0, size)``.
    """
    fn, support = KERNELS.get(int(kernel), KERNELS[2])
    ss = max(scale, 1.0)
    reach = support * ss
    first = (centers - reach).floor().clamp(0, size)
    last = (centers + reach).ceil().clamp(0, size)
    span = int((last - first).max().item()) if len(centers) else 0
    j = first[:, None] + torch.arange(max(span, 1), dtype=centers.dtype)[None, :]
    total = (fn((j + 0.5 - centers[:, None]) / ss) * (j < last[:, None])).sum(1, keepdim=True)
    jl = torch.arange(lo, hi, dtype=centers.dtype)[None, :]
    inside = (jl >= first[:, None]) & (jl < last[:, None])
    return fn((jl + 0.5 - centers[:, None]) / ss) * inside / total.clamp_min(1e-12)


# ---- the mark as PIL rasterises it --------------------------------------------------------------
class _SizedStub:
    """Just enough of an image for :func:`vision_agents.marking._check_box` (its ``size``)."""

    def __init__(self, w: int, h: int) -> None:
        self.size = (w, h)


def mark_mask(box: Box, image_size: tuple[int, int]) -> tuple[int, int, np.ndarray]:
    """(x0, y0, mask): the pixels PIL's outline of ``box`` covers, drawn by PIL on a small window at (x0, y0)."""
    w, h = image_size
    stub = _SizedStub(w, h)
    width = line_width(stub)  # type: ignore[arg-type]
    x1, y1, x2, y2 = _check_box(box, stub)  # type: ignore[arg-type]
    ox, oy = max(0, int(x1) - width - 1), max(0, int(y1) - width - 1)
    ww = min(w, int(x2) + width + 2) - ox
    hh = min(h, int(y2) + width + 2) - oy
    mask = Image.new("L", (max(ww, 1), max(hh, 1)), 0)
    ImageDraw.Draw(mask).rectangle((x1 - ox, y1 - oy, x2 - ox, y2 - oy), outline=255, width=width)
    return ox, oy, np.asarray(mask, dtype=np.float32) / 255.0


Rect = tuple[int, int, int, int]  # rows r0..r1 and columns c0..c1, inclusive


def outline_rects(box: Box, image_size: tuple[int, int]) -> list[Rect]:
    """The outline PIL draws for ``box`` as disjoint rectangles of source pixels.

    A box at least twice the line width across is four bands (PIL's rule, exactly); a thinner
    one, where PIL's bands overlap and spill, is drawn by PIL on a small mask and cut into runs.
    """
    w, h = image_size
    stub = _SizedStub(w, h)
    lw = line_width(stub)  # type: ignore[arg-type]
    x1, y1, x2, y2 = _check_box(box, stub)  # type: ignore[arg-type]
    c0, r0, c1, r1 = int(x1), int(y1), int(x2), int(y2)
    if c1 - c0 + 1 >= 2 * lw and r1 - r0 + 1 >= 2 * lw:
        bands = [(r0, r0 + lw - 1, c0, c1), (r1 - lw + 1, r1, c0, c1)]
        if r0 + lw <= r1 - lw:
            bands += [(r0 + lw, r1 - lw, c0, c0 + lw - 1), (r0 + lw, r1 - lw, c1 - lw + 1, c1)]
        return bands
    ox, oy, mask = mark_mask(box, image_size)
    rects: list[Rect] = []
    row = 0
    while row < mask.shape[0]:
        end = row
        while end + 1 < mask.shape[0] and np.array_equal(mask[end + 1], mask[row]):
            end += 1
        on = np.flatnonzero(mask[row] > 0)
        if len(on):
            breaks = np.flatnonzero(np.diff(on) > 1)
            for a, b in zip(np.r_[0, breaks + 1], np.r_[breaks, len(on) - 1], strict=True):
                rects.append((oy + row, oy + end, ox + int(on[a]), ox + int(on[b])))
        row = end + 1
    return rects


# ---- layouts: the pixel tensor as planes ---------------------------------------------------------
class _Layout:
    """Reads a batch of items' pixel tensors as planes ``(items, planes, 3, h, w)`` and writes them back."""

    def planes(self, pixels: torch.Tensor, items: int) -> torch.Tensor:
        raise NotImplementedError

    def tensor(self, planes: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _CHW(_Layout):
    """``(..., 3, h, w)``: images, tiles and thumbnails as they are (LLaVA, InternVL, Ovis2, SmolVLM...)."""

    def planes(self, pixels: torch.Tensor, items: int) -> torch.Tensor:
        return pixels.reshape(items, -1, *pixels.shape[-3:])

    def tensor(self, planes: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return planes.reshape(like.shape)


@dataclass
class _QwenPatches(_Layout):
    """Qwen2-VL's ``(grid_h * grid_w, 3 * t * p * p)`` patches, in merge-window order, folded into one plane."""

    grid_h: int
    grid_w: int
    patch: int
    merge: int
    temporal: int

    def planes(self, pixels: torch.Tensor, items: int) -> torch.Tensor:
        m, p = self.merge, self.patch
        x = pixels.reshape(items, self.grid_h // m, self.grid_w // m, m, m, 3, self.temporal, p, p)
        x = x[:, :, :, :, :, :, 0].permute(0, 5, 1, 3, 6, 2, 4, 7)  # the temporal copies are equal
        return x.reshape(items, 1, 3, self.grid_h * p, self.grid_w * p)

    def tensor(self, planes: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        m, p = self.merge, self.patch
        items = planes.shape[0]
        x = planes.reshape(items, 3, self.grid_h // m, m, p, self.grid_w // m, m, p).permute(0, 2, 5, 3, 6, 1, 4, 7)
        x = x.unsqueeze(6).expand(*x.shape[:6], self.temporal, p, p)
        return x.reshape(like.shape)


def _layout(encoding: dict[str, Any], image_processor: Any) -> _Layout | None:
    pixels = encoding.get("pixel_values")
    if not torch.is_tensor(pixels):
        return None
    grid = encoding.get("image_grid_thw")
    if torch.is_tensor(grid) and pixels.dim() == 2 and grid.shape == (1, 3):
        t, gh, gw = (int(v) for v in grid[0])
        patch = int(getattr(image_processor, "patch_size", 14) or 14)
        merge = int(getattr(image_processor, "merge_size", 2) or 2)
        temporal = int(getattr(image_processor, "temporal_patch_size", 2) or 2)
        if t != 1 or pixels.shape != (gh * gw, 3 * temporal * patch * patch):
            return None
        return _QwenPatches(gh, gw, patch, merge, temporal)
    if pixels.dim() >= 4 and pixels.shape[-3] == 3:
        return _CHW()
    return None


# ---- the marker --------------------------------------------------------------------------------
@dataclass
class _Plane:
    ax: float  # source x of column j's centre: ax + bx * (j + 0.5)
    bx: float
    ay: float
    by: float
    low: torch.Tensor  # (3,) the normalised value of 0 per channel
    span: torch.Tensor  # (3,) normalised(255) - normalised(0) per channel


class TensorMarker:
    """Draws marks into one processor's pixel tensor for images of one size (see the module docstring)."""

    def __init__(
        self,
        layout: _Layout,
        planes: list[_Plane],
        image_size: tuple[int, int],
        kernel: int,
        plane_shape: tuple[int, int],
    ) -> None:
        self.layout = layout
        self.planes = planes
        self.image_size = image_size
        self.kernel = kernel
        self.plane_shape = plane_shape  # (h, w) of every plane
        self._sums: dict[tuple[int, str], torch.Tensor] = {}

    # ---- measuring the processor -------------------------------------------------------------
    @classmethod
    def probe(cls, encode: Callable[[Image.Image], dict[str, Any]], image_processor: Any,
              image_size: tuple[int, int]) -> tuple[TensorMarker | None, str]:  # fmt: skip
        """A marker for ``encode`` (image -> the processor's output for it), or None and the reason."""
        w, h = image_size
        if w < 8 or h < 8:
            return None, f"image {w}x{h} is too small to measure"
        black = encode(Image.new("RGB", image_size, (0, 0, 0)))
        layout = _layout(black, image_processor)
        if layout is None:
            return None, f"pixel tensor layout not understood ({type(image_processor).__name__})"
        white = encode(Image.new("RGB", image_size, (255, 255, 255)))
        xs = np.round(255.0 * (np.arange(w) + 0.5) / w).astype(np.uint8)
        ys = np.round(255.0 * (np.arange(h) + 0.5) / h).astype(np.uint8)
        ramp_x = Image.fromarray(np.repeat(np.tile(xs, (h, 1))[:, :, None], 3, axis=2), "RGB")
        ramp_y = Image.fromarray(np.repeat(np.tile(ys[:, None], (1, w))[:, :, None], 3, axis=2), "RGB")
        try:
            p0 = layout.planes(black["pixel_values"], 1)[0].double()
            p1 = layout.planes(white["pixel_values"], 1)[0].double()
            px = layout.planes(encode(ramp_x)["pixel_values"], 1)[0].double()
            py = layout.planes(encode(ramp_y)["pixel_values"], 1)[0].double()
        except (RuntimeError, ValueError) as e:
            return None, f"pixel tensor layout not understood: {e}"
        planes = []
        for k in range(p0.shape[0]):
            low, span = p0[k].mean((1, 2)), (p1[k] - p0[k]).mean((1, 2))
            if (span.abs() < 1e-6).any() or (p0[k] - low[:, None, None]).abs().max() > 1e-3 * span.abs().min():
                return None, "the processor does not normalise every pixel alike (padding?)"
            fx = ((px[k] - low[:, None, None]) / span[:, None, None]).mean((0, 1)) * w  # source x per column
            fy = ((py[k] - low[:, None, None]) / span[:, None, None]).mean((0, 2)) * h  # source y per row
            fit_x, fit_y = _fit(fx, w), _fit(fy, h)
            if fit_x is None or fit_y is None:
                return None, "a plane is not a resampled window of the image"
            planes.append(_Plane(*fit_x, *fit_y, low.float(), span.float()))
        resample = getattr(image_processor, "resample", None)
        kernel = int(resample) if resample is not None else 3
        marker = cls(layout, planes, image_size, kernel, (int(p0.shape[-2]), int(p0.shape[-1])))
        return marker.check(encode)

    def check(self, encode: Callable[[Image.Image], dict[str, Any]]) -> tuple[TensorMarker | None, str]:
        """Mark a probe both ways (tensor, PIL); the marker if they agree within PROBE_TOLERANCE."""
        w, h = self.image_size
        rng = np.random.default_rng(0)
        probe = Image.fromarray(rng.integers(64, 192, size=(h, w, 3), dtype=np.uint8), "RGB")
        subject = [0.2 * w, 0.25 * h, 0.6 * w, 0.7 * h]
        obj = [0.45 * w, 0.1 * h, 0.9 * w, 0.5 * h]
        base = encode(probe)["pixel_values"]
        ours = self.mark(base, subject, obj)
        theirs = encode(mark_boxes(probe, subject, obj))["pixel_values"]
        changed = (theirs - base).abs() > 1e-6
        if not bool(changed.any()):
            return None, "a probe mark left no trace in the pixel tensor"
        span = float(torch.stack([p.span.abs() for p in self.planes]).mean())
        err = float((ours - theirs).abs()[changed].mean()) / span
        if err > PROBE_TOLERANCE:
            return None, f"tensor marks differ from PIL marks by {err:.3f} of the pixel range (> {PROBE_TOLERANCE})"
        return self, f"tensor marks agree with PIL marks within {err:.3f} of the pixel range"

    # ---- drawing ---------------------------------------------------------------------------
    def mark(self, pixels: torch.Tensor, subject: Box | None = None, obj: Box | None = None) -> torch.Tensor:
        """A copy of ``pixels`` (one image of this marker's size) with ``subject`` in red and ``obj`` in green."""
        out = pixels.clone()
        if subject is not None or obj is not None:
            self._draw(out, [subject], [obj])
        return out

    def mark_(self, pixels: torch.Tensor, items: list[tuple[Box, ...]]) -> None:
        """Draw each item's marks into its part of ``pixels`` (the items' tensors concatenated), in place.

        An item is ``()`` (no mark), ``(subject,)`` (red) or ``(subject, object)`` (object green,
        then subject red over it, as PIL draws them).
        """
        self._draw(pixels, [t[0] if t else None for t in items], [t[1] if len(t) > 1 else None for t in items])

    def _sums_of(self, k: int, axis: str) -> torch.Tensor:
        """Plane ``k``'s resampling weights along ``axis``, summed over source pixels 0..i-1 (cached)."""
        key = (k, axis)
        if key not in self._sums:
            plane = self.planes[k]
            h, w = self.plane_shape
            a, b, n, size = (plane.ax, plane.bx, w, self.image_size[0]) if axis == "x" else (
                plane.ay, plane.by, h, self.image_size[1])  # fmt: skip
            centers = a + b * (torch.arange(n, dtype=torch.float64) + 0.5)
            weights = resample_weights(centers, b, size, 0, size, self.kernel)
            self._sums[key] = torch.cat([torch.zeros(n, 1, dtype=torch.float64), weights.cumsum(1)], 1).float()
        return self._sums[key]

    def _rects(self, boxes: list[Box | None]) -> torch.Tensor:
        """(items, rectangles, 4) outline rectangles, padded with empty ones (rows 0..-1)."""
        per = [outline_rects(b, self.image_size) if b is not None else [] for b in boxes]
        most = max((len(r) for r in per), default=0)
        out = torch.tensor([[0, -1, 0, -1]], dtype=torch.long).repeat(len(boxes), max(most, 1), 1)
        for i, rects in enumerate(per):
            if rects:
                out[i, : len(rects)] = torch.tensor(rects, dtype=torch.long)
        return out

    def _draw(self, pixels: torch.Tensor, subjects: list[Box | None], objects: list[Box | None]) -> None:
        items = len(subjects)
        planes = self.layout.planes(pixels, items)
        in_place = planes.untyped_storage().data_ptr() == pixels.untyped_storage().data_ptr()
        for boxes, color in ((objects, OBJECT_COLOR), (subjects, SUBJECT_COLOR)):
            if all(b is None for b in boxes):
                continue
            rects = self._rects(boxes)
            r0, r1, c0, c1 = rects.unbind(-1)
            for k, plane in enumerate(self.planes):
                ys, xs = self._sums_of(k, "y"), self._sums_of(k, "x")
                rows = ys[:, r1 + 1] - ys[:, r0]  # (h, items, rects): each rectangle's share of each plane row
                cols = xs[:, c1 + 1] - xs[:, c0]
                cover = torch.einsum("hir,wir->ihw", rows, cols).clamp(0, 1)
                cover = cover.to(device=planes.device, dtype=planes.dtype)[:, None]
                colour = (plane.low + plane.span * torch.tensor(color, dtype=torch.float32) / 255.0).to(planes)
                target = planes[:, k]
                target += (colour[None, :, None, None] - target) * cover
        if not in_place:  # the planes were a rearranged copy: write them back
            pixels.copy_(self.layout.tensor(planes, pixels))


def _fit(coord: torch.Tensor, size: int) -> tuple[float, float] | None:
    """(a, b) with coord[j] ~ a + b * (j + 0.5), fitted away from the borders; None if it does not fit."""
    n = coord.shape[0]
    j = torch.arange(n, dtype=torch.float64) + 0.5
    lo, hi = int(0.1 * n), max(int(0.9 * n), int(0.1 * n) + 2)
    if hi - lo < 2:
        return None
    jj, cc = j[lo:hi], coord[lo:hi]
    b = float(((jj - jj.mean()) * (cc - cc.mean())).sum() / ((jj - jj.mean()) ** 2).sum())
    a = float(cc.mean() - b * jj.mean())
    resid = (cc - (a + b * jj)).abs().max().item()
    if b <= 0 or resid > 1.0 + 1.5 * size / 255.0:
        return None
    return a, b


__all__ = ["PROBE_TOLERANCE", "TensorMarker", "line_width", "mark_mask", "outline_rects", "resample_weights"]
