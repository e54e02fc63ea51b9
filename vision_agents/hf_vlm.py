"""VisionAgent on any transformers image-text-to-text model (native classes).

Which native class serves which checkpoint (``AutoModelForImageTextToText`` picks it
from the checkpoint's ``model_type``): InternVL2.5/3 ``-hf`` repos ->
``InternVLForConditionalGeneration``; Qwen2-VL -> ``Qwen2VLForConditionalGeneration``;
Qwen2.5-VL -> ``Qwen2_5_VLForConditionalGeneration``; Ovis2 ``-hf`` repos ->
``Ovis2ForConditionalGeneration``; SmolVLM -> ``SmolVLMForConditionalGeneration``;
Idefics3 -> ``Idefics3ForConditionalGeneration``; LLaVA -> ``LlavaForConditionalGeneration``.
See :mod:`vision_agents.aliases` for the config names and the remote-code originals.

score: p(yes) = softmax over the next-token logits of the "Yes" and "No" tokens (all
tokenizer variants "Yes", " Yes", "yes", " yes" pooled with logsumexp), batched over
boxes x questions, ``batch_size`` prompts per forward pass. Batches are right-padded
and each row's logits are read at its own last real token, so a prompt scores the same
alone or in any batch (causal attention never sees the padding on the right).

Marking (``tensor_marking``, config ``calls.tensor_marking``, on by default): the processor
runs once per (image, question) and each box's mark is drawn into the resulting pixel
tensor (:mod:`vision_agents.tensor_marking`), instead of running the processor on one
PIL-marked copy of the image per box. A processor whose pixel layout the marker cannot
measure is marked with PIL as before; ``marking`` says which way each image size went.
Only box outlines have a tensor implementation: the other marking styles (config
``marking.style``: mask outlines and overlays, crops; vision_agents/object_marking.py) are drawn
with PIL, and ``marking["style"]`` says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from neptune_core.types import Box
from vision_agents.aliases import resolve_vlm
from vision_agents.availability import PretrainedWeights
from vision_agents.base import BoxTuple, VisionAgent
from vision_agents.devices import load_model, load_pretrained, to_model
from vision_agents.object_marking import BOX_MARKER, ObjectMarker
from vision_agents.prompting import fold, grid_tuples, normalize_answer, same_box_pair, shape_questions
from vision_agents.tensor_marking import TensorMarker

if TYPE_CHECKING:
    from neptune_core.config import RunConfig, TrainConfig
    from vision_agents.tuning import Tuner

YES_VARIANTS = ("Yes", " Yes", "yes", " yes", "YES")
NO_VARIANTS = ("No", " No", "no", " no", "NO")


def answer_token_ids(tokenizer: Any, variants: tuple[str, ...]) -> list[int]:
    """Ids of the variants that the tokenizer encodes as one (known) token."""
    ids: set[int] = set()
    unk = getattr(tokenizer, "unk_token_id", None)
    for v in variants:
        enc = tokenizer.encode(v, add_special_tokens=False)
        if len(enc) == 1 and enc[0] != unk:
            ids.add(int(enc[0]))
    return sorted(ids)


def p_yes(logits: torch.Tensor, yes_ids: list[int], no_ids: list[int]) -> torch.Tensor:
    """softmax([logsumexp(yes logits), logsumexp(no logits)])[0] for each row of ``logits`` (B, V)."""
    lg = logits.float()
    pair = torch.stack([lg[:, yes_ids].logsumexp(-1), lg[:, no_ids].logsumexp(-1)], dim=-1)
    return pair.softmax(-1)[:, 0]


class HFVisionAgent(PretrainedWeights, VisionAgent):
    """A transformers VLM. Weights load lazily on first use (once per worker/process).

    Pass ``model`` and ``processor`` to use already-built objects (tests, notebooks);
    otherwise ``AutoProcessor`` / ``AutoModelForImageTextToText.from_pretrained(model_id)``.
    ``forward_passes`` counts model forward calls (score batches and generate calls).
    ``trainable=True`` (config ``vlm_trainable``) scores with autograd on, so a loss on a
    program's output flows back through the algebra into the model's Yes/No logits
    (fine-tuning through programs); otherwise scoring runs under ``torch.inference_mode``.
    ``adapter`` (config ``vlm_adapter``): trained weights loaded on top of the model
    (a LoRA adapter directory; see vision_agents/lora.py).
    """

    weights_setting = "vlm_model_name"

    name = "hf_vlm"

    def __init__(
        self,
        model_id: str,
        *,
        device: str = "auto",
        batch_size: int = 16,
        trust_remote_code: bool = False,
        max_new_tokens: int = 10,
        model: Any = None,
        processor: Any = None,
        trainable: bool = False,
        adapter: str = "",
        tensor_marking: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"vlm_batch_size must be >= 1, got {batch_size}")
        self.model_id = model_id
        self.device_setting = device
        self.batch_size = batch_size
        self.trust_remote_code = trust_remote_code
        self.max_new_tokens = max_new_tokens
        self.model = model
        self.processor = processor
        self.trainable = trainable
        self.adapter = adapter
        self._adapter_loaded = False
        self.tensor_marking = tensor_marking
        self.forward_passes = 0
        self.processor_runs = 0  # image preprocessing runs (one per image and question, or per marked copy)
        self.marking: dict[str, str] = {}  # "<w>x<h>" -> how marks are drawn for images of that size, and why
        self._markers: dict[tuple[int, int], TensorMarker | None] = {}
        self.object_marker: ObjectMarker = BOX_MARKER  # the run's marking (use_marker)
        self._yes_no: tuple[list[int], list[int]] | None = None

    @classmethod
    def from_config(cls, config: RunConfig) -> HFVisionAgent:
        spec = resolve_vlm(config.vlm_model_name)
        agent = cls(
            spec.model_id,
            device=config.device,
            batch_size=config.vlm_batch_size,
            trust_remote_code=spec.trust_remote_code,
            trainable=config.vlm_trainable,
            adapter=config.vlm_adapter,
            tensor_marking=config.calls.tensor_marking,
        )
        agent.name = config.vlm_model_name
        return agent

    # ---- loading (check_available, preflight, load: PretrainedWeights) ----------------
    def _load(self) -> None:
        if self.processor is None:
            from transformers import AutoProcessor

            self.processor = load_pretrained(
                AutoProcessor.from_pretrained, self.model_id, trust_remote_code=self.trust_remote_code
            )
        if self.model is None:
            from transformers import AutoModelForImageTextToText

            self.model = load_model(
                AutoModelForImageTextToText,
                self.model_id,
                self.device_setting,
                trust_remote_code=self.trust_remote_code,
            )
        if self.adapter and not self._adapter_loaded:
            from vision_agents.lora import load_adapter

            self.model = load_adapter(self.model, self.adapter)
            self._adapter_loaded = True
        if self._yes_no is None:
            tok = self.processor.tokenizer
            yes, no = answer_token_ids(tok, YES_VARIANTS), answer_token_ids(tok, NO_VARIANTS)
            if not yes or not no:
                raise ValueError(f"model '{self.model_id}': the tokenizer has no single-token Yes/No answer")
            self._yes_no = (yes, no)

    def use_marker(self, marker: ObjectMarker) -> None:
        self.object_marker = marker
        if self.tensor_marking and not marker.tensor_marks:
            self.marking["style"] = (
                f"PIL: marking style '{marker.style}' has no tensor implementation (box outlines only)"
            )

    def make_tuner(self, train: TrainConfig) -> Tuner:
        """LoRA adapters (or a parameter subset) for a training run (vision_agents/lora.py)."""
        from vision_agents.lora import HFTuner

        return HFTuner(self, train)

    def _prompt(self, question: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _encode(self, images: list[Image.Image], prompts: list[str]) -> dict[str, torch.Tensor]:
        # one image per prompt, nested per sample (the layout every family's processor accepts);
        # right padding explicitly, as some processors default to left padding
        self.processor_runs += len(images)
        return self.processor(
            text=prompts, images=[[im] for im in images], padding=True, padding_side="right", return_tensors="pt"
        )

    def _inputs(self, images: list[Image.Image], prompts: list[str]) -> dict[str, torch.Tensor]:
        return to_model(self._encode(images, prompts), self.model)

    def _p_yes(self, inputs: dict[str, torch.Tensor], rows: int) -> torch.Tensor:
        """One forward pass; p(yes) at each row's last real token."""
        yes_ids, no_ids = self._yes_no  # type: ignore[misc]
        last = inputs["attention_mask"].sum(1) - 1
        keep, row_pos = torch.unique(last, return_inverse=True)
        with torch.inference_mode(not self.trainable):
            self.forward_passes += 1
            logits = self.model(**inputs, logits_to_keep=keep).logits
        picked = logits[torch.arange(rows, device=logits.device), row_pos.to(logits.device)]
        return p_yes(picked, yes_ids, no_ids).cpu()

    # ---- scoring -----------------------------------------------------------------
    def score_items(self, items: list[tuple[Image.Image, str]]) -> torch.Tensor:
        """p(yes) for each (already marked image, question) item, ``batch_size`` items per forward pass."""
        self.load()
        prompt_of: dict[str, str] = {}
        out: list[torch.Tensor] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            prompts = [prompt_of.setdefault(q, self._prompt(q)) for _, q in chunk]
            out.append(self._p_yes(self._inputs([im for im, _ in chunk], prompts), len(chunk)))
        return torch.cat(out) if out else torch.zeros(0)

    def marker(self, image: Image.Image) -> TensorMarker | None:
        """The tensor marker for images of this size (measured once per size), or None: mark with PIL."""
        size = tuple(image.size)
        if size not in self._markers:
            self.load()
            prompt = self._prompt("Is there an object in the red box?")
            marker, why = TensorMarker.probe(lambda im: self._encode([im], [prompt]), self.processor.image_processor,
                                             size)  # fmt: skip
            self._markers[size] = marker  # type: ignore[index]
            self.marking[f"{size[0]}x{size[1]}"] = ("tensor: " if marker is not None else "PIL: ") + why
        return self._markers[size]  # type: ignore[index]

    def score_tuples(self, image: Image.Image, tuples: list[BoxTuple], questions: list[str]) -> torch.Tensor:
        """p(yes) of every question about every box tuple (subject red, object green), flat in order questions x tuples."""
        self.load()
        tensor = self.tensor_marking and self.object_marker.tensor_marks and tuples
        marker = self.marker(image) if tensor else None
        if marker is None:
            self.object_marker.prepare(image, tuples)  # masks of the tuples' boxes, segmented in one call
            marked = [self.object_marker.mark(image, t) for t in tuples]
            return self.score_items([(im, q) for q in questions for im in marked])
        base = {q: self._encode([image], [self._prompt(q)]) for q in dict.fromkeys(questions)}
        order = [(q, t) for q in questions for t in tuples]
        out: list[torch.Tensor] = []
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = marked_batch([(base[q], t) for q, t in chunk], marker, self.processor.tokenizer.pad_token_id)
            out.append(self._p_yes(to_model(batch, self.model), len(chunk)))
        return torch.cat(out) if out else torch.zeros(0)

    def score(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int, type: str = "yes_no"
    ) -> torch.Tensor:
        questions = shape_questions(questions, type)
        probs = self.score_tuples(image, grid_tuples(boxes, arity), questions)
        return fold(probs, len(questions), len(boxes), arity)

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[BoxTuple], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Only the tuples asked for (a pair of one box with itself is 0, the relation's diagonal)."""
        keep = [i for i, t in enumerate(tuples) if not same_box_pair(t)]
        probs = self.score_tuples(image, [tuples[i] for i in keep], questions).reshape(len(questions), len(keep))
        out = probs.new_zeros((len(questions), len(tuples)))
        out[:, keep] = probs
        return out, [{} for _ in questions]

    # ---- open answers --------------------------------------------------------------
    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        self.load()
        marked = self.object_marker.mark(image, () if box is None else (box,))
        inputs = self._inputs([marked], [self._prompt(question)])
        with torch.inference_mode():
            self.forward_passes += 1
            gen = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = gen[0, inputs["input_ids"].shape[1] :]
        return normalize_answer(self.processor.tokenizer.decode(new, skip_special_tokens=True))


def marked_batch(
    items: list[tuple[dict[str, torch.Tensor], BoxTuple]], marker: TensorMarker, pad_id: int | None
) -> dict[str, torch.Tensor]:
    """One batch from per-question encodings of one image: text right-padded, each item's marks drawn.

    Text keys (``(1, L)`` like ``input_ids``) are right-padded to the longest prompt (``pad_id``
    for ids, 0 otherwise); image keys are each item's copy, concatenated along the first axis,
    as the processor lays out a batch of images.
    """
    first = items[0][0]
    length = max(int(enc["input_ids"].shape[1]) for enc, _ in items)
    batch: dict[str, torch.Tensor] = {}
    for key, value in first.items():
        if not torch.is_tensor(value):
            raise TypeError(f"processor output '{key}' is not a tensor")
        if value.dim() == 2 and value.shape[0] == 1 and value.shape[1] == first["input_ids"].shape[1]:
            fill = (pad_id or 0) if key == "input_ids" else 0
            rows = []
            for enc, _ in items:
                v = enc[key]
                rows.append(torch.cat([v, v.new_full((1, length - v.shape[1]), fill)], 1))
            batch[key] = torch.cat(rows)
        elif key == "pixel_values":
            pixels = torch.cat([enc[key] for enc, _ in items])
            if any(boxes for _, boxes in items):
                marker.mark_(pixels, [boxes for _, boxes in items])
            batch[key] = pixels
        else:
            batch[key] = torch.cat([enc[key] for enc, _ in items])
    return batch
