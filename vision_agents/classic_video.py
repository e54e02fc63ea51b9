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
conjunction's min over logits). The thresholds were set on the synthetic world's train split
(seed 1) by bench/fit_classic_video.py; the demo runs on seed 0.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vision_agents.classic_agent import MAX_LOGIT, OBJECTNESS_LOGIT, ClassicAgent
from vision_agents.video_agents import FramewiseVideoAgent
from vision_agents.video_vocabulary import VideoQuestion, parse_video_question
from vision_agents.vocabulary import unknown_info

if TYPE_CHECKING:
    from PIL import Image

    from neptune_core.config import RunConfig
    from neptune_core.primitives.video_context import FrameSet
    from vision_agents.base import VisionAgent

CACHE_FRAMES = 96
MAX_GAP_S = 1.0  # neighbouring frames further apart than this are not used for motion
SPEED_THRESHOLD = 0.35  # floor units per second
SPEED_SCALE = 6.0
CONTACT_THRESHOLD = 0.45  # floor units between the two surfaces
CONTACT_SCALE = 10.0


class CachingClassicAgent(ClassicAgent):
    """The classic agent, keeping the segmentation and measurements of the last ``size`` images."""

    def __init__(self, size: int = CACHE_FRAMES) -> None:
        super().__init__()
        self.size = size
        self._kept: OrderedDict[str, tuple[Any, dict, dict]] = OrderedDict()

    def _segmentation(self, image: Image.Image) -> Any:
        key = hashlib.md5(image.tobytes()).hexdigest()
        if key != self._seg_key:
            if self._seg_key is not None:
                self._kept[self._seg_key] = (self._seg, self._feats, self._figures)
            if key in self._kept:
                self._seg, self._feats, self._figures = self._kept.pop(key)
                self._seg_key = key
            else:
                super()._segmentation(image)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return self._seg


def _clip(x: float) -> float:
    return float(np.clip(x, -MAX_LOGIT, MAX_LOGIT))


class ClassicVideoAgent(FramewiseVideoAgent):
    """Frame-level classic perception with motion and contact (see the module docstring)."""

    name = "classic"

    def __init__(self, agent: ClassicAgent | None = None) -> None:
        super().__init__(agent if isinstance(agent, CachingClassicAgent) else CachingClassicAgent())
        self.name = "classic"

    @classmethod
    def from_agent(cls, agent: VisionAgent, config: RunConfig) -> ClassicVideoAgent:
        return cls()

    # ---- finding things in a frame ------------------------------------------------------------
    @property
    def classic(self) -> ClassicAgent:
        return self.agent  # type: ignore[return-value]

    def _find(self, frames: FrameSet, k: int, values: tuple[str, ...]) -> tuple[int | None, float]:
        """(the box of frame ``k`` that best fits ``values``, the logit that it is one) (None: no box)."""
        boxes = frames.boxes[k]
        if not boxes:
            return None, -OBJECTNESS_LOGIT
        question = "Is the object in the red box a " + " ".join(values) + "?"
        logits = self.classic.logits(frames.images[k], boxes, [question], 1)[0]
        best = int(torch.argmax(logits))
        return best, float(logits[best])

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


__all__ = ["CachingClassicAgent", "ClassicVideoAgent"]
