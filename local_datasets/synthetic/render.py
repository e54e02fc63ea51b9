"""CLEVR-style renderer (Pillow + numpy): ray-cast cubes, spheres and cylinders on a grey floor.

Each object is ray-cast in its own screen patch with analytic intersections, shaded
with three lights (key, fill, back like CLEVR), and composited with a depth buffer
after sorting the objects back to front, so nearer objects occlude farther ones.
Rubber is matte (Lambert plus a faint broad sheen); metal is dark with a mirror-like
sky/floor reflection and sharp white highlights, so the two read clearly apart.
The image is rendered at ``supersample`` times the size and box-filtered down.

Boxes: ``bbox`` is the object's full projected silhouette (amodal: parts hidden
behind nearer objects are included), in pixels ``[x1, y1, x2, y2]`` with x2/y2
exclusive pixel edges, clipped to the image. Visible pixel counts are returned too
so the sampler can reject scenes with hidden objects (as CLEVR does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from local_datasets.synthetic.scene import Camera, object_radius
from neptune_core.clevr_vocab import CLEVR_RGB


@dataclass
class RenderResult:
    image: Image.Image
    bboxes: list[list[int]]
    visible_pixels: list[float]
    pixel_coords: list[list[float]]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _lights(camera: Camera) -> list[tuple[np.ndarray, float]]:
    """(direction towards the light, intensity): key (front-left, high), fill (front-right), back."""
    front = -np.array([camera.forward[0], camera.forward[1], 0.0])
    front /= np.linalg.norm(front)
    left = -np.array([camera.right[0], camera.right[1], 0.0])
    left /= np.linalg.norm(left)
    up = np.array([0.0, 0.0, 1.0])
    return [
        (_unit(0.6 * front + 0.7 * left + 1.3 * up), 0.95),
        (_unit(0.8 * front - 0.9 * left + 0.6 * up), 0.35),
        (_unit(-1.0 * front + 0.2 * left + 0.9 * up), 0.3),
    ]


def _background(camera: Camera, key_light: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Floor brightness (H, W) at ``size`` = (W, H): lit pool near the scene, soft fade to a horizon grey.

    Computed on a 1/4-resolution grid and resized bilinearly (the floor is smooth)."""
    w, h = max(2, camera.width // 4), max(2, camera.height // 4)
    vs, us = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    us, vs = us * camera.width / w, vs * camera.height / h
    d = camera.rays(us, vs)
    dz = d[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dz < -1e-6, -camera.position[2] / dz, np.inf)
    px = camera.position[0] + t * d[..., 0]
    py = camera.position[1] + t * d[..., 1]
    dist = np.hypot(px - camera.position[0], py - camera.position[1])
    spot = np.exp(-((px + 0.8 * key_light[0]) ** 2 + (py + 0.8 * key_light[1]) ** 2) / 40.0)
    floor = 0.47 + 0.12 * spot - 0.004 * np.nan_to_num(dist, posinf=40.0)
    fade = np.clip((np.nan_to_num(dist, posinf=60.0) - 14.0) / 22.0, 0.0, 1.0)
    fade = fade * fade * (3 - 2 * fade)
    g = floor * (1 - fade) + 0.53 * fade
    return _resize(g, size)


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR))


