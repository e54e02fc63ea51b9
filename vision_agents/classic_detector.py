"""The ``classic`` detector: one box per object of a CLEVR-style image, from pixels alone.

No learning and no scene annotations: a smooth background (the grey floor and its
horizon fade) is estimated by normalised Gaussian interpolation of the pixels that
fit it, iterated; pixels that differ from it (in colour or brightness, beyond what a
soft floor shadow does) or lack the floor's faint blue tint are foreground; connected components of the cleaned
foreground are split where they hold several colours (two touching objects of
different colours), then at the necks of non-convex parts (distance-map watershed,
for touching objects of one colour), and each part becomes a box. ``object_names`` is ignored: the
world only holds CLEVR objects, and programs filter them by attributes.

Shared pixel helpers (Lab conversion, segmentation) live here so the ``classic``
VisionAgent measures the same regions the detector found.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from neptune_core.clevr_vocab import CLEVR_RGB
from neptune_core.types import Detection
from vision_agents.base import Detector


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) -> CIE L*a*b* (D65)."""
    c = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


@dataclass
class Segmentation:
    """Foreground analysis of one image: background estimate, object label map and boxes."""

    image: np.ndarray  # H x W x 3 float in [0, 1]
    background: np.ndarray  # H x W grey level of the floor
    labels: np.ndarray  # H x W int, 0 = background, k = region k
    boxes: list[list[float]]  # one xyxy box per region (region k -> boxes[k - 1])
    clevr_floor: bool = True  # the background is a CLEVR-style floor (see is_clevr_floor)


def estimate_background(
    grey: np.ndarray, sigma: float = 10.0, iterations: int = 4, tol: float = 0.05, seed: np.ndarray | None = None
) -> np.ndarray:
    """Smooth floor estimate: Gaussian interpolation over the pixels that agree with it, iterated.

    ``seed`` (a boolean mask like ``grey``) is where the first round takes the background
    from; by default everywhere."""
    # work at quarter resolution (the floor is smooth), then upsample
    small = grey[::4, ::4]
    s = sigma / 4
    coarse = np.full_like(small, np.median(small))
    mask = np.ones_like(small) if seed is None else seed[::4, ::4].astype(np.float64)
    bg = ndimage.gaussian_filter(small, s)
    for _ in range(iterations):
        num = ndimage.gaussian_filter(small * mask, s)
        den = ndimage.gaussian_filter(mask, s)
        bg = np.where(den > 0.05, num / np.maximum(den, 1e-6), coarse)
        mask = (np.abs(small - bg) < tol).astype(np.float64)
    zoom = (grey.shape[0] / small.shape[0], grey.shape[1] / small.shape[1])
    return ndimage.zoom(bg, zoom, order=1)[: grey.shape[0], : grey.shape[1]]


def is_clevr_floor(img: np.ndarray, bg: np.ndarray) -> bool:
    """Whether the background is a CLEVR-style floor: near-grey and faintly bluish where it fits ``bg``.

    Other backgrounds (white paper, a dark or coloured canvas, a photo) get the generic
    colour-difference rule of :func:`foreground_mask` instead of the floor's tint and shadow rules."""
    grey = img.mean(axis=2)
    floor = np.abs(grey - bg) < 0.05
    if floor.mean() < 0.2:
        return False
    chroma = (img.max(axis=2) - img.min(axis=2))[floor]
    tint = (img[..., 2] - img[..., 0])[floor]
    return bool(np.median(chroma) < 0.06 and np.median(tint) >= 1.0 / 255)


