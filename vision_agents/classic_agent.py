"""The ``classic`` VisionAgent: answers CLEVR questions about marked boxes from pixels.

No learned network: the object's pixels (the detector's region in the box) are
measured (vision_agents.classic_features) and each attribute is a small Gaussian
class model over those measurements, so every answer comes from logits:

- colour: median Lab of the lit body (prototype distance per CLEVR colour),
- shape: box aspect, fill, ellipse overlap and straight sides of the silhouette,
- material: brightness spread and specular highlights (metal reflects),
- size: metric width from a nominal CLEVR camera (apparent size corrected by depth),
- left/right/front/behind: the objects' estimated floor positions,
- same <attr>: sum over values of p_subject(v) * p_object(v).

The class statistics (``GAUSSIANS``) were measured on 40 scenes of the synthetic
world's *train* split (seed 0) with ground-truth boxes; runs use the val split.
Questions the parser does not understand get logit 0 (p = 0.5): honest ignorance.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import torch
from PIL import Image

from neptune_core.clevr_vocab import ATTRIBUTES, find_attribute, find_relation, find_values
from neptune_core.types import Box
from vision_agents.base import VisionAgent
from vision_agents.classic_detector import Segmentation, segment
from vision_agents.classic_features import ObjectFeatures, ground_directions, measure

# attribute -> value -> (feature means, feature stds); features per attribute in FEATURES
FEATURES: dict[str, tuple[str, ...]] = {
    "color": ("L", "a", "b"),
    "shape": ("aspect", "fill", "ellipse_iou", "side_straightness"),
    "material": ("contrast", "highlight"),
    "size": ("world_size",),
}
GAUSSIANS: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "color": {
        "gray": ((39.8, 4.0, 2.4), (14.5, 8.0, 7.0)),
        "red": ((47.8, 43.7, 25.1), (9.0, 16.0, 9.6)),
        "blue": ((48.0, 26.3, -52.6), (11.3, 10.5, 24.7)),
        "green": ((45.9, -36.0, 33.5), (9.8, 5.4, 5.1)),
        "brown": ((44.8, 15.0, 31.6), (9.1, 4.4, 7.4)),
        "purple": ((46.1, 54.9, -52.1), (8.0, 12.1, 20.3)),
        "cyan": ((80.5, -29.8, -12.3), (13.0, 20.0, 11.0)),
        "yellow": ((87.6, -13.1, 65.2), (12.1, 3.8, 13.8)),
    },
    "shape": {
        "cylinder": ((1.23, 0.85, 0.80, 0.84), (0.06, 0.13, 0.10, 0.20)),
        "cube": ((1.09, 0.79, 0.82, 0.78), (0.10, 0.14, 0.14, 0.21)),
        "sphere": ((0.99, 0.75, 0.86, 0.65), (0.03, 0.15, 0.17, 0.26)),
    },
    "material": {"metal": ((57.9, 0.04), (10.4, 0.05)), "rubber": ((30.8, 0.0), (11.2, 0.02))},
    "size": {"small": ((0.73,), (0.08,)), "large": ((1.42,), (0.15,))},
}
RELATION_SCALE = 4.0  # logit per metre of separation along the relation's direction
OBJECTNESS_LOGIT = 6.0
MAX_LOGIT = 8.0
_MARKERS = re.compile(r"\b(red|green)\s+(box|boxes|rectangle|outline)\b")


def content_words(question: str) -> str:
    """The question without the box markers ("the red box" names the marking, not a colour)."""
    return _MARKERS.sub("box", question.lower())


def _feature_vector(f: ObjectFeatures, names: tuple[str, ...]) -> np.ndarray:
    get = {"L": f.lab[0], "a": f.lab[1], "b": f.lab[2]}
    return np.array([get[n] if n in get else getattr(f, n) for n in names], dtype=np.float64)


def attribute_log_probs(f: ObjectFeatures, attribute: str) -> dict[str, float]:
    """log p(value | pixels) for every value of ``attribute`` (Gaussian class model, uniform prior)."""
    x = _feature_vector(f, FEATURES[attribute])
    ll = {}
    for value, (mu, sd) in GAUSSIANS[attribute].items():
        z = (x - np.array(mu)) / np.array(sd)
        ll[value] = float(-0.5 * (z * z).sum() - np.log(sd).sum())
    vals = np.array(list(ll.values()))
    lse = vals.max() + np.log(np.exp(vals - vals.max()).sum())
    return {k: v - lse for k, v in ll.items()}


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

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        attr = find_attribute(question)
        if box is None or attr is None:
            return "unknown"
        lp = attribute_log_probs(self.features(image, box), attr)
        return max(lp, key=lambda v: lp[v])
