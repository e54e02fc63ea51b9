"""Tiny random VLMs of each native transformers family, built here from configs.

Nothing is downloaded: tokenizers come from a tiny word vocabulary (``tokenizers``),
image processors are the PIL ones, models have hidden size 32 and one layer.
InternVL, Qwen2-VL and SmolVLM processors want a torchvision video processor that
this machine lacks; :func:`no_video` builds the real processor class with that one
argument check skipped (test-only shim; production code uses ``AutoProcessor``).
The tests at the bottom check that each factory builds a model whose forward works.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Callable  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

WORDS = (
    "user assistant Yes No yes no Is is the object in red green box a an of same color as left right "
    "What cube sphere what shape Answer or it this there . ? , : \n"
).split(" ") + ["\n"]


def make_tokenizer(specials: list[str], **extra: Any) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over WORDS plus ``specials`` (each one token)."""
    vocab: dict[str, int] = {}
    for w in ["<pad>", "<unk>", " ", *specials, *WORDS]:
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"<[^<>\s]+>|\w+|[^\w\s]|\n| "), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", **extra)
    tok.add_special_tokens({"additional_special_tokens": [s for s in specials if s.startswith("<")]})
    return tok


def chat_template(image: str, start: str = "<s>", end: str = "</s>") -> str:
    return (
        "{% for m in messages %}" + start + "{{ m['role'] }}\n"
        "{% for c in m['content'] %}{% if c['type'] == 'image' %}" + image + "{% else %}{{ c['text'] }}{% endif %}"
        "{% endfor %}" + end + "\n{% endfor %}{% if add_generation_prompt %}" + start + "assistant\n{% endif %}"
    )


def no_video(processor_cls: type) -> type:
    """The real processor class, minus the type check on the (torchvision-only) video processor."""

    class NoVideo(processor_cls):  # type: ignore[misc,valid-type]
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument_name == "video_processor":
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    NoVideo.__name__ = processor_cls.__name__
    return NoVideo


TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)


def tiny_qwen2_vl() -> tuple[Any, Any]:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    specials = ["<s>", "</s>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = make_tokenizer(specials, eos_token="</s>")
    ip = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 4)
    image = "<|vision_start|><|image_pad|><|vision_end|>"
    proc = no_video(Qwen2VLProcessor)(
        image_processor=ip, tokenizer=tok, video_processor=None, chat_template=chat_template(image)
    )
    ids = tok.convert_tokens_to_ids
    cfg = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}, **TEXT),
        vision_config=dict(
            depth=1, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=14, spatial_merge_size=2
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
    )
    return Qwen2VLForConditionalGeneration(cfg).eval(), proc


def tiny_llava() -> tuple[Any, Any]:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = make_tokenizer(["<s>", "</s>", "<image>"], eos_token="</s>")
    ip = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    proc = LlavaProcessor(
        image_processor=ip,
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        chat_template=chat_template("<image>"),
        num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=28,
        patch_size=14,
        projection_dim=32,
    )
    text = LlamaConfig(vocab_size=len(tok), **TEXT)
    cfg = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    return LlavaForConditionalGeneration(cfg).eval(), proc


def tiny_internvl() -> tuple[Any, Any]:
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    specials = ["<s>", "</s>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
    tok = make_tokenizer(
        specials,
        eos_token="</s>",
        extra_special_tokens={
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
    )
    ip = GotOcr2ImageProcessorPil(size={"height": 28, "width": 28}, crop_to_patches=False, max_patches=1)
    proc = no_video(InternVLProcessor)(
        image_processor=ip,
        tokenizer=tok,
        video_processor=None,
        image_seq_length=1,
        chat_template=chat_template("<IMG_CONTEXT>"),
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=[28, 28],
        patch_size=[14, 14],
    )
    text = dict(model_type="qwen2", vocab_size=len(tok), **TEXT)
    cfg = InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        downsample_ratio=0.5,
    )
    return InternVLForConditionalGeneration(cfg).eval(), proc


def tiny_ovis2() -> tuple[Any, Any]:
    from transformers import Ovis2Config, Ovis2ForConditionalGeneration, Ovis2Processor
    from transformers.models.ovis2.image_processing_pil_ovis2 import Ovis2ImageProcessorPil

    ind = ["<IMG_START>", "<IMG_GRID>", "<IMG_COL>", "<IMG_ROW>", "<IMG_END>"]
    tok = make_tokenizer(["<s>", "</s>", "<image>", "<IMG_ATOM>", *ind], eos_token="</s>")
    ip = Ovis2ImageProcessorPil(size={"height": 28, "width": 28}, crop_to_patches=False)
    proc = Ovis2Processor(image_processor=ip, tokenizer=tok, image_seq_length=1, chat_template=chat_template("<image>"))
    cfg = Ovis2Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            image_size=28,
            patch_size=14,
            hidden_stride=2,
            vocab_size=16,
            num_visual_indicator_tokens=5,
        ),
        text_config=dict(vocab_size=len(tok), **TEXT),
        image_token_id=tok.convert_tokens_to_ids("<IMG_ATOM>"),
        visual_indicator_token_ids=tok.convert_tokens_to_ids(ind),
        hidden_size=32,
        vocab_size=len(tok),
    )
    return Ovis2ForConditionalGeneration(cfg).eval(), proc


def tiny_smolvlm() -> tuple[Any, Any]:
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMProcessor
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    specials = [
        "<s>",
        "</s>",
        "<image>",
        "<fake_token_around_image>",
        "<global-img>",
        "<end_of_utterance>",
        "<row_1_col_1>",
        "<video>",
    ]
    tok = make_tokenizer(specials, eos_token="</s>")
    ip = SmolVLMImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 28}, max_image_size={"longest_edge": 28}
    )
    proc = no_video(SmolVLMProcessor)(
        image_processor=ip,
        tokenizer=tok,
        video_processor=SimpleNamespace(num_frames=1, fps=1),
        image_seq_len=1,
        chat_template=chat_template("<image>"),
    )
    cfg = SmolVLMConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            image_size=28,
            patch_size=14,
        ),
        text_config=dict(model_type="llama", vocab_size=len(tok), **TEXT),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    return SmolVLMForConditionalGeneration(cfg).eval(), proc


FAMILIES: dict[str, Callable[[], tuple[Any, Any]]] = {
    "qwen2_vl": tiny_qwen2_vl,
    "llava": tiny_llava,
    "internvl": tiny_internvl,
    "ovis2": tiny_ovis2,
    "smolvlm": tiny_smolvlm,
}


def marked_scene(seed: int = 0, size: tuple[int, int] = (64, 48)) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    arr = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy()
    return Image.fromarray(arr, "RGB")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tiny_family_builds_and_runs(family: str) -> None:
    torch.manual_seed(0)
    model, proc = FAMILIES[family]()
    prompt = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is the object a cube?"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    enc = proc(text=[prompt], images=[[marked_scene()]], return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape[-1] == model.config.get_text_config().vocab_size
    assert torch.isfinite(logits).all()
