"""Oracle perception of the synthetic video world (``vlm_model_name: "scene_oracle"`` on video samples).

NOT a model: frame k's answers are read off the annotation of the frame it shows
(``frames.samples[k].scene``, built by runners/run_video.py from the world's annotation file).
Attribute, presence and relation questions go to :class:`~vision_agents.oracle.SceneOracleAgent`
with that frame's scene; motion ("Is the red cube moving?") and contact ("Is the red cube touching
the blue sphere?") are read from the frame's ``moving`` flags and ``touching`` pairs
(vision_agents/video_vocabulary.py). Anything else raises ValueError naming the question, as the
image oracle does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from neptune_core.clevr_vocab import VALUE_TO_ATTRIBUTE
from vision_agents.oracle import SceneOracleAgent
from vision_agents.video_agents import FramewiseVideoAgent
from vision_agents.video_vocabulary import parse_video_question

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from neptune_core.primitives.video_context import FrameSet
    from vision_agents.base import VisionAgent


def _has(obj: dict[str, Any], values: tuple[str, ...]) -> bool:
    return all(obj.get(VALUE_TO_ATTRIBUTE[v]) == v for v in values)


class VideoOracleAgent(FramewiseVideoAgent):
    """Frame-level oracle answers from the synthetic video world's annotations."""

    name = "scene_oracle"

    def __init__(self, agent: VisionAgent | None = None) -> None:
        super().__init__(agent if isinstance(agent, SceneOracleAgent) else SceneOracleAgent())
        self.name = "scene_oracle"

    @classmethod
    def from_agent(cls, agent: VisionAgent, config: RunConfig) -> VideoOracleAgent:
        return cls(agent)

    def score_frame(self, frames: FrameSet, k: int, question: str, arity: int) -> tuple[torch.Tensor, dict[str, Any]]:
        q = parse_video_question(question)
        if q.kind is None:
            return super().score_frame(frames, k, question, arity)
        self._begin(frames, k)
        oracle: SceneOracleAgent = self.agent  # type: ignore[assignment]
        objects = oracle.scene["objects"]
        touching = {frozenset(p) for p in oracle.scene.get("touching", [])}

        def touch(a: dict[str, Any], b: dict[str, Any]) -> float:
            return float(a is not b and frozenset((a["id"], b["id"])) in touching)

        if q.kind == "motion" and arity == 0 and q.subject:
            return torch.tensor(float(any(o["moving"] for o in objects if _has(o, q.subject)))), {}
        if q.kind == "motion" and arity == 1 and not q.subject:
            idx = oracle.object_indices(frames.boxes[k])
            return torch.tensor([float(objects[i]["moving"]) for i in idx]), {}
        if q.kind == "contact" and arity == 0 and q.subject and q.other:
            subj = [o for o in objects if _has(o, q.subject)]
            other = [o for o in objects if _has(o, q.other)]
            return torch.tensor(max((touch(a, b) for a in subj for b in other), default=0.0)), {}
        if q.kind == "contact" and arity == 2 and not q.subject and not q.other:
            idx = oracle.object_indices(frames.boxes[k])
            return torch.tensor([[touch(objects[i], objects[j]) for j in idx] for i in idx]).reshape(
                len(idx), len(idx)
            ), {}
        raise ValueError(f"scene_oracle cannot answer {question!r} with arity {arity} about a video frame")


__all__ = ["VideoOracleAgent"]
