"""The synthetic video world: CLEVR objects that move, collide, appear and disappear.

Each video comes from its own ``random.Random`` seeded by ``(seed, index)``. A scenario is a
fixed camera and 3-5 objects of distinct colours (so "the red cube" names one object). Its
story, in frames of a ``fps`` video of ``seconds``:

- a *striker* A rolls towards a resting object B and stops where it touches B (a collision);
  B then slides away along the same direction and stops;
- one or two other objects *enter* (appear) at some frame, one *leaves* (disappears);
- every other object rests, always at least :data:`GAP` apart from any other surface.

Questions name an object by its colour and one more attribute (:func:`name_of`: "red cube",
"large red object", "red metal object"), chosen per object.

Events (enter, leave, start, stop, collide) are at least :data:`MIN_EVENT_GAP` frames apart,
so an order between them is never a tie. Frames are rendered by the CLEVR renderer
(render.py, unchanged) and encoded into a video file; the annotation file holds, per frame,
every present object's position, box and motion, which pairs touch, and the event list.
``moving`` at frame k: the object's position differs between frames k - 1 and k + 1;
``touching``: the surfaces are at most :data:`CONTACT_GAP` apart.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from local_datasets.synthetic.render import render_scene
from local_datasets.synthetic.scene import Camera, compute_relationships, object_radius, sample_camera
from neptune_core.clevr_vocab import ATTRIBUTES
from neptune_core.video_config import VideoWorldConfig

GAP = 0.9  # minimum surface distance between objects that do not collide
CONTACT_GAP = 0.3  # surfaces at most this far apart touch
MIN_EVENT_GAP = 3  # frames between any two events
BOUND = 2.8  # |x|, |y| of every object centre
MIN_VISIBLE = 0.3  # visible fraction of an object's box area (CLEVR-like visibility check)


@dataclass
class Track:
    """One object through the video: attributes, when it is there, and where (piecewise linear)."""

    id: int
    obj: dict[str, Any]  # shape, color, material, size, rotation
    enter: int = 0  # first frame it is present
    exit: int = 10**9  # first frame it is gone again (10**9: stays)
    keys: list[tuple[int, float, float]] = field(default_factory=list)  # (frame, x, y), frames increasing

    @property
    def radius(self) -> float:
        return object_radius(self.obj)

    def present(self, k: int) -> bool:
        return self.enter <= k < self.exit

    def pos(self, k: float) -> tuple[float, float]:
        keys = self.keys
        if k <= keys[0][0]:
            return keys[0][1], keys[0][2]
        for (k0, x0, y0), (k1, x1, y1) in zip(keys, keys[1:], strict=False):
            if k <= k1:
                a = (k - k0) / (k1 - k0) if k1 > k0 else 1.0
                return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
        return keys[-1][1], keys[-1][2]

    def moving(self, k: int, num_frames: int) -> bool:
        lo, hi = max(0, k - 1), min(num_frames - 1, k + 1)
        (x0, y0), (x1, y1) = self.pos(lo), self.pos(hi)
        return math.hypot(x1 - x0, y1 - y0) > 1e-6

    def object_at(self, k: int) -> dict[str, Any]:
        x, y = self.pos(k)
        return {**self.obj, "3d_coords": [round(x, 4), round(y, 4), round(self.radius, 4)]}


@dataclass
class Scenario:
    camera: Camera
    tracks: list[Track]
    num_frames: int
    striker: int
    struck: int

    def present(self, k: int) -> list[Track]:
        return [t for t in self.tracks if t.present(k)]


def _gap(a: Track, b: Track, k: int) -> float:
    (xa, ya), (xb, yb) = a.pos(k), b.pos(k)
    return math.hypot(xa - xb, ya - yb) - a.radius - b.radius


def _random_object(rng: random.Random, color: str) -> dict[str, Any]:
    obj = {
        "shape": rng.choice(ATTRIBUTES["shape"]),
        "color": color,
        "material": rng.choice(ATTRIBUTES["material"]),
        "size": rng.choice(ATTRIBUTES["size"]),
        "rotation": round(rng.uniform(0, 360), 4),
    }
    obj["name"] = name_of(obj, rng.choice(("shape", "size", "material")))
    return obj


def name_of(obj: dict[str, Any], extra: str) -> str:
    """How questions name an object: its colour (unique in its video) and one more attribute, in CLEVR's
    order: "red cube", "large red object", "red metal object"."""
    if extra == "shape":
        return f"{obj['color']} {obj['shape']}"
    if extra == "size":
        return f"{obj['size']} {obj['color']} object"
    return f"{obj['color']} {obj['material']} object"


def _plan(rng: random.Random, cfg: VideoWorldConfig, camera: Camera) -> Scenario | None:
    """One attempt at a scenario; None when the sampled layout breaks a rule."""
    T = int(round(cfg.fps * cfg.seconds))
    n = rng.randint(max(3, cfg.min_objects), max(3, cfg.max_objects))
    colors = rng.sample(ATTRIBUTES["color"], n)
    tracks = [Track(i, _random_object(rng, c)) for i, c in enumerate(colors)]
    a, b = tracks[0], tracks[1]  # striker and struck (the order of tracks is shuffled below)
    u = rng.uniform(0, 2 * math.pi)
    ux, uy = math.cos(u), math.sin(u)
    bx, by = rng.uniform(-1.4, 1.4), rng.uniform(-1.4, 1.4)
    travel_a, travel_b = rng.uniform(1.0, 1.8), rng.uniform(0.9, 1.5)
    contact = a.radius + b.radius
    ax, ay = bx - ux * (contact + travel_a), by - uy * (contact + travel_a)
    start = rng.randint(1, max(1, T // 3))
    hit = start + rng.randint(max(3, T // 6), max(4, T // 3))
    stop_b = hit + rng.randint(max(3, T // 6), max(4, T // 3))
    if stop_b > T - 2:
        return None
    a.keys = [(start, ax, ay), (hit, bx - ux * contact, by - uy * contact)]
    b.keys = [(hit, bx, by), (stop_b, bx + ux * travel_b, by + uy * travel_b)]
    events = [start, hit, hit + 1, stop_b, stop_b + 1]
    others = tracks[2:]
    for t in others:  # resting objects, placed away from every path
        for _ in range(80):
            t.keys = [(0, rng.uniform(-BOUND, BOUND), rng.uniform(-BOUND, BOUND))]
            placed = [o for o in tracks if o.keys and o is not t]
            if all(_gap(t, o, k) >= GAP for o in placed for k in range(T)):
                break
        else:
            return None
    # who enters and who leaves (never the striker or the struck)
    rng.shuffle(others)
    two = len(others) >= 3 or (len(others) == 2 and rng.random() < 0.5)
    enterers = others[: 2 if two else 1]
    leaver = others[len(enterers)] if len(others) > len(enterers) else None
    for j, t in enumerate(enterers + ([leaver] if leaver else [])):
        during = j == 0 and rng.random() < 0.5  # the first one often enters while something moves
        for _ in range(60):
            k = rng.randint(start + 2, stop_b - 2) if during else rng.randint(2, T - 3)
            if all(abs(k - e) >= MIN_EVENT_GAP for e in events):
                break
        else:
            return None
        events.append(k)
        if t is leaver:
            t.exit = k
        else:
            t.enter = k
    if any(abs(t.pos(k)[0]) > BOUND or abs(t.pos(k)[1]) > BOUND for t in tracks for k in range(T)):
        return None
    if any(_gap(tracks[i], tracks[j], k) < GAP for i in range(len(tracks)) for j in range(i + 1, len(tracks))
           if {i, j} != {0, 1} for k in range(T)):  # fmt: skip
        return None
    if min(_gap(a, b, k) for k in range(T)) < -1e-6:
        return None
    rng.shuffle(tracks)
    striker, struck = tracks.index(a), tracks.index(b)
    for i, t in enumerate(tracks):
        t.id = i
    return Scenario(camera, tracks, T, striker, struck)


def _visible(scenario: Scenario, k: int) -> tuple[bool, Any]:
    tracks = scenario.present(k)
    result = render_scene([t.object_at(k) for t in tracks], scenario.camera, supersample=1)
    w, h = scenario.camera.width, scenario.camera.height
    for box, vis in zip(result.bboxes, result.visible_pixels, strict=True):
        x1, y1, x2, y2 = box
        area = max(1, (x2 - x1) * (y2 - y1))
        if not (x1 > 0 and y1 > 0 and x2 < w and y2 < h) or vis < MIN_VISIBLE * area:
            return False, result
    return True, result


def make_scenario(cfg: VideoWorldConfig, index: int) -> Scenario:
    """Video ``index``'s scenario (seeded by ``(cfg.seed, index)``), resampled until every object stays visible."""
    rng = random.Random(f"video-world:{cfg.seed}:{index}")
    for _attempt in range(400):
        camera = sample_camera(rng, cfg.width, cfg.height)
        scenario = _plan(rng, cfg, camera)
        if scenario is None:
            continue
        T = scenario.num_frames
        key_frames = {0, T - 1, *(k for t in scenario.tracks for k, _, _ in t.keys)} | _event_frames(scenario)
        key_frames = sorted(key_frames | set(range(0, T, 4)))
        if all(_visible(scenario, min(max(k, 0), T - 1))[0] for k in key_frames):
            return scenario
    raise RuntimeError(f"could not lay out video {index} after 400 attempts")


