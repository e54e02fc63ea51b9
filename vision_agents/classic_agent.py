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
question (vision_agents.vocabulary) and the heads give the logits of everything they
model, over all boxes at once and differentiably, so they can be fine-tuned through
programs (runners/train.py). They are fitted by bench/fit_classic.py on the synthetic
world's *train* split (seed 1) and loaded from classic_params.json (config
``classic_params``; a training run's heads load with ``vlm_adapter``); the demo and the
benchmark use the val split (seed 0).

Beyond CLEVR (vision_agents.classic_figures): basic colour names, flat figures (circle,
square, rectangle, triangle, star), and which CLEVR words do not apply off a CLEVR floor.
Those models are fixed (not trained); where they need CLEVR class probabilities they read
them from the heads. A word outside the vocabulary gets logit 0 (p = 0.5; in a conjunction
it can only lower p) and is reported on the trace entry as ``{"unknown_concepts": [...]}``
(score_with_info / answer_with_info), which the run summary counts.

Marking (config ``marking``): this agent reads an object's pixels, not a drawing, so box and
crop marking are the same to it; under a mask style (``mask_outline`` / ``mask_overlay``) the
object's pixels are the segmenter's mask inside the box instead of the detector's region
(``use_marker``; an empty mask falls back to the region).
"""

from __future__ import annotations

import functools
import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from PIL import Image

from neptune_core.clevr_vocab import ATTRIBUTES, find_attribute
from neptune_core.types import Box
from vision_agents.base import VisionAgent
from vision_agents.classic_detector import Segmentation, segment
from vision_agents.classic_features import ObjectFeatures, measure
from vision_agents.classic_figures import (
    FigureFeatures,
    FigureSource,
    answer_name,
    clevr_class,
    concept_probability,
    measure_figure,
    same_value_probability,
    value_distribution,
)
from vision_agents.classic_heads import DTYPE, ClassicHeads, Encoded, probability_logits
from vision_agents.masks import crop_to_box
from vision_agents.object_marking import BOX_MARKER, ObjectMarker
from vision_agents.vocabulary import ParsedQuestion, attribute_of, parse, strip_markers, unknown_info

if TYPE_CHECKING:
    from neptune_core.config import RunConfig, TrainConfig
    from vision_agents.tuning import Tuner

OBJECTNESS_LOGIT = 6.0
_CACHE = 4096  # images / (image, boxes) encodings kept: a training epoch revisits every image
T = TypeVar("T")


def content_words(question: str) -> str:
    """The question without the box markers ("the red box" names the marking, not a colour)."""
    return strip_markers(question)


def _cached(cache: OrderedDict[Hashable, T], key: Hashable, make: Callable[[], T], limit: int = _CACHE) -> T:
    """``cache[key]``, made on a miss; the least recently used entry goes beyond ``limit``."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = make()
    if len(cache) > limit:
        cache.popitem(last=False)
    return value


@dataclass
class Objects:
    """The boxes of one image as the agent sees them."""

    enc: Encoded  # measurements as tensors: the heads' input
    figures: list[FigureSource]  # paint, flatness and silhouette, measured on first use
    clevr_floor: bool  # the image is a CLEVR-style scene (classic_detector.is_clevr_floor)