def foreground_mask(img: np.ndarray, bg: np.ndarray, clevr_floor: bool | None = None) -> np.ndarray:
    """Pixels that are not background.

    On a CLEVR floor (``clevr_floor``; decided by :func:`is_clevr_floor` when None): coloured,
    much brighter, or darker than a floor shadow can make them, or lacking the floor's tint.
    On any other background: colour far from a smooth per-channel background estimate."""
    grey = img.mean(axis=2)
    if clevr_floor is None:
        clevr_floor = is_clevr_floor(img, bg)
    if clevr_floor:
        chroma = img.max(axis=2) - img.min(axis=2)
        ratio = grey / np.maximum(bg, 1e-3)
        fg = (chroma > 0.09) | (ratio > 1.22) | (ratio < 0.55)
        # the floor (lit or in shadow) is faintly bluish; objects are not (blue ones have chroma instead)
        fg |= ndimage.median_filter(img[..., 2] - img[..., 0] < 0.5 / 255, size=3)
    else:
        # seeded with the pixels of the border's colour, so a large object cannot pull the estimate to itself
        border = np.concatenate([img[:3].reshape(-1, 3), img[-3:].reshape(-1, 3), img[:, :3].reshape(-1, 3)])
        border = np.concatenate([border, img[:, -3:].reshape(-1, 3)])
        seed = np.linalg.norm(img - np.median(border, axis=0), axis=-1) < 0.1
        seed = seed if seed.mean() > 0.2 else None
        bg_rgb = np.stack([estimate_background(img[..., c], seed=seed) for c in range(3)], axis=-1)
        fg = np.linalg.norm(img - bg_rgb, axis=-1) > 0.15
    # sharp edges belong to objects (floor shadows are blurred)
    gx = ndimage.sobel(grey, axis=1)
    gy = ndimage.sobel(grey, axis=0)
    fg |= np.hypot(gx, gy) > 0.45
    fg = ndimage.binary_opening(fg, iterations=1)
    fg = ndimage.binary_closing(fg, structure=np.ones((3, 3)), iterations=2)
    return ndimage.binary_fill_holes(fg)


_PROTO_AB = rgb_to_lab(np.array(list(CLEVR_RGB.values())[1:], dtype=np.float64) / 255.0)[:, 1:]
_PROTO_DIR = _PROTO_AB / np.linalg.norm(_PROTO_AB, axis=-1, keepdims=True)


def _colour_classes(img: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel nearest CLEVR hue class by a*b* direction (0 = achromatic: grey, highlights, dark)."""
    where = np.ones(img.shape[:2], dtype=bool) if where is None else where
    ab = rgb_to_lab(img[where])[:, 1:]
    norm = np.linalg.norm(ab, axis=-1)
    cls_px = (ab / np.maximum(norm, 1e-6)[:, None] @ _PROTO_DIR.T).argmax(axis=-1) + 1
    cls_px[norm < 12] = 0
    cls = np.zeros(img.shape[:2], dtype=np.int64)
    cls[where] = cls_px
    return cls


def _smooth_classes(cls: np.ndarray, fg: np.ndarray, size: int = 5) -> np.ndarray:
    """Majority vote of the colour classes in a ``size`` window (inside the foreground)."""
    counts = np.stack([ndimage.uniform_filter(((cls == c) & fg).astype(np.float32), size) for c in range(8)])
    out = counts.argmax(axis=0)
    out[~fg] = 0
    return out


def segment(image: Image.Image, min_area: int = 40) -> Segmentation:
    """Find object regions: background model, foreground, components, split by colour then by shape."""
    img = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    grey = img.mean(axis=2)
    bg = estimate_background(grey)
    clevr_floor = is_clevr_floor(img, bg)
    fg = foreground_mask(img, bg, clevr_floor)
    comp, n = ndimage.label(fg)
    classes = _smooth_classes(_colour_classes(img, fg), fg)
    labels = np.zeros(grey.shape, dtype=np.int32)
    next_id = 1
    for k, sl in enumerate(ndimage.find_objects(comp), start=1):
        if sl is None:
            continue
        region = comp[sl] == k
        if int(region.sum()) < min_area:
            continue
        for cpart in _split_by_colour(region, classes[sl], grey[sl], min_area):
            for part in _split_by_shape(cpart, min_area):
                ys, xs = np.nonzero(part)
                if len(ys) < min_area:
                    continue
                h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
                if h < 0.5 * w:  # floor shadows and slivers are flat; objects are not
                    continue
                if _spans_the_image(ys + sl[0].start, xs + sl[1].start, grey.shape):
                    continue  # a region touching all four borders is background, never an object
                labels[sl][part] = next_id
                next_id += 1
    boxes = []
    for sl in ndimage.find_objects(labels):
        ys, xs = sl
        boxes.append([float(xs.start), float(ys.start), float(xs.stop), float(ys.stop)])
    return Segmentation(img, bg, labels, boxes, clevr_floor)


def _spans_the_image(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether pixel coordinates reach (within 3 pixels) all four borders of an image of ``shape``."""
    h, w = shape[:2]
    return bool(ys.min() <= 3 and xs.min() <= 3 and ys.max() >= h - 4 and xs.max() >= w - 4)


def _assign_nearest(region: np.ndarray, parts: list[np.ndarray]) -> list[np.ndarray]:
    """Every pixel of ``region`` goes to the nearest of ``parts``."""
    seeds = np.zeros(region.shape, dtype=np.int32)
    for i, p in enumerate(parts, start=1):
        seeds[p] = i
    _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    owner = seeds[iy, ix]
    return [region & (owner == i) for i in range(1, len(parts) + 1)]


def _split_by_colour(region: np.ndarray, classes: np.ndarray, grey: np.ndarray, min_area: int) -> list[np.ndarray]:
    """Masks of the parts of ``region`` that hold different colour classes (small bits join a neighbour)."""
    parts: list[np.ndarray] = []
    for c in np.unique(classes[region]):
        # achromatic pixels (grey objects, but also highlights and dark reflections) need a bigger, compact part
        it, need = (3, 3 * min_area) if c == 0 else (2, 3 * min_area)
        opened = ndimage.binary_opening(region & (classes == c), iterations=it)
        sub, m = ndimage.label(opened)
        for j in range(1, m + 1):
            part = sub == j
            if part.sum() < need:
                continue
            ys, xs = np.nonzero(part)
            if c == 0 and (grey[part].mean() < 0.16 or np.ptp(ys) < 0.6 * np.ptp(xs)):
                continue  # a metal object's dark floor reflection or a highlight streak, not a grey object
            parts.append(part)
    if len(parts) <= 1:
        return [region]
    return _assign_nearest(region, parts)


def solidity(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    if len(ys) < 10:
        return 1.0
    pts = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]).astype(np.float64)
    try:
        hull = ConvexHull(pts)
    except QhullError:
        return 1.0
    return float(len(ys) / max(hull.volume, 1.0))


