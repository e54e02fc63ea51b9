"""A transformers VLM on video samples: per-frame questions frame by frame, clips as video when it takes video.

Models whose processor has a video processor and whose config names a video token (Qwen2-VL,
Qwen2.5-VL; ``takes_video``) get a clip (``query_video``, ``choose``) as one video input: the
chat message holds ``{"type": "video"}`` and the processor gets the clip's frames, in time
order, as ``videos=[frames]``. ``choose`` reads p(yes) of one yes/no question per option
(:func:`vision_agents.video_agents.option_question`) from the Yes/No logits, like ``score``;
``query_video`` generates a short answer. Other models answer frame by frame
(:class:`~vision_agents.video_agents.FramewiseVideoAgent`). ``score_frames`` and
``query_frame`` always go frame by frame (one image each, as ``score``/``query`` do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from vision_agents.calls import count
from vision_agents.hf_vlm import HFVisionAgent, p_yes
from vision_agents.prompting import normalize_answer
from vision_agents.video_agents import FramewiseVideoAgent, option_question

if TYPE_CHECKING:
    from PIL import Image

    from neptune_core.config import RunConfig
    from neptune_core.primitives.video_context import FrameSet
    from vision_agents.base import VisionAgent

MAX_CLIP_FRAMES = 32  # frames of one clip given to the model (evenly thinned beyond)


class HFVideoAgent(FramewiseVideoAgent):
    """See the module docstring. ``video_calls`` counts forward / generate calls with a video input."""

    def __init__(self, vlm: HFVisionAgent, max_clip_frames: int = MAX_CLIP_FRAMES) -> None:
        super().__init__(vlm)
        self.vlm = vlm
        self.max_clip_frames = max_clip_frames
        self.video_calls = 0

    @classmethod
    def from_agent(cls, agent: VisionAgent, config: RunConfig) -> HFVideoAgent:
        if not isinstance(agent, HFVisionAgent):
            raise TypeError(f"HFVideoAgent needs a transformers VisionAgent, got {type(agent).__name__}")
        return cls(agent)

    @property
    def takes_video(self) -> bool:  # type: ignore[override]
        """Whether the loaded model takes a video input (a video processor and a video token)."""
        self.vlm.load()
        processor, model = self.vlm.processor, self.vlm.model
        return (
            getattr(processor, "video_processor", None) is not None
            and getattr(model.config, "video_token_id", None) is not None
        )

    def _clip(self, frames: FrameSet, indices: list[int]) -> list[Image.Image]:
        if len(indices) > self.max_clip_frames:
            step = len(indices) / self.max_clip_frames
            indices = [indices[int((k + 0.5) * step)] for k in range(self.max_clip_frames)]
        return [frames.images[i].convert("RGB") for i in indices]

    def _inputs(self, clip: list[Image.Image], question: str) -> dict[str, torch.Tensor]:
        from vision_agents.devices import to_model

        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
        prompt = self.vlm.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = self.vlm.processor(text=[prompt], videos=[clip], return_tensors="pt")
        return to_model(enc, self.vlm.model)

    def answer_clip(self, frames: FrameSet, indices: list[int], question: str) -> tuple[str, dict[str, Any]]:
        if not self.takes_video:
            return super().answer_clip(frames, indices, question)
        clip = self._clip(frames, indices)
        inputs = self._inputs(clip, question)
        with torch.inference_mode():
            self.video_calls += 1
            count(queries=1)
            gen = self.vlm.model.generate(**inputs, max_new_tokens=self.vlm.max_new_tokens, do_sample=False)
        new = gen[0, inputs["input_ids"].shape[1] :]
        answer = normalize_answer(self.vlm.processor.tokenizer.decode(new, skip_special_tokens=True))
        return answer, {"as_video": True, "clip_frames": len(clip)}

    def choose(
        self, frames: FrameSet, indices: list[int], question: str, options: list[str]
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        if not self.takes_video:
            return super().choose(frames, indices, question, options)
        self.vlm.load()
        yes_ids, no_ids = self.vlm._yes_no  # type: ignore[misc]
        clip = self._clip(frames, indices)
        probs = []
        for option in options:
            inputs = self._inputs(clip, option_question(question, option))
            with torch.inference_mode(not self.vlm.trainable):
                self.video_calls += 1
                count(arity=0, box_evals=1)
                logits = self.vlm.model(**inputs, logits_to_keep=1).logits[:, -1]
            probs.append(p_yes(logits, yes_ids, no_ids)[0].cpu())
        return torch.stack(probs), {"as_video": True, "clip_frames": len(clip)}


__all__ = ["HFVideoAgent"]