class ClassicAgent(VisionAgent):
    """Pixel-measuring VisionAgent (see the module docstring). ``logits_with_info`` is the primary output.

    ``heads`` (:class:`~vision_agents.classic_heads.ClassicHeads`) are the class models;
    by default the shipped fitted ones.
    """

    name = "classic"

    def __init__(self, heads: ClassicHeads | None = None) -> None:
        self.heads = heads if heads is not None else ClassicHeads.load("fitted")
        self._seg: tuple[str, Segmentation] | None = None  # the last image's segmentation
        self._image_keys: dict[int, tuple[weakref.ref, str]] = {}
        self._floors: OrderedDict[Hashable, bool] = OrderedDict()  # image key -> CLEVR floor
        self._feats: OrderedDict[Hashable, ObjectFeatures] = OrderedDict()  # (image key, box) -> measurements
        self._figures: OrderedDict[Hashable, FigureFeatures] = OrderedDict()
        self._encoded: OrderedDict[Hashable, Encoded] = OrderedDict()  # (image key, boxes) -> tensors
        self.object_marker: ObjectMarker = BOX_MARKER  # mask styles: measure the segmenter's masks

    @classmethod
    def from_config(cls, config: RunConfig) -> ClassicAgent:
        """Heads from ``classic_params``, replaced by the trained ones at ``vlm_adapter`` when set."""
        return cls(ClassicHeads.load(config.vlm_adapter or config.classic_params))

    def use_marker(self, marker: ObjectMarker) -> None:
        """Under a mask style, objects are measured over the segmenter's masks (measurements made before are dropped)."""
        self.object_marker = marker
        for cache in (self._feats, self._figures, self._encoded):
            cache.clear()

    def make_tuner(self, train: TrainConfig) -> Tuner:
        """The heads as the trainable module of a training run (runners/train.py)."""
        from vision_agents.classic_heads import ClassicTuner

        return ClassicTuner(self, train)

    # ---- perception (kept per image content, so training never re-segments an image) --------------
    def image_key(self, image: Image.Image) -> str:
        """A content hash of ``image``, computed once per image object (images are not modified in place)."""
        hit = self._image_keys.get(id(image))
        if hit is not None and hit[0]() is image:
            return hit[1]
        key = hashlib.md5(image.tobytes()).hexdigest()
        if len(self._image_keys) >= _CACHE:  # forget images that are gone (or all, if none is)
            live = {k: v for k, v in self._image_keys.items() if v[0]() is not None}
            self._image_keys = live if len(live) < _CACHE else {}
        self._image_keys[id(image)] = (weakref.ref(image), key)
        return key

    def _segmentation(self, image: Image.Image, key: str) -> Segmentation:
        if self._seg is None or self._seg[0] != key:
            seg = segment(image)
            self._seg = (key, seg)
            _cached(self._floors, key, lambda: seg.clevr_floor)
        return self._seg[1]

    def clevr_floor(self, image: Image.Image) -> bool:
        key = self.image_key(image)
        return _cached(self._floors, key, lambda: self._segmentation(image, key).clevr_floor)

    def features(self, image: Image.Image, box: Box) -> ObjectFeatures:
        key = self.image_key(image)
        b = tuple(round(float(v), 2) for v in box)

        def make() -> ObjectFeatures:
            mask = None
            if self.object_marker.uses_masks:
                mask = crop_to_box(self.object_marker.mask(image, list(box)), list(box))
                mask = mask if mask.any() else None  # an empty mask: the detector's region
            return measure(self._segmentation(image, key), list(box), mask)

        return _cached(self._feats, (key, b), make, 4 * _CACHE)

    def figure(self, image: Image.Image, box: Box) -> FigureFeatures:
        """Paint, flatness and silhouette of the object (vision_agents.classic_figures)."""
        key = self.image_key(image)
        b = tuple(round(float(v), 2) for v in box)

        def make() -> FigureFeatures:
            lab = self.features(image, box).lab
            return measure_figure(self._segmentation(image, key), list(box), lab)

        return _cached(self._figures, (key, b), make)

    def encode(self, image: Image.Image, boxes: list[Box]) -> Encoded:
        """The boxes' measurements as tensors (kept for the last few thousand (image, boxes) pairs)."""
        ck = (self.image_key(image), tuple(tuple(round(float(v), 2) for v in b) for b in boxes))
        return _cached(self._encoded, ck, lambda: Encoded.from_features([self.features(image, b) for b in boxes]))

    def objects(self, image: Image.Image, boxes: list[Box]) -> Objects:
        figures = [functools.partial(self.figure, image, b) for b in boxes]  # measured only when needed
        return Objects(self.encode(image, boxes), figures, self.clevr_floor(image))

    # ---- questions -> logits (heads where they model the concept, classic_figures elsewhere) ------
    def _clevr_probs(self, objs: Objects, attribute: str) -> list[dict[str, float] | None]:
        return self.heads.class_probs(objs.enc, attribute) or [None] * len(objs.enc)

    def concept_logits(self, objs: Objects, value: str) -> torch.Tensor | None:
        """Logit of "the object is <value>" for every box, shape (n,); None where no model applies."""
        attribute = attribute_of(value)
        named = clevr_class(value, attribute, self.heads.classes(attribute), objs.clevr_floor)
        if named is not None:  # a CLEVR class on a CLEVR floor: the heads, differentiably
            return self.heads.value_logits(objs.enc, named)
        clevr = zip(self._clevr_probs(objs, attribute), objs.figures, strict=True)
        ps = [concept_probability(value, attribute, c, f, objs.clevr_floor) for c, f in clevr]
        if any(p is None for p in ps):
            return None
        return probability_logits(torch.tensor(ps, dtype=DTYPE))

    def unary_logits(self, objs: Objects, q: ParsedQuestion) -> tuple[torch.Tensor, list[str]]:
        """Logit of a one-object question for every box before its negation, shape (n,), and the
        concepts this agent has no model for."""
        unknown, logits = list(q.unknown), []
        for value in dict.fromkeys(q.values):  # several values ("a large red cube") must all hold
            logit = self.concept_logits(objs, value)
            if logit is None:
                unknown.append(value)
            else:
                logits.append(logit)
        n = len(objs.enc)
        if not logits and not unknown:
            if q.objectness:
                return torch.where(objs.enc.area >= 30, OBJECTNESS_LOGIT, -OBJECTNESS_LOGIT).to(DTYPE), []
            return torch.zeros(n, dtype=DTYPE), [q.text]  # nothing to ground: the question is the unknown concept
        if not logits:
            return torch.zeros(n, dtype=DTYPE), unknown
        logit = torch.stack(logits).amin(dim=0)  # the least likely value decides
        # an unknown concept is p = 0.5 (logit 0) in the conjunction: it can lower, never raise
        return (logit.clamp_max(0.0) if unknown else logit), unknown

    def same_logits(self, objs: Objects, attribute: str) -> torch.Tensor | None:
        """(n, n) logits of "i has the same <attribute> as j"; None where no model applies."""
        if objs.clevr_floor:
            return self.heads.same_logits(objs.enc, attribute)
        # off a CLEVR floor: the same value distributions as the answers use
        clevr = zip(self._clevr_probs(objs, attribute), objs.figures, strict=True)
        dists = [value_distribution(attribute, c, f, False) for c, f in clevr]
        if any(d is None for d in dists):
            return None
        p = [[same_value_probability(ds, do) for do in dists] for ds in dists]
        return probability_logits(torch.tensor(p, dtype=DTYPE))

    def pair_logits(self, objs: Objects, q: ParsedQuestion) -> tuple[torch.Tensor, list[str]]:
        """Logit of a two-object question for every (red, green) box pair, shape (n, n), and the
        concepts this agent has no model for."""
        unknown, logit = list(q.unknown), None
        if q.same and q.attribute in ATTRIBUTES:
            logit = self.same_logits(objs, q.attribute)
            if logit is None:
                unknown.append(q.attribute)
        elif q.relation is not None:
            logit = self.heads.relation_logits(objs.enc, q.relation)
        if logit is None:
            return torch.zeros(len(objs.enc), len(objs.enc), dtype=DTYPE), unknown or [q.text]
        logit = logit.clamp_max(0.0) if unknown else logit
        return (-logit if q.negated else logit), unknown

    def logits_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Yes-vs-no logits shaped like :meth:`score`'s output (differentiable in the heads' parameters),
        and the trace info of each question."""
        if arity not in (0, 1, 2):
            raise ValueError(f"arity must be 0, 1 or 2, got {arity}")
        shape = (len(questions), *((len(boxes),) * arity))
        parsed = [parse(question, max(arity, 1)) for question in questions]
        if not boxes:  # no object: "is there ...?" is no ("is there no ...?" yes), nothing else to ask
            there = [OBJECTNESS_LOGIT if q.negated else -OBJECTNESS_LOGIT for q in parsed]
            return (torch.tensor(there) if arity == 0 else torch.zeros(shape)), [{} for _ in questions]
        objs = self.objects(image, boxes)
        rows, infos = [], []
        for q in parsed:
            if arity == 2:
                logit, unknown = self.pair_logits(objs, q)
            else:
                logit, unknown = self.unary_logits(objs, q)
                logit = logit.max() if arity == 0 else logit  # "is there ...": exists, then the negation
                logit = -logit if q.negated else logit
            rows.append(logit)
            infos.append(unknown_info(list(dict.fromkeys(unknown))))
        return (torch.stack(rows).reshape(shape).float() if rows else torch.zeros(shape)), infos

    def logits(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        """Yes-vs-no logits, shaped like :meth:`score`'s output."""
        return self.logits_with_info(image, boxes, questions, arity)[0]

    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        logits, infos = self.logits_with_info(image, boxes, questions, arity)
        return torch.sigmoid(logits), infos

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        return self.score_with_info(image, boxes, questions, arity)[0]

    # ---- open questions -----------------------------------------------------------------------------
    def answer_log_probs(self, image: Image.Image, box: Box, question: str) -> tuple[list[str], torch.Tensor] | None:
        """Candidate answers of an attribute question about ``box`` and their log-probabilities
        (differentiable where the heads give them: on a CLEVR floor); None where no model applies."""
        attribute = find_attribute(question)
        if attribute is None:
            return None
        objs = self.objects(image, [box])
        if objs.clevr_floor and self.heads.classes(attribute):
            values, lp = self.heads.answer_log_probs(objs.enc, attribute)
            return values, lp[0]
        p = value_distribution(attribute, self._clevr_probs(objs, attribute)[0], objs.figures[0], objs.clevr_floor)
        if p is None:
            return None
        return list(p), torch.tensor(list(p.values()), dtype=DTYPE).log()

    def answer_with_info(self, image: Image.Image, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        attribute = find_attribute(question)
        if attribute is None:
            q = parse(question, 1)
            return "unknown", unknown_info(q.unknown or [q.text])
        if box is None:
            return "unknown", unknown_info([f"{attribute} of the whole image"])
        dist = self.answer_log_probs(image, box, question)
        if dist is None:
            return "unknown", unknown_info([attribute])
        values, lp = dist
        return answer_name(values[int(lp.argmax())]), {}

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[tuple[Box, ...]], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict]]:
        """Each box tuple on its own (the pairs a lazy relation asks for), as :meth:`score` scores it."""
        if arity not in (1, 2):  # a whole-image score is the best box's: it needs every box (score)
            raise ValueError(f"classic agent scores box tuples of arity 1 or 2, not {arity}")
        parsed = [parse(question, arity) for question in questions]
        logits = torch.zeros(len(questions), len(tuples), dtype=DTYPE)
        unknown: list[list[str]] = [[] for _ in questions]
        for ti, t in enumerate(tuples):
            objs = self.objects(image, list(t))  # the tuple's boxes alone: (subject,) or (subject, object)
            for qi, q in enumerate(parsed):
                if arity == 1:
                    logit, ws = self.unary_logits(objs, q)
                    logits[qi, ti] = -logit[0] if q.negated else logit[0]
                else:
                    logit, ws = self.pair_logits(objs, q)
                    logits[qi, ti] = logit[0, 1]
                unknown[qi] += [w for w in ws if w not in unknown[qi]]
        return torch.sigmoid(logits.float()), [unknown_info(ws) for ws in unknown]

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        return self.answer_with_info(image, box, question)[0]
