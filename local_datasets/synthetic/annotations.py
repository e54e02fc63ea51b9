"""Exact per-pixel annotations of a synthetic scene: which object each pixel shows, and its depth.

The renderer's geometry pass without the shading: every pixel centre's ray is intersected
with the floor and with each object (the same analytic intersections as
:mod:`local_datasets.synthetic.render`), and the nearest hit wins. Two maps come out, at the
image's resolution:

- ``object_ids`` (H, W) int16: the index of the object seen at the pixel (its *visible* mask:
  parts hidden behind nearer objects are not in it), -1 for the floor;
- ``depth`` (H, W) float32: the hit's depth along the camera's viewing axis (the ``depth``
  of ``pixel_coords``), floor included; larger is farther.

Both are a function of the scene: its objects and its camera (``scene["camera"]``, written by
:func:`local_datasets.synthetic.world.make_scene`), so scenes read back from disk give the same
maps as scenes generated in memory. The oracle segmenter and depth backends
(vision_agents/scene_maps.py) read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from local_datasets.synthetic.render import _intersect
from local_datasets.synthetic.scene import Camera, object_radius


@dataclass(frozen=True)
class SceneMaps:
    """``object_ids`` and ``depth`` of one scene's image (see the module docstring)."""

    object_ids: np.ndarray
    depth: np.ndarray

    def mask(self, index: int) -> np.ndarray:
        """The visible mask (H, W) bool of object ``index``."""
        return self.object_ids == index


def scene_camera(scene: dict) -> Camera:
    """The camera a synthetic scene was rendered with; ValueError for scenes without one (official CLEVR)."""
    cam = scene.get("camera")
    if not isinstance(cam, dict) or not {"position", "width", "height"} <= set(cam):
        raise ValueError(
            "the scene has no camera (scene['camera'] with position, width, height): exact masks and depths exist "
            "only for scenes of the synthetic world"
        )
    return Camera.look_at_origin(tuple(cam["position"]), int(cam["width"]), int(cam["height"]))


def camera_record(camera: Camera) -> dict:
    """What a scene stores of its camera (enough for :func:`scene_camera` to rebuild it exactly)."""
    return {"position": [float(v) for v in camera.position], "width": camera.width, "height": camera.height}


def render_maps(objects: list[dict], camera: Camera) -> SceneMaps:
    """Ray-cast the pixel centres of ``camera``'s image against the floor and ``objects``."""
    w, h = camera.width, camera.height
    vs, us = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    d = camera.rays(us, vs)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(d[..., 2] < -1e-9, -camera.position[2] / d[..., 2], np.inf)  # the floor z = 0
    ids = np.full((h, w), -1, dtype=np.int16)
    for i, obj in enumerate(objects):
        x, y, _ = obj["3d_coords"]
        r = object_radius(obj)
        rr = r * (1.5 if obj["shape"] == "cube" else 1.05)
        corners = np.array([[x + sx * rr, y + sy * rr, z] for sx in (-1, 1) for sy in (-1, 1) for z in (0, 2.05 * r)])
        uv = camera.project(corners)
        u0, v0 = max(0, int(uv[:, 0].min()) - 1), max(0, int(uv[:, 1].min()) - 1)
        u1, v1 = min(w, int(uv[:, 0].max()) + 2), min(h, int(uv[:, 1].max()) + 2)
        if u1 <= u0 or v1 <= v0:
            continue
        t, _, _ = _intersect(obj, camera.position, d[v0:v1, u0:u1])
        patch = depth[v0:v1, u0:u1]
        front = np.isfinite(t) & (t < patch)
        patch[front] = t[front]
        ids[v0:v1, u0:u1][front] = i
    # rays are forward + a * right + b * up, so the ray parameter t is the depth along the viewing axis
    return SceneMaps(ids, np.minimum(depth, 1e6).astype(np.float32))


def scene_maps(scene: dict) -> SceneMaps:
    """:func:`render_maps` of a synthetic scene dict (its ``objects`` and ``camera``)."""
    return render_maps(scene["objects"], scene_camera(scene))


__all__ = ["SceneMaps", "camera_record", "render_maps", "scene_camera", "scene_maps"]
