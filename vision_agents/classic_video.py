"""The ``classic`` VisionAgent on video frames: CLEVR attributes per frame, motion and contact across frames.

No learned network and no annotations. Attribute and presence questions go to the classic
image agent frame by frame (vision_agents/classic_agent.py); its segmentation and measurements
are kept for the last :data:`CACHE_FRAMES` frames, so the many questions a program asks about the
same frames measure each frame once. Beyond one frame (vision_agents/video_vocabulary.py):

- motion, "Is the red cube moving?": the described object is found in the frame and in its
  neighbouring frames (the box it fits best), its floor position (classic_features.ground_point,
  from the nominal CLEVR camera) is compared, and the speed over the frames' time gap gives the
  logit ``SPEED_SCALE * (speed - SPEED_THRESHOLD)``; "Is the object in the red box moving?" follows
  the box to the neighbouring frames by colour;
- contact, "Is the red cube touching the blue sphere?": the gap between the two objects' surfaces
  (floor distance minus half their metric widths) gives ``CONTACT_SCALE * (CONTACT_THRESHOLD - gap)``.

Each is capped by how sure the agent is that the described objects are in the frame (the
conjunction's min over logits).

An object's attributes do not change while it moves, so they are pooled over time: the boxes of
consecutive frames are linked into tracks (nearest colour and position, greedy), and a box's
attribute probabilities are those of its whole track (the mean of the per-frame log-probabilities,
renormalised). Presence and attribute questions about CLEVR values ("Is there a blue cylinder?",
"Is the object in the red box a blue cylinder?") use these pooled probabilities; a single small
frame often misreads a shape, a track rarely does. The thresholds were set on the synthetic world's train split
(seed 1) by bench/fit_classic_video.py; the demo runs on seed 0.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from neptune_core.clevr_vocab import ATTRIBUTES, VALUE_TO_ATTRIBUTE
from vision_agents.classic_agent import OBJECTNESS_LOGIT, ClassicAgent
from vision_agents.classic_heads import MAX_LOGIT, ClassicHeads
from vision_agents.video_agents import FramewiseVideoAgent
from vision_agents.video_vocabulary import VideoQuestion, parse_video_question
from vision_agents.vocabulary import parse, unknown_info

if TYPE_CHECKING:
    from PIL import Image

    from neptune_core.config import RunConfig
    from neptune_core.primitives.video_context import FrameSet
    from vision_agents.base import VisionAgent
    from vision_agents.classic_detector import Segmentation

CACHE_FRAMES = 96
MAX_GAP_S = 1.0  # neighbouring frames further apart than this are not used for motion
SPEED_THRESHOLD = 0.35  # floor units per second
SPEED_SCALE = 6.0
CONTACT_THRESHOLD = 0.45  # floor units between the two surfaces
CONTACT_SCALE = 10.0
TRACK_MAX_COLOUR = 20.0  # Lab distance beyond which two boxes of consecutive frames are not one object
TRACK_MAX_MOVE = 0.2  # of the image diagonal, between consecutive frames


class CachingClassicAgent(ClassicAgent):
    """The classic agent, keeping the segmentations of the last ``size`` images (it keeps one; a
    program's questions go back and forth over the same frames)."""

    def __init__(self, heads: ClassicHeads | None = None, size: int = CACHE_FRAMES) -> None:
        super().__init__(heads)
        self.size = size
        self._kept: OrderedDict[str, Segmentation] = OrderedDict()

    def _segmentation(self, image: Image.Image, key: str) -> Segmentation:
        if key in self._kept:
            self._kept.move_to_end(key)
            seg = self._kept[key]
            self._seg = (key, seg)
            return seg
        seg = super()._segmentation(image, key)
        self._kept[key] = seg
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return seg


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return float(np.clip(np.log(p / (1 - p)), -MAX_LOGIT, MAX_LOGIT))


def _clip(x: float) -> float:
    return float(np.clip(x, -MAX_LOGIT, MAX_LOGIT))


class ClassicVideoAgent(FramewiseVideoAgent):
    """Frame-level classic perception with motion and contact (see the module docstring)."""

    name = "classic"

    def __init__(self, agent: ClassicAgent | None = None) -> None:
        if not isinstance(agent, CachingClassicAgent):  # the run's heads (classic_params / vlm_adapter)
            agent = CachingClassicAgent(agent.heads if isinstance(agent, ClassicAgent) else None)
        super().__init__(agent)
        self.name = "classic"
        self._pool_key: Any = None
        self._pool: dict[tuple[int, int], dict[str, dict[str, float]]] = {}

    @classmethod
    def from_agent(cls, agent: VisionAgent, config: RunConfig) -> ClassicVideoAgent:
        return cls(agent if isinstance(agent, ClassicAgent) else ClassicAgent.from_config(config))

    # ---- finding things in a frame ------------------------------------------------------------
    @property
    def classic(self) -> ClassicAgent:
        return self.agent  # type: ignore[return-value]

    # ---- attributes pooled over tracks ------------------------------------------------------------
    def _tracks(self, frames: FrameSet) -> list[list[int]]:
        """A track id for every box of every frame (boxes of consecutive frames linked by colour and position)."""
        ids: list[list[int]] = []
        next_id = 0
        for k in range(len(frames)):
            w, h = frames.images[k].size
            diag = float(np.hypot(w, h))
            feats = [self.classic.features(frames.images[k], b) for b in frames.boxes[k]]
            here = [-1] * len(feats)
            if k > 0 and ids[k - 1]:
                prev = [self.classic.features(frames.images[k - 1], b) for b in frames.boxes[k - 1]]
                pairs = []
                for i, f in enumerate(feats):
                    for j, g in enumerate(prev):
                        colour = float(np.linalg.norm(f.lab - g.lab))
                        move = _centre_distance(frames.boxes[k][i], frames.boxes[k - 1][j]) / diag
                        if colour <= TRACK_MAX_COLOUR and move <= TRACK_MAX_MOVE:
                            pairs.append((colour + 100.0 * move, i, j))
                used: set[int] = set()
                for _, i, j in sorted(pairs):
                    if here[i] < 0 and j not in used:
                        here[i] = ids[k - 1][j]
                        used.add(j)
            for i in range(len(here)):
                if here[i] < 0:
                    here[i], next_id = next_id, next_id + 1
            ids.append(here)
        return ids

    def pooled(self, frames: FrameSet) -> dict[tuple[int, int], dict[str, dict[str, float]]]:
        """(frame, box) -> attribute -> value -> probability, pooled over the box's track."""
        key = (
            getattr(frames.video, "path", None),
            tuple(frames.times),
            tuple(tuple(map(tuple, b)) for b in frames.boxes),
        )
        if key != self._pool_key:
            ids = self._tracks(frames)
            sums: dict[int, dict[str, np.ndarray]] = {}
            counts: dict[int, int] = {}
            heads = self.classic.heads
            for k, row in enumerate(ids):
                if not row:
                    continue
                enc = self.classic.encode(frames.images[k], frames.boxes[k])
                with torch.no_grad():  # the heads' log p(value) of every box of the frame, in CLEVR's value order
                    lps = {a: _in_order(heads, enc, a) for a in ATTRIBUTES}
                for i, tid in enumerate(row):
                    acc = sums.setdefault(tid, {a: np.zeros(len(ATTRIBUTES[a])) for a in ATTRIBUTES})
                    for a in ATTRIBUTES:
                        acc[a] += lps[a][i]
                    counts[tid] = counts.get(tid, 0) + 1
            probs: dict[int, dict[str, dict[str, float]]] = {}
            for tid, acc in sums.items():
                probs[tid] = {}
                for a, total in acc.items():
                    m = total / counts[tid]
                    e = np.exp(m - m.max())
                    probs[tid][a] = dict(zip(ATTRIBUTES[a], (e / e.sum()).tolist(), strict=True))
            self._pool = {(k, i): probs[tid] for k, row in enumerate(ids) for i, tid in enumerate(row)}
            self._pool_key = key
        return self._pool

    def _values_logit(self, frames: FrameSet, k: int, i: int, values: tuple[str, ...] | list[str]) -> float:
        """Logit that box ``i`` of frame ``k`` has every value (its track's pooled attribute probabilities)."""
        pool = self.pooled(frames)[(k, i)]
        return min((_logit(pool[VALUE_TO_ATTRIBUTE[v]][v]) for v in values), default=OBJECTNESS_LOGIT)

    def _find(self, frames: FrameSet, k: int, values: tuple[str, ...]) -> tuple[int | None, float]:
        """(the box of frame ``k`` that best fits ``values``, the logit that it is one) (None: no box)."""
        boxes = frames.boxes[k]
        if not boxes:
            return None, -OBJECTNESS_LOGIT
        logits = [self._values_logit(frames, k, i, values) for i in range(len(boxes))]
        best = int(np.argmax(logits))
        return best, float(logits[best])

    def _attributes(self, frames: FrameSet, k: int, question: str, arity: int) -> torch.Tensor | None:
        """Pooled answers to "Is there a <values>?" (arity 0) / "Is the object in the red box a <values>?" (arity 1);
        None for any other question (the image agent answers it)."""
        q = parse(question, 1)
        if arity not in (0, 1) or not q.values or q.unknown or q.negated or q.relation or q.attribute or q.same:
            return None
        if not frames.boxes[k] or not self.classic.clevr_floor(frames.images[k]):
            return None
        logits = [self._values_logit(frames, k, i, q.values) for i in range(len(frames.boxes[k]))]
        if arity == 0:
            return torch.sigmoid(torch.tensor(max(logits)))
        return torch.sigmoid(torch.tensor(logits))

    def _where(self, frames: FrameSet, k: int, i: int) -> tuple[np.ndarray, float]:
        f = self.classic.features(frames.images[k], frames.boxes[k][i])
        return np.asarray(f.ground_xy, dtype=np.float64), float(f.world_size)

    def _neighbours(self, frames: FrameSet, k: int) -> list[int]:
        out = []
        for j in (k - 1, k + 1):
            if 0 <= j < len(frames) and abs(frames.times[j] - frames.times[k]) <= MAX_GAP_S:
                out.append(j)
        return out

    def _follow(self, frames: FrameSet, k: int, i: int, j: int) -> int | None:
        """The box of frame ``j`` that looks most like box ``i`` of frame ``k`` (colour first, then size)."""
        if not frames.boxes[j]:
            return None
        fi = self.classic.features(frames.images[k], frames.boxes[k][i])
        costs = []
        for b in frames.boxes[j]:
            fj = self.classic.features(frames.images[j], b)
            costs.append(float(np.linalg.norm(fi.lab - fj.lab)) + 20.0 * abs(fi.world_size - fj.world_size))
        return int(np.argmin(costs))

    def _speed(self, frames: FrameSet, k: int, track: dict[int, int]) -> float | None:
        """Floor speed from the positions of a tracked object (frame -> box) around frame ``k``."""
        have = sorted(track)
        if len(have) < 2:
            return None
        a, b = have[0], have[-1]
        dt = frames.times[b] - frames.times[a]
        if dt <= 0:
            return None
        return float(np.linalg.norm(self._where(frames, b, track[b])[0] - self._where(frames, a, track[a])[0]) / dt)

    # ---- questions -------------------------------------------------------------------------------
    def _motion(self, frames: FrameSet, k: int, q: VideoQuestion) -> tuple[float, list[str]]:
        i, present = self._find(frames, k, q.subject)
        if i is None:
            return -OBJECTNESS_LOGIT, []
        track = {k: i}
        for j in self._neighbours(frames, k):
            m, there = self._find(frames, j, q.subject)
            if m is not None and there > 0:
                track[j] = m
        speed = self._speed(frames, k, track)
        if speed is None:
            return min(present, 0.0), ["motion (no neighbouring frame shows it)"]
        return min(present, _clip(SPEED_SCALE * (speed - SPEED_THRESHOLD))), []

    def _motion_of_box(self, frames: FrameSet, k: int, i: int) -> float:
        track = {k: i}
        for j in self._neighbours(frames, k):
            m = self._follow(frames, k, i, j)
            if m is not None:
                track[j] = m
        speed = self._speed(frames, k, track)
        return 0.0 if speed is None else _clip(SPEED_SCALE * (speed - SPEED_THRESHOLD))

    def _gap_logit(self, frames: FrameSet, k: int, i: int, j: int) -> float:
        (pa, wa), (pb, wb) = self._where(frames, k, i), self._where(frames, k, j)
        gap = float(np.linalg.norm(pa - pb)) - (wa + wb) / 2
        return _clip(CONTACT_SCALE * (CONTACT_THRESHOLD - gap))

    def _contact(self, frames: FrameSet, k: int, q: VideoQuestion) -> float:
        i, pi = self._find(frames, k, q.subject)
        j, pj = self._find(frames, k, q.other)
        if i is None or j is None or i == j:
            return -OBJECTNESS_LOGIT
        return min(pi, pj, self._gap_logit(frames, k, i, j))

    def score_frame(self, frames: FrameSet, k: int, question: str, arity: int) -> tuple[torch.Tensor, dict[str, Any]]:
        q = parse_video_question(question)
        if q.kind is None:
            pooled = self._attributes(frames, k, question, arity)
            if pooled is not None:
                return pooled, {}
            return super().score_frame(frames, k, question, arity)
        n = len(frames.boxes[k])
        if q.kind == "motion" and arity == 0 and q.subject:
            logit, unknown = self._motion(frames, k, q)
            return torch.sigmoid(torch.tensor(logit)), unknown_info(unknown)
        if q.kind == "motion" and arity == 1:
            return torch.sigmoid(torch.tensor([self._motion_of_box(frames, k, i) for i in range(n)])).reshape(n), {}
        if q.kind == "contact" and arity == 0 and q.subject and q.other:
            return torch.sigmoid(torch.tensor(self._contact(frames, k, q))), {}
        if q.kind == "contact" and arity == 2:
            logits = [[self._gap_logit(frames, k, i, j) if i != j else -MAX_LOGIT for j in range(n)] for i in range(n)]
            return torch.sigmoid(torch.tensor(logits)).reshape(n, n), {}
        shape = (n,) * arity
        return torch.full(shape, 0.5), unknown_info([question])


def _in_order(heads: ClassicHeads, enc: Any, attribute: str) -> np.ndarray:
    """log p(value) of every box, (n, values), columns in ``ATTRIBUTES[attribute]``'s order."""
    lp = heads.log_probs(enc, attribute).double().numpy()
    order = [heads.classes(attribute).index(v) for v in ATTRIBUTES[attribute]]
    return lp[:, order]


def _centre_distance(a: list[float], b: list[float]) -> float:
    return float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2))


__all__ = ["CachingClassicAgent", "ClassicVideoAgent"]
