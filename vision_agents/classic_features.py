"""Pixel measurements of one marked object for the ``classic`` VisionAgent.

For a box, the object's pixels are the detector's region that best fills the box
(falling back to the foreground inside the box). From them: Lab colour statistics,
silhouette geometry, highlight statistics and a ground position / metric size from a
nominal CLEVR camera (the Blender camera of CLEVR; the synthetic world jitters it by
a few degrees at most, well inside the margins the relations need).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vision_agents.classic_detector import Segmentation, foreground_mask, rgb_to_lab, solidity

NOMINAL_CAMERA = (7.48, -6.51, 5.34)  # CLEVR's camera position, looking at the origin
HFOV_DEG = 49.13


@dataclass
class ObjectFeatures:
    lab: np.ndarray  # median L*, a*, b* of the lit, non-highlight pixels
    chroma: float
    fill: float  # mask area / box area
    ellipse_iou: float  # overlap with the ellipse inscribed in the box
    side_straightness: float  # how constant the width is over the middle rows (cylinders ~1)
    aspect: float  # box height / width
    highlight: float  # fraction of near-white, low-chroma pixels (metal highlights)
    contrast: float  # spread of L* inside the mask (metal reflects, rubber is smooth)
    world_size: float  # metric width of the object from the nominal camera
    ground_xy: np.ndarray  # estimated centre on the floor (world x, y)
    area: int
    profile: np.ndarray  # mask width in 12 horizontal bands, over the widest band (silhouette shape)
    lum: np.ndarray  # L* percentiles 5/25/50/75/95 and dark/bright pixel fractions (material)
    solidity: float  # mask area / convex hull area
    corners: np.ndarray  # fill of the box's four corner patches and of the left/right edge columns


def _camera(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    pos = np.array(NOMINAL_CAMERA, dtype=np.float64)
    fwd = -pos / np.linalg.norm(pos)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    f = (width / 2) / math.tan(math.radians(HFOV_DEG) / 2)
    return pos, fwd, right, up, f


def ground_point(u: float, v: float, width: int, height: int) -> tuple[np.ndarray, float]:
    """Back-project pixel (u, v) onto the floor z = 0: world (x, y) and distance from the camera."""
    pos, fwd, right, up, f = _camera(width, height)
    d = fwd + ((u - width / 2) / f) * right - ((v - height / 2) / f) * up
    t = -pos[2] / min(d[2], -1e-3)
    p = pos + t * d
    return p[:2], float(np.linalg.norm(p - pos))


def ground_directions(width: int, height: int) -> dict[str, np.ndarray]:
    """Unit vectors on the floor for behind / front / left / right, as CLEVR defines them."""
    _, fwd, right, _, _ = _camera(width, height)
    behind = np.array([fwd[0], fwd[1]]) / np.linalg.norm(fwd[:2])
    r = np.array([right[0], right[1]]) / np.linalg.norm(right[:2])
    return {"behind": behind, "front": -behind, "right": r, "left": -r}


def object_mask(seg: Segmentation, box: list[float]) -> np.ndarray:
    """Boolean mask (box-sized) of the object's pixels inside ``box``."""
    h, w = seg.labels.shape
    x1, y1 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x2, y2 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return np.zeros((1, 1), dtype=bool)
    crop = seg.labels[y1:y2, x1:x2]
    ids, counts = np.unique(crop[crop > 0], return_counts=True)
    if len(ids):
        return crop == ids[counts.argmax()]
    return foreground_mask(seg.image[y1:y2, x1:x2], seg.background[y1:y2, x1:x2], seg.clevr_floor)