def _event_frames(scenario: Scenario) -> set[int]:
    out: set[int] = set()
    for t in scenario.tracks:
        if t.enter > 0:
            out.add(t.enter)
        if t.exit < scenario.num_frames:
            out.add(t.exit - 1)
    return out


def events(scenario: Scenario) -> list[dict[str, Any]]:
    """Ground-truth events in frame order: enter, leave, start, stop (from per-frame motion), collide."""
    T = scenario.num_frames
    out: list[dict[str, Any]] = []
    for t in scenario.tracks:
        if t.enter > 0:
            out.append({"type": "enter", "object": t.id, "frame": t.enter})
        if t.exit < T:
            out.append({"type": "leave", "object": t.id, "frame": t.exit})
        flags = [t.moving(k, T) for k in range(T)]
        for k in range(T):
            if flags[k] and (k == 0 or not flags[k - 1]):
                out.append({"type": "start", "object": t.id, "frame": k})
            if not flags[k] and k > 0 and flags[k - 1]:
                out.append({"type": "stop", "object": t.id, "frame": k})
    a, b = scenario.tracks[scenario.striker], scenario.tracks[scenario.struck]
    hit = next(k for k in range(T) if _gap(a, b, k) <= 1e-6)
    out.append({"type": "collide", "object": a.id, "other": b.id, "frame": hit})
    return sorted(out, key=lambda e: (e["frame"], e["type"], e["object"]))


