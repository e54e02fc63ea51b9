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
Questions the parser does not understand get logit 0 (p = 0.5): honest ignorance.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from neptune_core.clevr_vocab import ATTRIBUTES, find_attribute, find_relation, find_values
from neptune_core.errors import ConfigError
from neptune_core.types import Box
from vision_agents.base import VisionAgent
from vision_agents.classic_detector import Segmentation, segment
from vision_agents.classic_features import ObjectFeatures, attribute_features, ground_directions, measure

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
_MARKERS = re.compile(r"\b(red|green)\s+(box|boxes|rectangle|outline)\b")


def content_words(question: str) -> str:
    """The question without the box markers ("the red box" names the marking, not a colour)."""
    return _MARKERS.sub("box", question.lower())


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

    # ---- perception ------------------------------------------------------------------
    def _segmentation(self, image: Image.Image) -> Segmentation:
        key = hashlib.md5(image.tobytes()).hexdigest()
        if key != self._seg_key:
            self._seg_key, self._seg, self._feats = key, segment(image), {}
        assert self._seg is not None
        return self._seg

    def features(self, image: Image.Image, box: Box) -> ObjectFeatures:
        seg = self._segmentation(image)
        k = tuple(round(float(v), 2) for v in box)
        if k not in self._feats:
            self._feats[k] = measure(seg, list(box))
        return self._feats[k]

    # ---- questions -> logits -------------------------------------------------------------
    def unary_logit(self, f: ObjectFeatures, question: str) -> float:
        q = content_words(question)
        values = find_values(q)
        if not values:
            if re.search(r"\b(is there|are there|contain|contains)\b.*\b(object|thing)s?\b", q):
                return OBJECTNESS_LOGIT if f.area >= 30 else -OBJECTNESS_LOGIT
            return 0.0
        # several values ("a large red cube") must all hold: the least likely decides
        logits = []
        for v in values:
            attr = next(a for a, vs in ATTRIBUTES.items() if v in vs)
            logits.append(_logit(float(np.exp(attribute_log_probs(f, attr)[v]))))
        logit = min(logits)
        return -logit if " not " in f" {q} " else logit

    def pair_logit(self, fs: ObjectFeatures, fo: ObjectFeatures, question: str, size: tuple[int, int]) -> float:
        q = content_words(question)
        attr = find_attribute(q)
        if "same" in q and attr is not None:
            ps, po = attribute_log_probs(fs, attr), attribute_log_probs(fo, attr)
            return _logit(sum(float(np.exp(ps[v] + po[v])) for v in ps))
        rel = find_relation(q)
        if rel is not None:
            d = ground_directions(*size)[rel]
            return float(np.clip(RELATION_SCALE * float((fs.ground_xy - fo.ground_xy) @ d), -MAX_LOGIT, MAX_LOGIT))
        return 0.0

    def logits(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        """Yes-vs-no logits, shaped like :meth:`score`'s output."""
        feats = [self.features(image, b) for b in boxes]
        n = len(boxes)
        if arity == 0:
            out = [max((self.unary_logit(f, q) for f in feats), default=-OBJECTNESS_LOGIT) for q in questions]
            return torch.tensor(out, dtype=torch.float32)
        if arity == 1:
            return torch.tensor(
                [[self.unary_logit(f, q) for f in feats] for q in questions], dtype=torch.float32
            ).reshape(len(questions), n)
        if arity == 2:
            out = torch.zeros(len(questions), n, n)
            for qi, q in enumerate(questions):
                for i in range(n):
                    for j in range(n):
                        out[qi, i, j] = self.pair_logit(feats[i], feats[j], q, image.size)
            return out
        raise ValueError(f"arity must be 0, 1 or 2, got {arity}")

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        return torch.sigmoid(self.logits(image, boxes, questions, arity))

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[tuple[Box, ...]], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict]]:
        """Each box tuple on its own (the pairs a lazy relation asks for), as :meth:`score` scores it."""
        if arity not in (1, 2):  # a whole-image score is the best box's: it needs every box (score)
            raise ValueError(f"classic agent scores box tuples of arity 1 or 2, not {arity}")
        logits = torch.zeros(len(questions), len(tuples))
        for ti, t in enumerate(tuples):
            feats = [self.features(image, b) for b in t]
            for qi, q in enumerate(questions):
                if arity == 1:
                    logits[qi, ti] = self.unary_logit(feats[0], q)
                else:
                    logits[qi, ti] = self.pair_logit(feats[0], feats[1], q, image.size)
        return torch.sigmoid(logits), [{} for _ in questions]

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        attr = find_attribute(question)
        if box is None or attr is None:
            return "unknown"
        lp = attribute_log_probs(self.features(image, box), attr)
        return max(lp, key=lambda v: lp[v])
