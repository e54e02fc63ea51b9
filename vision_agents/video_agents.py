"""Perception over the frames of a video sample: the :class:`VideoAgent` contract and its backends.

The frame primitives (neptune_core/primitives/: score_frames, query_frame, locate, clip,
query_video, choose) call a VideoAgent with the sample's :class:`FrameSet` (frames in time
order, the boxes found in each, a per-frame Sample):

- ``score_frames(frames, question, arity)``: p(yes) per frame, ``(T,) + (N,) * arity``;
- ``answer_frame(frames, k, box, question)``: an open answer about frame k (or a box in it);
- ``answer_clip(frames, indices, question)``: an open answer about a clip (VLAgent's VIDQA);
- ``choose(frames, indices, question, options)``: p(option is right) per option (VLAgent's SELECT).

Each returns its result and a dict for the trace; the model calls made are counted
(vision_agents/calls.py: one box evaluation per frame and box tuple, one query per open answer). :class:`FramewiseVideoAgent` serves any
image VisionAgent frame by frame (a clip: one answer per frame, the most frequent wins; options:
one yes/no question per option and frame, averaged over the clip). Backends that know more:
``scene_oracle`` -> vision_agents/video_oracle.py (motion and contact from the synthetic world's
annotations), ``classic`` -> vision_agents/classic_video.py (motion and contact from pixels
across frames), transformers VLMs that take video (Qwen2-VL) -> vision_agents/hf_video.py
(clips go to the model as video; ``takes_video``).

Add one: subclass VideoAgent (or FramewiseVideoAgent), give it ``from_agent(agent, config)``,
and add a lazy line to ``VIDEO_AGENTS`` in vision_agents/__init__.py under the
``vlm_model_name`` it serves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from typing import TYPE_CHECKING, Any

import torch

from neptune_core.types import Box
from vision_agents.calls import count

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from neptune_core.primitives.video_context import FrameSet
    from vision_agents.base import VisionAgent


def option_question(question: str, option: str) -> str:
    """The yes/no question that scores one option of a multiple-choice question."""
    return f"Question: {question.strip()} Candidate answer: {option.strip()}. Is the candidate answer right?"


class VideoAgent(ABC):
    """Perceives the frames of a video sample (see the module docstring)."""

    name: str = "video_agent"
    takes_video: bool = False  # True: clips reach the model as video; False: frame by frame

    def preflight(self) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample; raise a UserError if the backend cannot work."""

    @abstractmethod
    def score_frames(self, frames: FrameSet, question: str, arity: int) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """p(yes) per frame, shape ``(T,) + (N,) * arity`` (N = ``frames.max_boxes``, missing boxes 0), and one
        trace dict per frame."""

    @abstractmethod
    def answer_frame(self, frames: FrameSet, k: int, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        """An open answer about frame ``k`` (or ``box`` in it)."""

    def answer_clip(self, frames: FrameSet, indices: list[int], question: str) -> tuple[str, dict[str, Any]]:
        """An open answer about the frames ``indices``: one answer per frame, the most frequent (the earliest on a tie)."""
        answers = [self.answer_frame(frames, k, None, question)[0] for k in indices]
        votes = Counter(answers)
        best = max(votes.values())
        answer = next(a for a in answers if votes[a] == best)
        return answer, {"per_frame": answers, "votes": dict(votes)}

    def choose(
        self, frames: FrameSet, indices: list[int], question: str, options: list[str]
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """p(option is right): the yes/no question of each option (:func:`option_question`) per frame, averaged."""
        rows = []
        unknown: list[str] = []
        for option in options:
            p, infos = self.score_frames(frames, option_question(question, option), 0)
            rows.append(p[indices].float().mean())
            unknown += [w for info in infos for w in info.get("unknown_concepts", []) if w not in unknown]
        info: dict[str, Any] = {"how": "mean over the clip's frames of a yes/no question per option"}
        if unknown:
            info["unknown_concepts"] = unknown
        return torch.stack(rows), info


class FramewiseVideoAgent(VideoAgent):
    """Any image VisionAgent, frame by frame: frame k is ``frames.images[k]`` with ``frames.boxes[k]``.

    Before each frame's call the agent gets ``begin_sample(frames.samples[k])`` (so backends that read
    per-sample state, like the scene oracle, see that frame's)."""

    def __init__(self, agent: VisionAgent) -> None:
        self.agent = agent
        self.name = getattr(agent, "name", "vision_agent")

    @classmethod
    def from_agent(cls, agent: VisionAgent, config: RunConfig) -> VideoAgent:
        return cls(agent)

    @property
    def counted_inside(self) -> bool:
        """The agent counts its model calls itself (an ensemble: each member's memo counts)."""
        return bool(getattr(self.agent, "memoises_itself", False))

    def preflight(self) -> None:
        self.agent.preflight()

    def _begin(self, frames: FrameSet, k: int) -> None:
        if frames.samples:
            self.agent.begin_sample(frames.samples[k])

    def _restore(self, frames: FrameSet) -> None:
        """Back to the key frame's state: ``score``/``query`` of the same program share the agent."""
        self._begin(frames, frames.key_index())

    def score_frame(self, frames: FrameSet, k: int, question: str, arity: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """p(yes) for frame ``k`` alone: shape ``(n_k,) * arity``."""
        self._begin(frames, k)
        out, infos = self.agent.score_with_info(frames.images[k], frames.boxes[k], [question], arity)
        return out[0], infos[0]

    def score_frames(self, frames: FrameSet, question: str, arity: int) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        n = frames.max_boxes
        data = torch.zeros((len(frames),) + (n,) * arity)
        infos = []
        for k in range(len(frames)):
            p, info = self.score_frame(frames, k, question, arity)
            m = len(frames.boxes[k])
            if not self.counted_inside:  # the row's model_calls: one evaluation per frame and box tuple
                count(arity=arity, box_evals=m**arity)
            if arity == 0:
                data[k] = p
            elif arity == 1:
                data[k, :m] = p
            else:
                data[k, :m, :m] = p
            infos.append(info)
        self._restore(frames)
        return data, infos

    def answer_frame(self, frames: FrameSet, k: int, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        self._begin(frames, k)
        if not self.counted_inside:
            count(queries=1)
        try:
            return self.agent.answer_with_info(frames.images[k], box, question)
        finally:
            self._restore(frames)


def build_video_agent(agent: VisionAgent, config: RunConfig) -> VideoAgent:
    """The VideoAgent for ``config.vlm_model_name`` around ``agent`` (the run's image VisionAgent, unwrapped)."""
    from vision_agents import VIDEO_AGENTS

    if config.vlm_model_name in VIDEO_AGENTS:
        return VIDEO_AGENTS.get(config.vlm_model_name).from_agent(agent, config)
    from vision_agents.hf_vlm import HFVisionAgent

    if isinstance(agent, HFVisionAgent):
        from vision_agents.hf_video import HFVideoAgent

        return HFVideoAgent.from_agent(agent, config)
    return FramewiseVideoAgent.from_agent(agent, config)


__all__ = ["FramewiseVideoAgent", "VideoAgent", "build_video_agent", "option_question"]