def _shadow_layer(objects: list[dict], camera: Camera, key_light: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Soft contact/cast shadows on the floor, values in [0, 1], drawn at output resolution, resized to ``size``."""
    layer = Image.new("L", (camera.width, camera.height), 0)
    draw = ImageDraw.Draw(layer)
    offset = -key_light[:2] / key_light[2]
    angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for obj in objects:
        x, y, r = obj["3d_coords"]
        foot = object_radius(obj) * (1.35 if obj["shape"] == "cube" else 1.0)
        pts = []
        for shift in (0.0, 0.5, 1.0):
            c = np.array([x, y]) + offset * r * shift
            pts.append(c + foot * circle)
        ground = np.concatenate(pts)
        uv = camera.project(np.concatenate([ground, np.zeros((len(ground), 1))], axis=1))[:, :2]
        hull = _convex_hull(uv)
        draw.polygon([tuple(p) for p in hull], fill=150)
    blurred = layer.filter(ImageFilter.GaussianBlur(radius=max(2.0, camera.width / 160)))
    return _resize(np.asarray(blurred, dtype=np.float32) / 255.0, size)


def _convex_hull(points: np.ndarray) -> list[tuple[float, float]]:
    pts = sorted({(float(p[0]), float(p[1])) for p in points})

    def cross(o: tuple, a: tuple, b: tuple) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    upper: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _intersect(obj: dict, origin: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray parameter t (inf on a miss), world normals, and closeness to an edge (0..1; for bevel glints)."""
    cx, cy, cz = obj["3d_coords"]
    r = object_radius(obj)
    shape = obj["shape"]
    inf = np.full(d.shape[:-1], np.inf)
    if shape == "sphere":
        oc = origin - np.array([cx, cy, cz])
        a = np.einsum("...k,...k->...", d, d)
        b = d @ oc
        disc = b * b - a * (oc @ oc - r * r)
        t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
        n = _unit(origin + np.where(np.isfinite(t), t, 0.0)[..., None] * d - np.array([cx, cy, cz]))
        return t, n, np.zeros_like(t)
    if shape == "cylinder":
        ox, oy = origin[0] - cx, origin[1] - cy
        a = d[..., 0] ** 2 + d[..., 1] ** 2
        b = d[..., 0] * ox + d[..., 1] * oy
        disc = b * b - a * (ox * ox + oy * oy - r * r)
        ts = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / np.maximum(a, 1e-12), np.inf)
        zs = origin[2] + ts * d[..., 2]
        ts = np.where((zs >= 0) & (zs <= 2 * r), ts, np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = (2 * r - origin[2]) / d[..., 2]
        qx, qy = ox + tc * d[..., 0], oy + tc * d[..., 1]
        tc = np.where((tc > 0) & (qx * qx + qy * qy <= r * r), tc, np.inf)
        side = ts <= tc
        t = np.minimum(ts, tc)
        px = ox + np.where(np.isfinite(t), t, 0) * d[..., 0]
        py = oy + np.where(np.isfinite(t), t, 0) * d[..., 1]
        n_side = np.stack([px / r, py / r, np.zeros_like(px)], axis=-1)
        n = np.where(side[..., None], n_side, np.array([0.0, 0.0, 1.0]))
        pz = origin[2] + np.where(np.isfinite(t), t, 0) * d[..., 2]
        rim = np.where(side, (pz - 1.85 * r) / (0.15 * r), (np.hypot(px, py) / r - 0.88) / 0.12)
        return np.where(np.isfinite(t), t, inf), n, np.clip(rim, 0, 1)
    # cube: slab test in the object's frame (rotation about z)
    th = math.radians(obj["rotation"])
    rot = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]])
    o = rot.T @ (origin - np.array([cx, cy, cz]))
    dl = d @ rot  # = (rot.T @ d) per ray
    dl = np.where(np.abs(dl) < 1e-12, 1e-12, dl)
    t1 = (-r - o) / dl
    t2 = (r - o) / dl
    tnear = np.minimum(t1, t2)
    tfar = np.maximum(t1, t2)
    t_in = tnear.max(axis=-1)
    t_out = tfar.min(axis=-1)
    hit = (t_out >= t_in) & (t_in > 0)
    axis = tnear.argmax(axis=-1)
    n_local = np.zeros_like(dl)
    np.put_along_axis(n_local, axis[..., None], -np.sign(np.take_along_axis(dl, axis[..., None], -1)), -1)
    q = np.abs(o + np.where(hit, t_in, 0)[..., None] * dl) / r
    np.put_along_axis(q, axis[..., None], 0.0, -1)  # ignore the coordinate normal to the face
    edge = np.clip((q.max(axis=-1) - 0.88) / 0.12, 0, 1)
    return np.where(hit, t_in, inf), n_local @ rot.T, edge


