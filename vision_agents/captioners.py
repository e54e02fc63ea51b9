"""Captioners for the caption verifier (config ``verify.caption.captioner``).

- ``florence2``: Florence-2's detailed caption (``<MORE_DETAILED_CAPTION>``) through
  transformers' native ``Florence2ForConditionalGeneration`` (VLAgent's default);
  ``captioner_model`` defaults to florence-community/Florence-2-large.
- ``hf_generate``: any transformers image-text-to-text model (``captioner_model``: a
  ``vlm_model_name`` alias, hub id or directory) asked to describe the image, greedy.
- ``openai_vlm``: any OpenAI-compatible VLM server (``captioner_base_url``,
  ``captioner_model`` = the served name, "" = the one it serves).
- ``scene``: the synthetic world's scene annotations written as a caption (an oracle
  for offline runs, like ``scene_oracle``; not a model).

``caption(image, box)`` captions the whole image, or the box's region (cropped with a
margin) for referring expressions. Add a captioner: subclass :class:`Captioner`,
implement ``caption_image`` (and ``from_config`` / ``preflight``), add a lazy line to
``CAPTIONERS`` in vision_agents/__init__.py.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from neptune_core.errors import ConfigError, ModelUnavailableError
from neptune_core.types import Box, Sample, box_iou
from vision_agents.devices import load_model, load_pretrained, to_model

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

DESCRIBE_PROMPT = "Describe this image in detail: every object, its color, size, material and position."
CROP_MARGIN = 0.1  # of the box size, on each side


def crop_box(image: Image.Image, box: Box, margin: float = CROP_MARGIN) -> Image.Image:
    """The region of ``box`` with ``margin`` times its size around it, clipped to the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    w, h = image.size
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(round(x2 + mx))), min(h, int(round(y2 + my)))
    if right <= left or bottom <= top:
        raise ValueError(f"box {box} has no area inside the {w}x{h} image")
    return image.crop((left, top, right, bottom))


