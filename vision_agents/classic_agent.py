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
``classic_features.attribute_features``) are fitted by bench/fit_classic.py on the
synthetic world's *train* split (seed 1) and loaded from classic_params.json; the
demo and the benchmark use the val split (seed 0).
Beyond CLEVR (vision_agents.classic_figures): basic colour names, flat figures (circle,
square, rectangle, triangle, star), and which CLEVR words do not apply off a CLEVR floor.
A word outside the vocabulary (vision_agents.vocabulary) gets logit 0 (p = 0.5) and is
reported on the trace entry as ``{"unknown_concepts": [...]}`` (score_with_info /
answer_with_info), which the run summary counts.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from neptune_core.clevr_vocab import ATTRIBUTES, find_attribute
from neptune_core.errors import ConfigError
from neptune_core.types import Box
from vision_agents.base import VisionAgent
from vision_agents.classic_detector import Segmentation, segment
from vision_agents.classic_features import ObjectFeatures, attribute_features, ground_directions, measure
from vision_agents.classic_figures import (
    FigureFeatures,
    FigureSource,
    answer_value,
    concept_probability,
    measure_figure,
    value_distribution,
)
from vision_agents.vocabulary import ParsedQuestion, attribute_of, parse, strip_markers, unknown_info

PARAMS_PATH = Path(__file__).with_name("classic_params.json")


