"""Captioner backends: Florence-2 and a transformers VLM on tiny random models built here
(their output head forced to one word, so the caption proves the whole path ran), the
OpenAI-compatible captioner against the fake server, the scene captioner, crops, the
registry and preflight failures."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from neptune_core.config import load_config  # noqa: E402
from neptune_core.errors import ConfigError, ModelUnavailableError, UnknownNameError  # noqa: E402
from neptune_core.types import Sample  # noqa: E402
from tests import fake_openai_server  # noqa: E402
from tests.fake_openai_server import reply  # noqa: E402
from tests.test_vlm_tiny_models import make_tokenizer, marked_scene, tiny_llava  # noqa: E402
from vision_agents import CAPTIONERS, build_captioner  # noqa: E402
from vision_agents.captioners import (  # noqa: E402
    DESCRIBE_PROMPT,
    Florence2Captioner,
    HFGenerateCaptioner,
    OpenAICaptioner,
    SceneCaptioner,
    crop_box,
)

fake_openai = fake_openai_server.fake_openai


def force_word(model: Any, tok: Any, word: str, hidden: int = 32) -> None:
    """Replace the output head so that greedy decoding always emits ``word``."""
    head = torch.nn.Linear(hidden, len(tok), bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[tok.convert_tokens_to_ids(word)] = 5.0
    model.lm_head = head


def tiny_florence2() -> tuple[Any, Any, Any]:
    from transformers import BartConfig, Florence2Config, Florence2ForConditionalGeneration, Florence2Processor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = make_tokenizer(
        ["<s>", "</s>", "<image>"], eos_token="</s>", bos_token="<s>", extra_special_tokens={"image_token": "<image>"}
    )
    ip = CLIPImageProcessorPil(size={"height": 32, "width": 32}, do_center_crop=False)
    ip.image_seq_length = 17  # 32 px -> 4 x 4 patches after two stages, plus one pooled token
    proc = Florence2Processor(image_processor=ip, tokenizer=tok, post_processor_config={"pure_text": {}})
    ids = tok.convert_tokens_to_ids
    text = BartConfig(
        vocab_size=len(tok),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=ids("<s>"),
        eos_token_id=ids("</s>"),
        decoder_start_token_id=ids("</s>"),
    )
    vision = dict(
        depths=[1, 1],
        patch_size=[7, 3],
        patch_stride=[4, 2],
        patch_padding=[3, 1],
        patch_prenorm=[False, True],
        embed_dim=[16, 32],
        num_heads=[2, 4],
        num_groups=[2, 4],
        window_size=2,
        projection_dim=32,
        max_position_embeddings=16,
    )
    cfg = Florence2Config(
        text_config=text, vision_config=vision, image_token_id=tok.image_token_id, tie_word_embeddings=False
    )
    return Florence2ForConditionalGeneration(cfg).eval(), proc, tok


def test_florence2_captioner_runs_the_detailed_caption_task() -> None:
    torch.manual_seed(0)
    model, proc, tok = tiny_florence2()
    force_word(model, tok, "cube")
    cap = Florence2Captioner(model=model, processor=proc, max_new_tokens=3)
    whole = cap.caption(marked_scene())
    region = cap.caption(marked_scene(size=(64, 48)), [5, 5, 40, 30])
    assert "cube" in whole and "cube" in region
    assert cap.model_id == "florence-community/Florence-2-large"  # the default checkpoint


def test_hf_generate_captioner_on_a_tiny_llava() -> None:
    torch.manual_seed(0)
    model, proc = tiny_llava()
    force_word(model, proc.tokenizer, "sphere")
    cap = HFGenerateCaptioner("tiny-llava", device="cpu", max_new_tokens=4, model=model, processor=proc)
    text = cap.caption(marked_scene())
    assert text.count("sphere") == 4  # exactly the forced tokens: the prompt is not echoed back


def test_loading_failures_are_one_line_user_errors(tmp_path: Any) -> None:
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ModelUnavailableError, match="cannot load model"):
        Florence2Captioner(missing, device="cpu").preflight()
    with pytest.raises(ConfigError, match="captioner_model"):
        build_captioner(load_config(None, {"verify": {"caption": {"captioner": "hf_generate"}}}))
    with pytest.raises(ConfigError, match="captioner_base_url"):
        build_captioner(load_config(None, {"verify": {"caption": {"captioner": "openai_vlm"}}}))
    with pytest.raises(UnknownNameError, match="known: florence2, hf_generate, openai_vlm, scene"):
        build_captioner(load_config(None, {"verify": {"caption": {"captioner": "blip"}}}))
    assert CAPTIONERS.names() == ["florence2", "hf_generate", "openai_vlm", "scene"]


def test_openai_captioner(fake_openai: fake_openai_server.FakeOpenAIServer) -> None:
    fake_openai.script(reply("A large red metal cube beside a small sphere."))
    cfg = load_config(
        None, {"verify": {"caption": {"captioner": "openai_vlm", "captioner_base_url": fake_openai.base_url}}}
    )
    cap = build_captioner(cfg)
    assert isinstance(cap, OpenAICaptioner)
    cap.preflight()  # asks /v1/models for the served name
    assert cap.caption(marked_scene()) == "A large red metal cube beside a small sphere."
    body = fake_openai.requests[-1]
    content = body["messages"][0]["content"]
    assert content[1]["text"] == DESCRIBE_PROMPT and content[0]["image_url"]["url"].startswith("data:image/png")


def test_openai_captioner_preflight_names_the_server() -> None:
    cap = OpenAICaptioner("http://127.0.0.1:9/v1")
    cap.client.policy = dataclasses.replace(cap.client.policy, retries=0)
    with pytest.raises(ModelUnavailableError, match="not reachable"):
        cap.preflight()


def test_scene_captioner_and_crops() -> None:
    scene = {
        "objects": [
            {"size": "large", "color": "red", "material": "metal", "shape": "cube", "bbox": [0, 0, 10, 10]},
            {"size": "small", "color": "blue", "material": "rubber", "shape": "sphere", "bbox": [20, 0, 30, 10]},
        ]
    }
    sample = Sample(id="s", question="q", scene=scene)
    cap = SceneCaptioner()
    image = Image.new("RGB", (40, 20))
    assert cap.caption(image, sample=sample) == (
        "A rendered scene with 2 objects on a grey floor: a large red metal cube, a small blue rubber sphere."
    )
    assert cap.caption(image, [21, 1, 29, 9], sample=sample) == "A small blue rubber sphere on a grey floor."
    with pytest.raises(ConfigError, match="scene annotations"):
        cap.caption(image, sample=Sample(id="x", question="q"))
    assert crop_box(image, [10, 5, 20, 15]).size == (12, 12)  # 10 % margin each side, clipped to the image
    with pytest.raises(ValueError, match="no area"):
        crop_box(image, [50, 50, 60, 60])


def test_a_captioner_captions_one_image_at_a_time_whatever_the_threads() -> None:
    """The verify stage captions in several threads; one model (and its tokenizer) sees one call at a time."""
    import threading
    import time

    from vision_agents.captioners import Captioner

    class Recording(Captioner):
        def __init__(self) -> None:
            self.inside = self.most = 0

        def caption_image(self, image: Image.Image) -> str:
            self.inside += 1
            self.most = max(self.most, self.inside)
            time.sleep(0.02)
            self.inside -= 1
            return f" {image.size[0]} wide "

    captioner = Recording()
    image = Image.new("RGB", (40, 30))
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(captioner.caption(image, [0, 0, 20, 20]))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [f"{crop_box(image, [0, 0, 20, 20]).size[0]} wide"] * 4 and captioner.most == 1