class Captioner(ABC):
    """Writes a caption of an image (or of one box's region)."""

    name = "captioner"
    # whether calls are serialised (a local model); False for a captioner that is safe to call from
    # several threads at once, e.g. one that sends requests to a server
    one_at_a_time = True

    @classmethod
    def from_config(cls, config: RunConfig) -> Captioner:
        return cls()

    def preflight(self) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample; raise a UserError if the captioner cannot work."""

    @abstractmethod
    def caption_image(self, image: Image.Image) -> str:
        """A detailed caption of ``image``."""

    def caption(self, image: Image.Image, box: Box | None = None, *, sample: Sample | None = None) -> str:
        """A caption of ``image``, or of ``box``'s region. Thread-safe: captions run beside the program, in
        the verify stage's threads, one at a time per captioner unless it says otherwise (``one_at_a_time``:
        a model, its lazy loading and a fast tokenizer are not made for several threads at once)."""
        region = image if box is None else crop_box(image, box)
        # setdefault: one lock per captioner, even when the first calls race
        turn = self.__dict__.setdefault("_caption_lock", threading.Lock()) if self.one_at_a_time else nullcontext()
        with turn:
            return self.caption_image(region).strip()


class Florence2Captioner(Captioner):
    """Florence-2 ``<MORE_DETAILED_CAPTION>`` (weights load on first use or at preflight)."""

    name = "florence2"
    task = "<MORE_DETAILED_CAPTION>"
    default_model = "florence-community/Florence-2-large"

    def __init__(
        self,
        model_id: str = "",
        *,
        device: str = "auto",
        max_new_tokens: int = 128,
        model: Any = None,
        processor: Any = None,
    ) -> None:
        self.model_id = model_id or self.default_model
        self.device_setting = device
        self.max_new_tokens = max_new_tokens
        self.model = model
        self.processor = processor

    @classmethod
    def from_config(cls, config: RunConfig) -> Florence2Captioner:
        c = config.verify.caption
        return cls(c.captioner_model, device=config.device, max_new_tokens=c.captioner_max_new_tokens)

    def load(self) -> None:
        import transformers

        if self.processor is None:
            self.processor = load_pretrained(transformers.AutoProcessor.from_pretrained, self.model_id)
        if self.model is None:
            self.model = load_model(transformers.AutoModelForImageTextToText, self.model_id, self.device_setting)

    def preflight(self) -> None:
        self.load()

    def caption_image(self, image: Image.Image) -> str:
        self.load()
        enc = self.processor(text=self.task, images=image.convert("RGB"), return_tensors="pt")
        with torch.inference_mode():
            gen = self.model.generate(
                **to_model(enc, self.model), max_new_tokens=self.max_new_tokens, num_beams=1, do_sample=False
            )
        decoded = self.processor.batch_decode(gen, skip_special_tokens=False)[0]
        parsed = self.processor.post_process_generation(decoded, task=self.task, image_size=image.size)
        return str(parsed.get(self.task, decoded) if isinstance(parsed, dict) else parsed)


class HFGenerateCaptioner(Captioner):
    """Any transformers VLM, asked :data:`DESCRIBE_PROMPT` (loading shared with ``HFVisionAgent``)."""

    name = "hf_generate"

    def __init__(self, model_id: str, *, device: str = "auto", max_new_tokens: int = 128, **loaded: Any) -> None:
        from vision_agents.hf_vlm import HFVisionAgent

        if not model_id:
            raise ConfigError("verify.caption.captioner 'hf_generate' needs verify.caption.captioner_model (a VLM)")
        self.vlm = HFVisionAgent(model_id, device=device, **loaded)
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_config(cls, config: RunConfig) -> HFGenerateCaptioner:
        from vision_agents.aliases import resolve_vlm

        c = config.verify.caption
        if not c.captioner_model:
            raise ConfigError("verify.caption.captioner 'hf_generate' needs verify.caption.captioner_model (a VLM)")
        spec = resolve_vlm(c.captioner_model)
        return cls(spec.model_id, device=config.device, max_new_tokens=c.captioner_max_new_tokens)

    def preflight(self) -> None:
        self.vlm.load()

    def caption_image(self, image: Image.Image) -> str:
        vlm = self.vlm
        vlm.load()
        inputs = vlm._inputs([image.convert("RGB")], [vlm._prompt(DESCRIBE_PROMPT)])
        with torch.inference_mode():
            gen = vlm.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return vlm.processor.tokenizer.decode(gen[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


class OpenAICaptioner(Captioner):
    """An OpenAI-compatible VLM server asked :data:`DESCRIBE_PROMPT` (retries as ``OpenAIVisionAgent``)."""

    name = "openai_vlm"
    one_at_a_time = False  # requests to a server, which may answer several at once

    def __init__(self, base_url: str, *, model: str = "", max_new_tokens: int = 128) -> None:
        from vision_agents.openai_vlm import OpenAIVisionAgent

        if not base_url:
            raise ConfigError(
                "verify.caption.captioner 'openai_vlm' needs verify.caption.captioner_base_url, e.g. http://localhost:8000/v1"
            )
        self.client = OpenAIVisionAgent(base_url, model=model, max_answer_tokens=max_new_tokens)
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_config(cls, config: RunConfig) -> OpenAICaptioner:
        c = config.verify.caption
        return cls(c.captioner_base_url, model=c.captioner_model, max_new_tokens=c.captioner_max_new_tokens)

    def preflight(self) -> None:
        try:
            self.client._model_name()
        except ConfigError:
            raise
        except Exception as e:
            raise ModelUnavailableError(
                f"captioner server {self.client.base_url} is not reachable ({type(e).__name__}); start it or fix "
                "verify.caption.captioner_base_url"
            ) from None

    def caption_image(self, image: Image.Image) -> str:
        resp = self.client._chat(image, DESCRIBE_PROMPT, max_tokens=self.max_new_tokens)
        return resp.choices[0].message.content or ""


class SceneCaptioner(Captioner):
    """Captions written from CLEVR scene annotations (offline oracle; needs samples with scenes)."""

    name = "scene"
    one_at_a_time = False  # reads the sample's scene

    @staticmethod
    def describe(obj: dict) -> str:
        return f"a {obj['size']} {obj['color']} {obj['material']} {obj['shape']}"

    def caption_image(self, image: Image.Image) -> str:
        raise NotImplementedError("SceneCaptioner captions from annotations: call caption(image, box, sample=...)")

    def caption(self, image: Image.Image, box: Box | None = None, *, sample: Sample | None = None) -> str:
        if sample is None or not isinstance(sample.scene, dict) or "objects" not in sample.scene:
            raise ConfigError("the 'scene' captioner needs samples with scene annotations (the synthetic world, CLEVR)")
        objects = sample.scene["objects"]
        if box is None:
            parts = ", ".join(self.describe(o) for o in objects)
            return f"A rendered scene with {len(objects)} objects on a grey floor: {parts}."
        boxes = sample.boxes or [o.get("bbox") for o in objects]
        overlaps = [box_iou([float(v) for v in box], [float(v) for v in b]) if b else 0.0 for b in boxes]
        best = max(range(len(overlaps)), key=overlaps.__getitem__) if overlaps else -1
        if best < 0 or overlaps[best] <= 0.0:
            return "A patch of grey floor with no object."
        return f"{self.describe(objects[best]).capitalize()} on a grey floor."
