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
    return torch.where(x < 1, _sinc(x) * (0.46 + 0.54 * torch.cos(math.pi * x)), 0.0)


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
def mark_mask(box: Box, image_size: tuple[int, int]) -> tuple[int, int, np.ndarray]:
    """(x0, y0, mask): the pixels PIL's outline of ``box`` covers, on a small window at (x0, y0)."""
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


class _SizedStub:
    """Just enough of an image for :func:`vision_agents.marking._check_box` (its ``size``)."""

    def __init__(self, w: int, h: int) -> None:
        self.size = (w, h)


# ---- layouts: the pixel tensor as planes ---------------------------------------------------------
class _Layout:
    """Reads a processor's pixel tensor as planes (3, h, w) and writes planes back."""

    def planes(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def tensor(self, planes: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _CHW(_Layout):
    """``(..., 3, h, w)``: images, tiles and thumbnails as they are (LLaVA, InternVL, Ovis2, SmolVLM...)."""

    def planes(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.reshape(-1, *pixels.shape[-3:])

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

    def _shape(self) -> tuple[int, ...]:
        m, p = self.merge, self.patch
        return (self.grid_h // m, self.grid_w // m, m, m, 3, self.temporal, p, p)

    def planes(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.reshape(self._shape())[:, :, :, :, :, 0]  # the temporal copies are equal
        x = x.permute(4, 0, 2, 5, 1, 3, 6)  # (3, gh/m, m, p, gw/m, m, p)
        return x.reshape(1, 3, self.grid_h * self.patch, self.grid_w * self.patch)

    def tensor(self, planes: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        m, p = self.merge, self.patch
        x = planes.reshape(3, self.grid_h // m, m, p, self.grid_w // m, m, p).permute(1, 4, 2, 5, 0, 3, 6)
        x = x.unsqueeze(5).expand(*x.shape[:5], self.temporal, p, p)
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
        plane_shapes: list[tuple[int, int, int]],
    ) -> None:
        self.layout = layout
        self.planes = planes
        self.image_size = image_size
        self.kernel = kernel
        self._plane_shapes = plane_shapes
        self._cache: dict[tuple[int, str], torch.Tensor] = {}

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
            p0 = layout.planes(black["pixel_values"]).double()
            p1 = layout.planes(white["pixel_values"]).double()
            px = layout.planes(encode(ramp_x)["pixel_values"]).double()
            py = layout.planes(encode(ramp_y)["pixel_values"]).double()
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
        marker = cls(layout, planes, image_size, kernel, [tuple(p.shape) for p in p0])
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
        """A copy of ``pixels`` (this marker's image size) with ``subject`` in red and ``obj`` in green."""
        out = pixels.clone()
        self.mark_(out, subject, obj)
        return out

    def mark_(self, pixels: torch.Tensor, subject: Box | None = None, obj: Box | None = None) -> None:
        """Draw the marks into ``pixels`` in place (``obj`` first, then ``subject`` over it, as PIL does)."""
        if subject is None and obj is None:
            return
        planes = self.layout.planes(pixels)
        view = planes.untyped_storage().data_ptr() == pixels.untyped_storage().data_ptr()
        for box, color in ((obj, OBJECT_COLOR), (subject, SUBJECT_COLOR)):
            if box is not None:
                x0, y0, mask = mark_mask(box, self.image_size)
                for k in range(len(self.planes)):
                    self._draw(planes[k], k, x0, y0, mask, color)
        if not view:  # the planes were a rearranged copy: write them back
            pixels.copy_(self.layout.tensor(planes, pixels))

    def _weights(self, k: int, axis: str) -> torch.Tensor:
        """Plane ``k``'s resampling weights along ``axis`` ("x" or "y"): (plane pixels, source pixels), cached."""
        key = (k, axis)
        if key not in self._cache:
            plane, (_, ph, pw) = self.planes[k], self._plane_shapes[k]
            a, b, n, size = (plane.ax, plane.bx, pw, self.image_size[0]) if axis == "x" else (
                plane.ay, plane.by, ph, self.image_size[1])  # fmt: skip
            centers = a + b * (torch.arange(n, dtype=torch.float64) + 0.5)
            self._cache[key] = resample_weights(centers, b, size, 0, size, self.kernel).float()
        return self._cache[key]

    def _draw(self, target: torch.Tensor, k: int, x0: int, y0: int, mask: np.ndarray, color: tuple) -> None:
        plane = self.planes[k]
        _, ph, pw = target.shape
        mh, mw = mask.shape
        rows = _touched(plane.ay, plane.by, y0, y0 + mh, ph, self.kernel)
        cols = _touched(plane.ax, plane.bx, x0, x0 + mw, pw, self.kernel)
        if rows is None or cols is None:
            return
        (r0, r1), (c0, c1) = rows, cols
        ry = self._weights(k, "y")[r0:r1, y0 : y0 + mh]
        rx = self._weights(k, "x")[c0:c1, x0 : x0 + mw]
        # the outline has a few distinct rows (full bands, two side segments): resample each kind once
        patterns, kind = _row_kinds(mask)
        which = torch.from_numpy(np.eye(len(patterns), dtype=np.float32)[kind])  # (mh, kinds)
        cover = ((ry @ which) @ (rx @ torch.from_numpy(patterns).T).T).clamp(0, 1)
        cover = cover.to(device=target.device, dtype=target.dtype)
        colour = (plane.low + plane.span * torch.tensor(color, dtype=torch.float32) / 255.0).to(target)
        ii, jj = (cover > 0).nonzero(as_tuple=True)  # the outline's frame: update only what it covers
        ii, jj = ii + r0, jj + c0
        region = target[:, ii, jj]
        target[:, ii, jj] = region + (colour[:, None] - region) * cover[ii - r0, jj - c0]


def _row_kinds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``mask`` and, for each row, which one it is."""
    signature = mask @ np.random.default_rng(0).random(mask.shape[1])
    _, first, kind = np.unique(signature, return_index=True, return_inverse=True)
    patterns = np.ascontiguousarray(mask[first])
    if not np.array_equal(patterns[kind], mask):  # two different rows with one signature: keep every row
        return mask, np.arange(mask.shape[0])
    return patterns, kind.reshape(-1)


def _touched(a: float, b: float, lo: int, hi: int, n: int, kernel: int) -> tuple[int, int] | None:
    """The plane indices whose filter reaches source pixels ``lo..hi-1`` (a range, or None)."""
    reach = KERNELS.get(kernel, KERNELS[2])[1] * max(b, 1.0) + 1
    first = max(0, math.floor((lo - reach - a) / b - 0.5))
    last = min(n, math.ceil((hi + reach - a) / b - 0.5) + 1)
    return (first, last) if first < last else None


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


__all__ = ["PROBE_TOLERANCE", "TensorMarker", "line_width", "mark_mask", "resample_weights"]