def measure(seg: Segmentation, box: list[float], mask: np.ndarray | None = None) -> ObjectFeatures:
    """All measurements of the object in ``box``; its pixels are ``mask`` (box-sized, as :func:`object_mask`
    returns) when given, e.g. a segmenter's mask under mask marking, else the detector's region."""
    h, w = seg.labels.shape
    mask = object_mask(seg, box) if mask is None else mask
    x1, y1 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    pix = seg.image[y1 : y1 + mask.shape[0], x1 : x1 + mask.shape[1]][mask]
    area = int(mask.sum())
    if area == 0:
        pix = np.full((1, 3), 0.5)
    lab = rgb_to_lab(pix)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    highlight = (lab[:, 0] > 88) & (chroma < 20)
    body = lab[~highlight] if (~highlight).sum() >= 5 else lab
    # the colour of the lit body: the brighter half of the non-highlight pixels
    lit = body[body[:, 0] >= np.median(body[:, 0])]
    med = np.median(lit, axis=0)
    bh, bw = mask.shape
    yy, xx = np.mgrid[0:bh, 0:bw]
    ell = ((xx + 0.5 - bw / 2) / (bw / 2)) ** 2 + ((yy + 0.5 - bh / 2) / (bh / 2)) ** 2 <= 1
    inter = (ell & mask).sum()
    widths = mask.sum(axis=1).astype(np.float64)
    mid = widths[int(0.35 * bh) : max(int(0.35 * bh) + 1, int(0.85 * bh))]
    straight = float(mid.min() / max(mid.max(), 1.0)) if len(mid) else 0.0
    bx1, by1, bx2, by2 = (float(v) for v in box)
    _, dist = ground_point((bx1 + bx2) / 2, by2, w, h)
    _, _, _, _, f = _camera(w, h)
    world_w = (bx2 - bx1) * dist / f
    front_xy, _ = ground_point((bx1 + bx2) / 2, by2 - 0.5, w, h)
    centre = front_xy + ground_directions(w, h)["behind"] * world_w / 2
    bands = np.array_split(widths, 12) if bh >= 12 else [widths] * 12
    prof = np.array([b.mean() for b in bands])
    pcts = np.percentile(lab[:, 0], [5, 25, 50, 75, 95])
    lum = np.concatenate([pcts, [float((lab[:, 0] < 12).mean()), float((lab[:, 0] > 80).mean())]])
    cy, cx = max(1, bh // 4), max(1, bw // 4)
    corners = np.array(
        [mask[:cy, :cx].mean(), mask[:cy, -cx:].mean(), mask[-cy:, :cx].mean(), mask[-cy:, -cx:].mean()]
        + [mask[:, : max(1, bw // 8)].mean(), mask[:, -max(1, bw // 8) :].mean()]
        + [float(np.argmax(widths) / max(1, bh - 1))]
    )
    return ObjectFeatures(
        corners=corners,
        profile=prof / max(float(prof.max()), 1.0),
        lum=lum,
        solidity=solidity(mask),
        lab=med,
        chroma=float(np.hypot(med[1], med[2])),
        fill=area / max(1, bh * bw),
        ellipse_iou=float(inter / max(1, (ell | mask).sum())),
        side_straightness=straight,
        aspect=bh / max(1, bw),
        highlight=float(highlight.mean()),
        contrast=float(np.percentile(lab[:, 0], 90) - np.percentile(lab[:, 0], 10)),
        world_size=float(world_w),
        ground_xy=centre,
        area=area,
    )


def attribute_features(f: ObjectFeatures, attribute: str) -> np.ndarray:
    """The measurements the class model of ``attribute`` uses (fixed order; see bench/fit_classic.py)."""
    if attribute == "color":
        hue = math.atan2(f.lab[2], f.lab[1])
        return np.array([*f.lab, f.chroma, f.chroma * math.cos(hue), f.chroma * math.sin(hue)])
    if attribute == "shape":
        return np.array([f.aspect, f.fill, f.ellipse_iou, f.side_straightness, f.solidity, *f.profile, *f.corners])
    if attribute == "material":
        spread = f.lum[4] - f.lum[0]
        return np.array([*f.lum, spread, f.contrast, f.highlight, spread / max(f.lum[2], 1.0)])
    if attribute == "size":
        return np.array([f.world_size, math.log(max(f.world_size, 1e-3)), f.aspect])
    raise ValueError(f"no class model for attribute {attribute!r}")