def _split_by_shape(part: np.ndarray, min_area: int, solid: float = 0.86) -> list[np.ndarray]:
    """Split a non-convex part (touching objects of one colour) at its necks: watershed of the distance map.

    Adjacent watershed pieces are merged back unless the boundary between them is a real neck
    (much thinner than both pieces), so a single object with a notch stays whole."""
    area = int(part.sum())
    if area < 6 * min_area or solidity(part) >= solid:
        return [part]
    dist = ndimage.distance_transform_edt(part)
    peaks = (dist == ndimage.maximum_filter(dist, size=9)) & (dist >= max(4.0, 0.45 * dist.max()))
    markers, m = ndimage.label(ndimage.binary_dilation(peaks, iterations=2) & part)
    if m < 2:
        return [part]
    level = np.where(part, (dist.max() - dist) / max(dist.max(), 1e-6) * 200, 255).astype(np.uint8)
    markers = markers.astype(np.int32)
    markers[~part] = -1
    ws = np.where(part, ndimage.watershed_ift(level, markers), 0)
    peak = ndimage.maximum(dist, ws, index=np.arange(1, m + 1))
    parent = list(range(m + 1))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(1, m + 1):
        grown = ndimage.binary_dilation(ws == i)
        for j in np.unique(ws[grown & (ws > i)]):
            neck = float(dist[grown & (ws == j)].max())
            if neck > 0.6 * min(peak[i - 1], peak[j - 1]):
                parent[root(int(j))] = root(i)
    roots = sorted({root(i) for i in range(1, m + 1)})
    pieces = [np.isin(ws, [i for i in range(1, m + 1) if root(i) == r]) for r in roots]
    if len(pieces) < 2 or min(int(p.sum()) for p in pieces) < max(3 * min_area, 0.1 * area):
        return [part]
    return pieces


class ClassicDetector(Detector):
    """Boxes from a background model and connected components (see the module docstring)."""

    name = "classic"

    def __init__(self, min_area: int = 40) -> None:
        self.min_area = min_area
        self._last: tuple[str, Segmentation] | None = None  # the last image's segmentation (by content hash)

    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        key = hashlib.md5(image.tobytes()).hexdigest()
        if self._last is None or self._last[0] != key:  # several questions about one image: segment it once
            self._last = (key, segment(image, self.min_area))
        boxes = [list(b) for b in self._last[1].boxes]
        return Detection(boxes=boxes, scores=[1.0] * len(boxes), labels=["object"] * len(boxes))