def _shade(
    obj: dict, p: np.ndarray, n: np.ndarray, v: np.ndarray, edge: np.ndarray, lights: list[tuple[np.ndarray, float]]
) -> np.ndarray:
    """Colours for hit points ``p`` with normals ``n`` seen from direction ``v`` (all (N, 3))."""
    base = np.array(CLEVR_RGB[obj["color"]], dtype=np.float64) / 255.0
    diffuse = sum(i * np.clip(n @ ld, 0, None) for ld, i in lights)[..., None]
    metal = obj["material"] == "metal"
    spec = np.zeros(len(n))
    for ld, i in lights:
        h = _unit(ld + v)
        spec = spec + i * np.clip((n * h).sum(-1), 0, None) ** (200 if metal else 6)
    spec = spec[..., None]
    if not metal:
        return base * (0.28 + 0.72 * diffuse) + 0.05 * spec + 0.04 * edge[..., None]
    # metal: mirror-like reflection of a bright sky and of the floor (dark near the object), tinted,
    # sharp highlights, a vertical glint on curved sides, and bright bevelled edges
    refl = 2 * (n * v).sum(-1, keepdims=True) * n - v
    rz = refl[..., 2:3]
    key = lights[0][0]
    sky = 0.55 + 0.3 * np.sqrt(np.clip(rz, 0, 1)) + 0.6 * np.clip(refl @ key, 0, None)[..., None] ** 12
    reach = np.clip(p[..., 2:3], 0, None) * np.linalg.norm(refl[..., :2], axis=-1, keepdims=True)
    floor = 0.03 + 0.62 * (1 - np.exp(-reach / np.maximum(-rz, 1e-3) / 1.2))
    env = np.where(rz >= 0, sky, floor)
    kh = _unit(np.array([key[0], key[1], 0.0]) + v * np.array([1.0, 1.0, 0.0]))
    glint = np.clip((n * kh).sum(-1, keepdims=True), 0, None) ** 40 * (np.abs(n[..., 2:3]) < 0.5)
    glint = glint if obj["shape"] == "cylinder" else 0.0  # a vertical streak on curved sides only
    col = base * (0.03 + 0.15 * diffuse) + (0.9 * base + 0.06) * env + 1.6 * spec + 0.8 * glint
    return col + 0.55 * edge[..., None]


def render_scene(objects: list[dict], camera: Camera, supersample: int = 2) -> RenderResult:
    """Render ``objects`` (CLEVR object dicts with 3d_coords/rotation) seen by ``camera``."""
    ss = int(supersample)
    if ss < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    w, h = camera.width, camera.height
    hi = Camera(camera.position, camera.forward, camera.right, camera.up, camera.f * ss, w * ss, h * ss)
    lights = _lights(camera)
    size = (w * ss, h * ss)
    floor = _background(camera, lights[0][0], size) * (1 - 0.5 * _shadow_layer(objects, camera, lights[0][0], size))
    color = floor[..., None] * np.array([1.0, 1.0, 1.02], dtype=np.float32)
    zbuf = np.full((h * ss, w * ss), np.inf, dtype=np.float32)
    ids = np.full((h * ss, w * ss), -1, dtype=np.int32)
    centers = camera.project(np.array([o["3d_coords"] for o in objects], dtype=np.float64))
    order = sorted(range(len(objects)), key=lambda i: -centers[i, 2])  # back to front
    bboxes: list[list[int]] = [[0, 0, 0, 0] for _ in objects]
    for i in order:
        obj = objects[i]
        x, y, _ = obj["3d_coords"]
        r = object_radius(obj)
        rr = r * (1.5 if obj["shape"] == "cube" else 1.05)
        corners = np.array([[x + sx * rr, y + sy * rr, z] for sx in (-1, 1) for sy in (-1, 1) for z in (0, 2.05 * r)])
        uv = hi.project(corners)
        u0, v0 = max(0, int(uv[:, 0].min()) - 1), max(0, int(uv[:, 1].min()) - 1)
        u1, v1 = min(w * ss, int(uv[:, 0].max()) + 2), min(h * ss, int(uv[:, 1].max()) + 2)
        if u1 <= u0 or v1 <= v0:
            continue
        vs, us = np.mgrid[v0:v1, u0:u1].astype(np.float64) + 0.5
        d = hi.rays(us, vs)
        t, n, edge = _intersect(obj, hi.position, d)
        hit = np.isfinite(t)
        if not hit.any():
            continue
        rows, cols = np.nonzero(hit)
        bboxes[i] = [
            (u0 + int(cols.min())) // ss,
            (v0 + int(rows.min())) // ss,
            -(-(u0 + int(cols.max()) + 1) // ss),
            -(-(v0 + int(rows.max()) + 1) // ss),
        ]
        front = hit & (t < zbuf[v0:v1, u0:u1])
        pts = hi.position + t[front][:, None] * d[front]
        shaded = _shade(obj, pts, n[front], _unit(-d[front]), edge[front], lights)
        color[v0:v1, u0:u1][front] = shaded
        zbuf[v0:v1, u0:u1][front] = t[front]
        ids[v0:v1, u0:u1][front] = i
    img = Image.fromarray((np.clip(color, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    if ss > 1:
        img = img.reduce(ss)  # box filter: anti-aliasing
    counts = np.bincount(ids.ravel() + 1, minlength=len(objects) + 1)[1:] / (ss * ss)
    pixel_coords = [[int(round(u)), int(round(v)), round(float(z), 4)] for u, v, z in centers]
    return RenderResult(img, bboxes, [float(c) for c in counts], pixel_coords)