def render_frames(scenario: Scenario, supersample: int = 2):
    """(frame image, per-frame annotation) for every frame, one at a time."""
    T = scenario.num_frames
    for k in range(T):
        tracks = scenario.present(k)
        result = render_scene([t.object_at(k) for t in tracks], scenario.camera, supersample=supersample)
        objects = []
        for t, box, pc in zip(tracks, result.bboxes, result.pixel_coords, strict=True):
            objects.append(
                {
                    "id": t.id,
                    "3d_coords": t.object_at(k)["3d_coords"],
                    "bbox": box,
                    "pixel_coords": pc,
                    "moving": t.moving(k, T),
                }  # fmt: skip
            )
        touching = [
            [ta.id, tb.id] for i, ta in enumerate(tracks) for tb in tracks[i + 1 :] if _gap(ta, tb, k) <= CONTACT_GAP
        ]
        yield result.image, {"frame": k, "objects": objects, "touching": touching}


def annotation(scenario: Scenario, frames: list[dict[str, Any]], video: str, fps: float) -> dict[str, Any]:
    """The annotation file of one video (objects, per-frame states, events)."""
    return {
        "video": video,
        "fps": fps,
        "num_frames": scenario.num_frames,
        "width": scenario.camera.width,
        "height": scenario.camera.height,
        "directions": scenario.camera.directions(),
        "objects": [
            {"id": t.id, **t.obj, "enter": t.enter, "exit": min(t.exit, scenario.num_frames)} for t in scenario.tracks
        ],
        "frames": frames,
        "events": events(scenario),
    }


def frame_index(ann: dict[str, Any], t: float) -> int:
    """The frame showing time ``t`` (seconds)."""
    return min(max(0, int(math.floor(t * float(ann["fps"]) + 1e-6))), int(ann["num_frames"]) - 1)


def frame_scene(ann: dict[str, Any], t: float) -> dict[str, Any]:
    """The CLEVR scene dict of the frame showing time ``t``: its objects (with boxes, motion and
    ids), relationships, and which objects touch (pairs of ids)."""
    frame = ann["frames"][frame_index(ann, t)]
    attrs = {o["id"]: o for o in ann["objects"]}
    objects = []
    for o in frame["objects"]:
        a = attrs[o["id"]]
        objects.append({**{k: a[k] for k in ("shape", "color", "material", "size", "rotation")}, **o})
    return {
        "objects": objects,
        "relationships": compute_relationships(objects, ann["directions"]),
        "directions": ann["directions"],
        "touching": frame["touching"],
        "frame": frame["frame"],
    }


__all__ = [
    "CONTACT_GAP",
    "Scenario",
    "Track",
    "annotation",
    "name_of",
    "events",
    "frame_index",
    "frame_scene",
    "make_scenario",
    "render_frames",
]
