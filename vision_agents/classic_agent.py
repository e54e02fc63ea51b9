"""The ``classic`` VisionAgent: answers CLEVR questions about marked boxes from pixels.

No learned network: the object's pixels (the detector's region in the box) are
measured (vision_agents.classic_features) and each attribute is a fitted logistic
class model over those measurements, so every answer comes from logits:

- colour: median Lab (and hue) of the lit body,
- shape: aspect, fill, ellipse overlap, solidity, width profile and corners of the silhouette,
- material: L* percentiles, dark/bright fractions and highlights (metal mirrors sky and floor),
- size: metric width from a nominal CLEVR camera (apparent size corrected by depth),
- left/right/front/behind: the objects' estimated floor positions,
- same <attr>: sum over values of p_subject(v) * p_object(v).

The class models (multinomial logistic regressions over the measurements of
``classic_features.attribute_features``, and linear relation models over floor
positions) are torch modules in vision_agents/classic_heads.py: this agent parses the
question and the heads give the logits, differentiably, so they can be fine-tuned
through programs (runners/train.py). They are fitted by bench/fit_classic.py on the
synthetic world's *train* split (seed 1) and loaded from classic_params.json
(config ``classic_params``; a training run's heads load with ``vlm_adapter``); the
demo and the benchmark use the val split (seed 0).
Questions the parser does not understand get logit 0 (p = 0.5): honest ignorance.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from PIL import Image

from neptune_core.clevr_vocab import find_attribute, find_relation, find_values
from neptune_core.types import Box
from vision_agents.base import VisionAgent
from vision_agents.classic_detector import Segmentation, segment
from vision_agents.classic_features import ObjectFeatures, measure
from vision_agents.classic_heads import DTYPE, ClassicHeads, Encoded

if TYPE_CHECKING:
    from neptune_core.config import RunConfig, TrainConfig
    from vision_agents.tuning import Tuner

OBJECTNESS_LOGIT = 6.0
_MARKERS = re.compile(r"\b(red|green)\s+(box|boxes|rectangle|outline)\b")
_OBJECTNESS = re.compile(r"\b(is there|are there|contain|contains)\b.*\b(object|thing)s?\b")
_ENCODED_CACHE = 4096  # (image, boxes) encodings kept: a training epoch revisits every image


def content_words(question: str) -> str:
    """The question without the box markers ("the red box" names the marking, not a colour)."""
    return _MARKERS.sub("box", question.lower())


class ClassicAgent(VisionAgent):
    """Pixel-measuring VisionAgent (see the module docstring). ``logits`` is the primary output.

    ``heads`` (:class:`~vision_agents.classic_heads.ClassicHeads`) are the class models;
    by default the shipped fitted ones.
    """

    name = "classic"

    def __init__(self, heads: ClassicHeads | None = None) -> None:
        self.heads = heads if heads is not None else ClassicHeads.load("fitted")
        self._seg_key: str | None = None
        self._seg: Segmentation | None = None
        self._feats: OrderedDict[tuple, ObjectFeatures] = OrderedDict()  # (image key, box) -> measurements
        self._encoded: OrderedDict[tuple, Encoded] = OrderedDict()
        self._image_keys: dict[int, tuple[weakref.ref, str]] = {}

    @classmethod
    def from_config(cls, config: RunConfig) -> ClassicAgent:
        """Heads from ``classic_params``, replaced by the trained ones at ``vlm_adapter`` when set."""
        return cls(ClassicHeads.load(config.vlm_adapter or config.classic_params))

    def make_tuner(self, train: TrainConfig) -> Tuner:
        """The heads as the trainable module of a training run (runners/train.py)."""
        from vision_agents.classic_heads import ClassicTuner

        return ClassicTuner(self, train)

    # ---- perception ------------------------------------------------------------------
    def image_key(self, image: Image.Image) -> str:
        """A content hash of ``image``, computed once per image object (images are not modified in place)."""
        hit = self._image_keys.get(id(image))
        if hit is not None and hit[0]() is image:
            return hit[1]
        key = hashlib.md5(image.tobytes()).hexdigest()
        if len(self._image_keys) >= _ENCODED_CACHE:  # forget images that are gone (or all, if none is)
            live = {k: v for k, v in self._image_keys.items() if v[0]() is not None}
            self._image_keys = live if len(live) < _ENCODED_CACHE else {}
        self._image_keys[id(image)] = (weakref.ref(image), key)
        return key

    def _segmentation(self, image: Image.Image, key: str) -> Segmentation:
        if key != self._seg_key:
            self._seg_key, self._seg = key, segment(image)
        assert self._seg is not None
        return self._seg

    def features(self, image: Image.Image, box: Box) -> ObjectFeatures:
        return self._features(image, self.image_key(image), box)

    def _features(self, image: Image.Image, key: str, box: Box) -> ObjectFeatures:
        k = (key, tuple(round(float(v), 2) for v in box))
        f = self._feats.get(k)
        if f is None:
            f = self._feats[k] = measure(self._segmentation(image, key), list(box))
            if len(self._feats) > 4 * _ENCODED_CACHE:
                self._feats.popitem(last=False)
        return f

    def encode(self, image: Image.Image, boxes: list[Box]) -> Encoded:
        """The boxes' measurements as tensors (kept for the last few thousand (image, boxes) pairs)."""
        key = self.image_key(image)
        ck = (key, tuple(tuple(round(float(v), 2) for v in b) for b in boxes))
        enc = self._encoded.get(ck)
        if enc is None:
            enc = Encoded.from_features([self._features(image, key, b) for b in boxes])
            self._encoded[ck] = enc
            if len(self._encoded) > _ENCODED_CACHE:
                self._encoded.popitem(last=False)
        else:
            self._encoded.move_to_end(ck)
        return enc

    # ---- questions -> logits -------------------------------------------------------------
    def unary_logits(self, enc: Encoded, question: str) -> torch.Tensor:
        """Yes-vs-no logit of a one-object question for every box, shape (n,)."""
        q = content_words(question)
        values = find_values(q)
        if not values:
            if _OBJECTNESS.search(q):
                return torch.where(enc.area >= 30, OBJECTNESS_LOGIT, -OBJECTNESS_LOGIT).to(enc.area.dtype)
            return torch.zeros(len(enc), dtype=enc.area.dtype)
        # several values ("a large red cube") must all hold: the least likely decides
        logit = torch.stack([self.heads.value_logits(enc, v) for v in values]).amin(dim=0)
        return -logit if " not " in f" {q} " else logit

    def pair_logits(self, enc: Encoded, question: str) -> torch.Tensor:
        """Yes-vs-no logit of a two-object question for every (red, green) box pair, shape (n, n)."""
        q = content_words(question)
        attr = find_attribute(q)
        if "same" in q and attr is not None:
            return self.heads.same_logits(enc, attr)
        rel = find_relation(q)
        if rel is not None:
            return self.heads.relation_logits(enc, rel)
        return torch.zeros(len(enc), len(enc), dtype=enc.area.dtype)

    def logits(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        """Yes-vs-no logits, shaped like :meth:`score`'s output (differentiable in the heads' parameters)."""
        if arity not in (0, 1, 2):
            raise ValueError(f"arity must be 0, 1 or 2, got {arity}")
        shape = (len(questions), *((len(boxes),) * arity))
        if not boxes and arity > 0:
            return torch.zeros(shape)
        enc = self.encode(image, boxes)
        if arity == 0:
            rows = [
                self.unary_logits(enc, q).max() if len(enc) else torch.tensor(-OBJECTNESS_LOGIT, dtype=DTYPE)
                for q in questions
            ]
        elif arity == 1:
            rows = [self.unary_logits(enc, q) for q in questions]
        else:
            rows = [self.pair_logits(enc, q) for q in questions]
        return torch.stack(rows).reshape(shape).float() if rows else torch.zeros(shape)

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        return torch.sigmoid(self.logits(image, boxes, questions, arity))

    def answer_log_probs(self, image: Image.Image, box: Box, question: str) -> tuple[list[str], torch.Tensor] | None:
        """Candidate answers of an attribute question about ``box`` and their log-probabilities; None otherwise."""
        attr = find_attribute(question)
        if attr is None:
            return None
        values, lp = self.heads.answer_log_probs(self.encode(image, [box]), attr)
        return values, lp[0]

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        dist = None if box is None else self.answer_log_probs(image, box, question)
        if dist is None:
            return "unknown"
        values, lp = dist
        return values[int(lp.argmax())]
