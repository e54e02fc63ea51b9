"""Scene sampling for the synthetic CLEVR world: camera, object placement, relationships.

Coordinates follow CLEVR: objects stand on the ground plane z = 0, ``3d_coords`` is
the object's centre (z = its radius r; large r = 0.7, small r = 0.35, cubes use
r / sqrt(2) like CLEVR), x and y lie in [-3, 3]. The camera sits where CLEVR's
Blender camera sits (with a small seeded jitter) and looks at the origin.
Directions and relationships are computed exactly as CLEVR's ``render_images.py``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from neptune_core.clevr_vocab import ATTRIBUTES

SIZES: dict[str, float] = {"large": 0.7, "small": 0.35}
HFOV_DEG = 49.13  # CLEVR's Blender camera: 35 mm lens on a 32 mm sensor
MIN_DIST = 0.25  # minimum gap between object surfaces (CLEVR's --min_dist)
MARGIN = 0.4  # minimum separation along each cardinal direction (CLEVR's --margin)
REL_EPS = 0.2  # CLEVR's eps in compute_all_relationships


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: ``position`` looks along ``forward``; ``f`` is the focal length in pixels."""

    position: np.ndarray
    forward: np.ndarray
    right: np.ndarray
    up: np.ndarray
    f: float
    width: int
    height: int

    @classmethod
    def look_at_origin(cls, position: tuple[float, float, float], width: int, height: int) -> Camera:
        pos = np.asarray(position, dtype=np.float64)
        forward = -pos / np.linalg.norm(pos)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        f = (width / 2) / math.tan(math.radians(HFOV_DEG) / 2)
        return cls(pos, forward, right, up, f, width, height)

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> (..., 3) array of [u, v, depth] (pixels, depth along the view axis)."""
        d = np.asarray(points, dtype=np.float64) - self.position
        z = d @ self.forward
        u = self.width / 2 + self.f * (d @ self.right) / z
        v = self.height / 2 - self.f * (d @ self.up) / z
        return np.stack([u, v, z], axis=-1)

    def rays(self, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
        """Unnormalised world ray directions through pixel positions (arrays broadcast)."""
        a = (us - self.width / 2) / self.f
        b = -(vs - self.height / 2) / self.f
        return self.forward + a[..., None] * self.right + b[..., None] * self.up

    def directions(self) -> dict[str, list[float]]:
        """CLEVR's scene["directions"]: unit vectors on the ground plane, plus above/below."""
        behind = np.array([self.forward[0], self.forward[1], 0.0])
        behind /= np.linalg.norm(behind)
        right = np.array([self.right[0], self.right[1], 0.0])
        right /= np.linalg.norm(right)
        r = lambda v: [round(float(x), 4) + 0.0 for x in v]  # noqa: E731  (+0.0 turns -0.0 into 0.0)
        return {
            "behind": r(behind),
            "front": r(-behind),
            "left": r(-right),
            "right": r(right),
            "above": [0.0, 0.0, 1.0],
            "below": [0.0, 0.0, -1.0],
        }


def object_radius(obj: dict) -> float:
    """The object's CLEVR radius r (half its footprint; cubes are r / sqrt(2))."""
    r = SIZES[obj["size"]]
    return r / math.sqrt(2) if obj["shape"] == "cube" else r


def compute_relationships(objects: list[dict], directions: dict[str, list[float]]) -> dict[str, list[list[int]]]:
    """``rel[name][i]`` = sorted indices j such that object j is ``name`` of object i (CLEVR's rule)."""
    out: dict[str, list[list[int]]] = {}
    for name in ("right", "behind", "front", "left"):
        vec = directions[name]
        rows = []
        for i, a in enumerate(objects):
            ca = a["3d_coords"]
            rows.append(
                [
                    j
                    for j, b in enumerate(objects)
                    if j != i and sum((b["3d_coords"][k] - ca[k]) * vec[k] for k in range(3)) > REL_EPS
                ]
            )
        out[name] = rows
    return out


def sample_camera(rng: random.Random, width: int, height: int) -> Camera:
    """CLEVR's camera location (7.48, -6.51, 5.34) with a small jitter, looking at the origin."""
    base = (7.48, -6.51, 5.34)
    pos = tuple(round(c + rng.uniform(-0.4, 0.4), 4) for c in base)
    return Camera.look_at_origin(pos, width, height)  # type: ignore[arg-type]


def sample_objects(rng: random.Random, num_objects: int, camera: Camera, max_tries: int = 60) -> list[dict] | None:
    """Place ``num_objects`` CLEVR objects; None if placement fails (the caller retries)."""
    dirs = camera.directions()
    objects: list[dict] = []
    for _ in range(num_objects):
        for _try in range(max_tries):
            obj = {
                "shape": rng.choice(ATTRIBUTES["shape"]),
                "color": rng.choice(ATTRIBUTES["color"]),
                "material": rng.choice(ATTRIBUTES["material"]),
                "size": rng.choice(ATTRIBUTES["size"]),
            }
            r = object_radius(obj)
            x, y = round(rng.uniform(-3, 3), 4), round(rng.uniform(-3, 3), 4)
            ok = True
            for other in objects:
                ox, oy, _ = other["3d_coords"]
                dx, dy = x - ox, y - oy
                if math.hypot(dx, dy) - r - object_radius(other) < MIN_DIST:
                    ok = False
                    break
                for name in ("left", "right", "front", "behind"):
                    d = dirs[name]
                    if abs(dx * d[0] + dy * d[1]) < MARGIN:
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                obj["3d_coords"] = [x, y, round(r, 4)]
                obj["rotation"] = round(rng.uniform(0, 360), 4)
                objects.append(obj)
                break
        else:
            return None
    return objects