@functools.lru_cache(maxsize=4)
def load_params(path: str = str(PARAMS_PATH)) -> dict:
    """The fitted class models (bench/fit_classic.py); a clear error if the file is missing."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"classic agent parameters not found: {p} (run bench/fit_classic.py)")
    return json.loads(p.read_text())


RELATION_SCALE = 4.0  # logit per metre of separation along the relation's direction
OBJECTNESS_LOGIT = 6.0
MAX_LOGIT = 8.0


def content_words(question: str) -> str:
    """The question without the box markers ("the red box" names the marking, not a colour)."""
    return strip_markers(question)


def attribute_log_probs(f: ObjectFeatures, attribute: str) -> dict[str, float]:
    """log p(value | pixels) for every value of ``attribute`` (fitted multinomial logistic model)."""
    m = load_params()[attribute]
    z = (attribute_features(f, attribute) - np.asarray(m["mean"])) / np.asarray(m["std"])
    s = z @ np.asarray(m["weights"]) + np.asarray(m["bias"])
    s = s - s.max()
    logp = s - np.log(np.exp(s).sum())
    return {v: float(lp) for v, lp in zip(m["values"], logp, strict=True)}


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return float(np.clip(np.log(p / (1 - p)), -MAX_LOGIT, MAX_LOGIT))


class ClassicAgent(VisionAgent):
    """Pixel-measuring VisionAgent (see the module docstring). ``logits`` is the primary output."""

    name = "classic"

    def __init__(self) -> None:
        self._seg_key: str | None = None
        self._seg: Segmentation | None = None
        self._feats: dict[tuple, ObjectFeatures] = {}
        self._figures: dict[tuple, FigureFeatures] = {}

    # ---- perception ------------------------------------------------------------------
    def _segmentation(self, image: Image.Image) -> Segmentation:
        key = hashlib.md5(image.tobytes()).hexdigest()
        if key != self._seg_key:
            self._seg_key, self._seg, self._feats, self._figures = key, segment(image), {}, {}
        assert self._seg is not None
        return self._seg

    def features(self, image: Image.Image, box: Box) -> ObjectFeatures:
        seg = self._segmentation(image)
        k = tuple(round(float(v), 2) for v in box)
        if k not in self._feats:
            self._feats[k] = measure(seg, list(box))
        return self._feats[k]

    def figure(self, image: Image.Image, box: Box) -> FigureFeatures:
        """Paint, flatness and silhouette of the object (vision_agents.classic_figures)."""
        seg = self._segmentation(image)
        k = tuple(round(float(v), 2) for v in box)
        if k not in self._figures:
            self._figures[k] = measure_figure(seg, list(box), self.features(image, box).lab)
        return self._figures[k]

    def _clevr_floor(self, image: Image.Image) -> bool:
        return self._segmentation(image).clevr_floor

    @staticmethod
    def _clevr_probs(f: ObjectFeatures, attribute: str) -> dict[str, float] | None:
        if attribute not in ATTRIBUTES:
            return None
        return {v: float(np.exp(lp)) for v, lp in attribute_log_probs(f, attribute).items()}

    # ---- questions -> logits -------------------------------------------------------------
    def _unary(
        self, f: ObjectFeatures, ff: FigureSource, q: ParsedQuestion, clevr_floor: bool
    ) -> tuple[float, list[str]]:
        """(logit before negation, concepts this agent has no model for) of a one-box question."""
        unknown = list(q.unknown)
        logits = []
        # several values ("a large red cube") must all hold: the least likely decides
        for v in dict.fromkeys(q.values):
            attr = attribute_of(v)
            p = concept_probability(v, attr, self._clevr_probs(f, attr), ff, clevr_floor)
            if p is None:
                unknown.append(v)
            else:
                logits.append(_logit(p))
        if not logits and not unknown:
            if q.objectness:
                return (OBJECTNESS_LOGIT if f.area >= 30 else -OBJECTNESS_LOGIT), []
            return 0.0, [q.text]  # nothing to ground: the whole question is the unknown concept
        # an unknown concept is p = 0.5 (logit 0) in the conjunction: it can lower, never raise
        return min(logits + [0.0] * bool(unknown)), unknown

    def unary_logit(self, f: ObjectFeatures, question: str, ff: FigureSource, clevr_floor: bool = True) -> float:
        """Yes-vs-no logit of a one-box question about the object with features ``f`` (``ff``: its figure)."""
        q = parse(question, 1)
        logit, _ = self._unary(f, ff, q, clevr_floor)
        return -logit if q.negated else logit

    def pair_logit(
        self,
        fs: ObjectFeatures,
        fo: ObjectFeatures,
        question: str,
        size: tuple[int, int],
        figures: tuple[FigureSource, FigureSource] | None = None,
        clevr_floor: bool = True,
    ) -> tuple[float, list[str]]:
        """(yes-vs-no logit, unknown concepts) of a two-box question (subject ``fs``, object ``fo``)."""
        q = parse(question, 2)
        unknown = list(q.unknown)
        logit: float | None = None
        if q.same and q.attribute is not None and q.attribute in ATTRIBUTES:
            attr = q.attribute
            if clevr_floor or figures is None:
                ps, po = attribute_log_probs(fs, attr), attribute_log_probs(fo, attr)
                logit = _logit(sum(float(np.exp(ps[v] + po[v])) for v in ps))
            else:  # off a CLEVR floor: the same value distributions as the answers use
                ds = value_distribution(attr, self._clevr_probs(fs, attr), figures[0], clevr_floor)
                do = value_distribution(attr, self._clevr_probs(fo, attr), figures[1], clevr_floor)
                if ds is None or do is None:
                    unknown.append(attr)
                else:
                    logit = _logit(sum(p * do.get(v, 0.0) for v, p in ds.items() if v != "other"))
        elif q.relation is not None:
            d = ground_directions(*size)[q.relation]
            logit = float(np.clip(RELATION_SCALE * float((fs.ground_xy - fo.ground_xy) @ d), -MAX_LOGIT, MAX_LOGIT))
        if logit is None:
            return 0.0, unknown or [q.text]
        logit = min(logit, 0.0) if unknown else logit
        return (-logit if q.negated else logit), unknown

    def logits_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict]]:
        """Yes-vs-no logits shaped like :meth:`score`'s output, and the trace info of each question."""
        feats = [self.features(image, b) for b in boxes]
        figs = [functools.partial(self.figure, image, b) for b in boxes]  # measured only when needed
        floor = self._clevr_floor(image)
        n = len(boxes)
        infos: list[dict] = []
        if arity in (0, 1):
            rows = []
            for question in questions:
                q = parse(question, 1)
                per_box = [self._unary(f, ff, q, floor) for f, ff in zip(feats, figs, strict=True)]
                unknown = list(dict.fromkeys(w for _, ws in per_box for w in ws))
                infos.append(unknown_info(unknown))
                logits = [logit for logit, _ in per_box]
                if arity == 0:  # "is there a ...": exists over the boxes, then the negation
                    logits = [max(logits, default=-OBJECTNESS_LOGIT)]
                rows.append([-v if q.negated else v for v in logits])
            out = torch.tensor(rows, dtype=torch.float32)
            return out.reshape(len(questions)) if arity == 0 else out.reshape(len(questions), n), infos
        if arity == 2:
            out = torch.zeros(len(questions), n, n)
            for qi, question in enumerate(questions):
                unknown: list[str] = []
                for i in range(n):
                    for j in range(n):
                        out[qi, i, j], ws = self.pair_logit(
                            feats[i], feats[j], question, image.size, (figs[i], figs[j]), floor
                        )
                        unknown += [w for w in ws if w not in unknown]
                infos.append(unknown_info(unknown))
            return out, infos
        raise ValueError(f"arity must be 0, 1 or 2, got {arity}")

    def logits(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        """Yes-vs-no logits, shaped like :meth:`score`'s output."""
        return self.logits_with_info(image, boxes, questions, arity)[0]

    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict]]:
        logits, infos = self.logits_with_info(image, boxes, questions, arity)
        return torch.sigmoid(logits), infos

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        return self.score_with_info(image, boxes, questions, arity)[0]

    def answer_with_info(self, image: Image.Image, box: Box | None, question: str) -> tuple[str, dict]:
        attr = find_attribute(question)
        if attr is None:
            q = parse(question, 1)
            return "unknown", unknown_info(q.unknown or [q.text])
        if box is None:
            return "unknown", unknown_info([f"{attr} of the whole image"])
        f = self.features(image, box)
        figure = functools.partial(self.figure, image, box)
        value = answer_value(attr, self._clevr_probs(f, attr), figure, self._clevr_floor(image))
        if value is None:
            return "unknown", unknown_info([attr])
        return value, {}

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[tuple[Box, ...]], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict]]:
        """Each box tuple on its own (the pairs a lazy relation asks for), as :meth:`score` scores it."""
        if arity not in (1, 2):  # a whole-image score is the best box's: it needs every box (score)
            raise ValueError(f"classic agent scores box tuples of arity 1 or 2, not {arity}")
        floor = self._clevr_floor(image)
        logits = torch.zeros(len(questions), len(tuples))
        infos: list[dict] = []
        for qi, question in enumerate(questions):
            q = parse(question, arity)
            unknown: list[str] = []
            for ti, t in enumerate(tuples):
                feats = [self.features(image, b) for b in t]
                figs = [functools.partial(self.figure, image, b) for b in t]
                if arity == 1:
                    logit, ws = self._unary(feats[0], figs[0], q, floor)
                    logit = -logit if q.negated else logit
                else:
                    logit, ws = self.pair_logit(feats[0], feats[1], question, image.size, (figs[0], figs[1]), floor)
                logits[qi, ti] = logit
                unknown += [w for w in ws if w not in unknown]
            infos.append(unknown_info(unknown))
        return torch.sigmoid(logits), infos

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        return self.answer_with_info(image, box, question)[0]
