"""Transformers VLMs on video samples: a model that takes video gets a clip as one video input.

The model is a tiny random Qwen2-VL built in the test (tests/test_vlm_tiny_models.py). Qwen2-VL's
real video processor needs torchvision, which this machine lacks, so the processor gets a small
stand-in video processor (frames in pairs through the PIL image processor, as Qwen2-VL groups
frames two by two); the processor, the chat template's video entry, the model and the agent are real.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from neptune_core.primitives.video_context import FrameSet
from tests.test_vlm_tiny_models import tiny_llava, tiny_qwen2_vl
from vision_agents.hf_video import HFVideoAgent
from vision_agents.hf_vlm import HFVisionAgent

VIDEO_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


class PairedFramesVideoProcessor:
    """Stand-in for Qwen2-VL's torchvision video processor: frames two by two through the image processor."""

    merge_size = 2

    def __init__(self, image_processor) -> None:
        self.image_processor = image_processor
        self.seen: list[int] = []

    def __call__(self, videos, **kwargs):
        values, grids = [], []
        for frames in videos:
            self.seen.append(len(frames))
            pairs = frames[::2]
            out = self.image_processor(images=pairs, return_tensors="pt")
            values.append(out["pixel_values"])
            _, h, w = out["image_grid_thw"][0].tolist()
            grids.append([len(pairs), h, w])
        return {"pixel_values_videos": torch.cat(values), "video_grid_thw": torch.tensor(grids)}


@pytest.fixture(scope="module")
def video_vlm():
    model, processor = tiny_qwen2_vl()
    processor.video_processor = PairedFramesVideoProcessor(processor.image_processor)
    processor.chat_template = VIDEO_TEMPLATE
    return HFVisionAgent("tiny-qwen2-vl", model=model, processor=processor)


def _frames(n: int = 4) -> FrameSet:
    images = [Image.new("RGB", (56, 56), (40 * k, 20, 200 - 40 * k)) for k in range(n)]
    return FrameSet([0.5 * k for k in range(n)], images, [[] for _ in images])


def test_a_model_that_takes_video_gets_the_clip_as_video(video_vlm):
    agent = HFVideoAgent(video_vlm)
    assert agent.takes_video
    frames = _frames()
    calls = []
    original = video_vlm.model.forward

    def spy(*args, **kwargs):
        calls.append({k: tuple(v.shape) for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
        return original(*args, **kwargs)

    video_vlm.model.forward = spy
    try:
        p, info = agent.choose(frames, [1, 2, 3], "What happens?", ["a", "b", "c"])
    finally:
        video_vlm.model.forward = original
    assert p.shape == (3,) and ((0 <= p) & (p <= 1)).all() and info == {"as_video": True, "clip_frames": 3}
    assert len(calls) == 3 and all("pixel_values_videos" in c and "pixel_values" not in c for c in calls)
    assert video_vlm.processor.video_processor.seen[-1] == 3  # the clip's frames, not the whole video
    answer, info = agent.answer_clip(frames, [0, 1, 2, 3], "What happens?")
    assert isinstance(answer, str) and info["as_video"] and agent.video_calls == 4


def test_the_same_option_scores_the_same_alone_or_among_others(video_vlm):
    agent = HFVideoAgent(video_vlm)
    frames = _frames()
    many, _ = agent.choose(frames, [0, 1], "What happens?", ["a", "b"])
    one, _ = agent.choose(frames, [0, 1], "What happens?", ["b", "a"])
    assert many.tolist() == pytest.approx(list(reversed(one.tolist())), abs=1e-6)


def test_a_model_without_video_answers_frame_by_frame():
    model, processor = tiny_llava()
    agent = HFVideoAgent(HFVisionAgent("tiny-llava", model=model, processor=processor))
    assert not agent.takes_video
    frames = _frames(3)
    p, info = agent.choose(frames, [0, 2], "What happens?", ["a", "b"])
    assert p.shape == (2,) and "mean" in info["how"]
    scores, _ = agent.score_frames(frames, "Is it red?", 0)
    assert scores.shape == (3,)


def test_each_backend_gets_its_video_agent(video_vlm):
    from neptune_core.config import load_config
    from vision_agents.classic_agent import ClassicAgent
    from vision_agents.classic_video import ClassicVideoAgent
    from vision_agents.oracle import SceneOracleAgent
    from vision_agents.video_agents import FramewiseVideoAgent, build_video_agent
    from vision_agents.video_oracle import VideoOracleAgent

    def build(agent, name):
        return build_video_agent(agent, load_config(None, {"vlm_model_name": name}))

    assert isinstance(build(video_vlm, "qwen2_2b"), HFVideoAgent)
    assert isinstance(build(ClassicAgent(), "classic"), ClassicVideoAgent)
    assert isinstance(build(SceneOracleAgent(), "scene_oracle"), VideoOracleAgent)
    other = build(SceneOracleAgent(), "ensemble")
    assert type(other) is FramewiseVideoAgent
