"""Ensembles of detectors (``od_model: "ensemble"``), and controlled box noise.

:class:`EnsembleDetector` is itself a Detector: every member detects, and the boxes are
fused per label by weighted boxes fusion (Solovyev et al., the ``ensemble-boxes``
package, the reference implementation by the method's authors), with member weights,
``ensemble.wbf_iou`` and ``ensemble.wbf_skip_score``. Each member's boxes go on the
result row (``detection.members``), so the report and the ensemble pruning can read them.

:class:`JitterDetector` wraps any detector with reproducible box noise: each corner
moves by a normal offset of ``jitter`` times the box's width/height and each box is
dropped with probability ``drop_rate``, decided by a hash of (seed, image, box), so
offline members (the ``gt`` or ``classic`` detector) err independently and repeatably, and
a member errs the same way on every question about the same image (as a detector would;
the detection cache relies on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from neptune_core.errors import ConfigError
from neptune_core.types import Box, Detection, Sample
from vision_agents.base import Detector
from vision_agents.calls import count
from vision_agents.ensemble import box_key, unit_hash
from vision_agents.memo import sample_image_key

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from neptune_core.verify_config import EnsembleMember


class JitterDetector(Detector):
    """``inner`` with box jitter and drops (see the module docstring)."""

    def __init__(self, inner: Detector, *, jitter: float, drop_rate: float, seed: int) -> None:
        self.inner = inner
        self.jitter = jitter
        self.drop_rate = drop_rate
        self.seed = seed
        self.name = inner.name
        self._sample_id: str | None = None  # the image the noise is keyed by (sample_image_key)

    @property
    def cacheable(self) -> bool:  # the noise is a function of the image: cacheable as the inner detector is
        return self.inner.cacheable

    def begin_sample(self, sample: Sample) -> None:
        self._sample_id = sample_image_key(sample)
        self.inner.begin_sample(sample)

    def preflight(self) -> None:
        self.inner.preflight()

    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        if self._sample_id is None:
            raise RuntimeError("JitterDetector.begin_sample(sample) must be called before detect")
        det = self.inner.detect(image, object_names)
        w, h = image.size
        boxes, scores, labels = [], [], []
        for box, score, label in zip(det.boxes, det.scores, det.labels, strict=True):
            key = (self.seed, self._sample_id, box_key(box))
            if unit_hash(*key, "drop") < self.drop_rate:
                continue
            rng = np.random.default_rng(int(unit_hash(*key, "jitter") * 2**63))
            x1, y1, x2, y2 = (float(v) for v in box)
            dx, dy = self.jitter * (x2 - x1), self.jitter * (y2 - y1)
            nx1, ny1, nx2, ny2 = np.array([x1, y1, x2, y2]) + rng.normal(size=4) * np.array([dx, dy, dx, dy])
            nx1, nx2 = sorted((float(np.clip(nx1, 0, w)), float(np.clip(nx2, 0, w))))
            ny1, ny2 = sorted((float(np.clip(ny1, 0, h)), float(np.clip(ny2, 0, h))))
            if nx2 - nx1 < 1 or ny2 - ny1 < 1:
                continue
            boxes.append([nx1, ny1, nx2, ny2])
            scores.append(float(score))
            labels.append(label)
        return Detection(boxes=boxes, scores=scores, labels=labels)


def fuse_boxes(
    detections: list[Detection], weights: list[float], size: tuple[int, int], *, iou: float, skip_score: float
) -> Detection:
    """Weighted boxes fusion of the members' detections, per label, in pixel xyxy (highest score first)."""
    from ensemble_boxes import weighted_boxes_fusion

    w, h = size
    scale = np.array([w, h, w, h], dtype=float)
    label_ids: dict[str, int] = {}
    boxes_list, scores_list, labels_list = [], [], []
    for det in detections:
        b = np.asarray(det.boxes, dtype=float).reshape(-1, 4) / scale
        boxes_list.append(np.clip(b, 0.0, 1.0))
        scores_list.append(np.asarray(det.scores, dtype=float))
        labels_list.append(np.asarray([label_ids.setdefault(lab, len(label_ids)) for lab in det.labels], dtype=float))
    if not label_ids:
        return Detection(boxes=[], scores=[], labels=[])
    fused, fused_scores, fused_labels = weighted_boxes_fusion(
        boxes_list, scores_list, labels_list, weights=list(weights), iou_thr=iou, skip_box_thr=skip_score
    )
    names = {i: lab for lab, i in label_ids.items()}
    order = np.argsort(-fused_scores, kind="stable")
    return Detection(
        boxes=[[round(float(v), 2) for v in fused[i] * scale] for i in order],
        scores=[round(float(fused_scores[i]), 4) for i in order],
        labels=[names[int(fused_labels[i])] for i in order],
    )


def build_member_detector(config: RunConfig, member: EnsembleMember) -> Detector:
    """The Detector of one ``ensemble.detector_members`` entry (its options applied, noise wrapped)."""
    from neptune_core.config import replace_config
    from vision_agents import build_detector

    if member.model == "ensemble":
        raise ConfigError(f"ensemble member '{member.name}' is itself an ensemble; name a detector as its model")
    if member.flip_rate:
        raise ConfigError(f"ensemble member '{member.name}': flip_rate applies to VisionAgent members only")
    det = build_detector(replace_config(config, {**member.options, "od_model": member.model}))
    if member.jitter or member.drop_rate:
        det = JitterDetector(det, jitter=member.jitter, drop_rate=member.drop_rate, seed=member.seed)
    det.name = member.name
    return det


class EnsembleDetector(Detector):
    """Members fused by weighted boxes fusion (see the module docstring)."""

    name = "ensemble"
    counts_own_calls = True  # each member's detection is a model call

    def __init__(
        self, members: list[tuple[str, Detector, float]], *, iou: float = 0.55, skip_score: float = 0.0
    ) -> None:
        if not members:
            raise ConfigError("od_model 'ensemble' needs members: list them in ensemble.detector_members")
        self.members: dict[str, Detector] = {name: det for name, det, _ in members}
        self.weights: dict[str, float] = {name: float(w) for name, _, w in members}
        self.iou = iou
        self.skip_score = skip_score

    @classmethod
    def from_config(cls, config: RunConfig) -> EnsembleDetector:
        ens = config.ensemble
        members = [(m.name, build_member_detector(config, m), m.weight) for m in ens.detector_members]
        return cls(members, iou=ens.wbf_iou, skip_score=ens.wbf_skip_score)

    @property
    def cacheable(self) -> bool:
        return all(det.cacheable for det in self.members.values())

    def begin_sample(self, sample: Sample) -> None:
        for det in self.members.values():
            det.begin_sample(sample)

    def preflight(self) -> None:
        for det in self.members.values():
            det.preflight()

    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        outs = {}
        for name, det in self.members.items():
            count(detections=1)
            outs[name] = det.detect(image, object_names)
        fused = fuse_boxes(
            list(outs.values()),
            [self.weights[n] for n in outs],
            image.size,
            iou=self.iou,
            skip_score=self.skip_score,
        )
        fused.info = {
            "fusion": "wbf",
            "members": {
                n: {
                    "boxes": [_r(b) for b in d.boxes],
                    "scores": [round(float(s), 4) for s in d.scores],
                    "labels": d.labels,
                }
                for n, d in outs.items()
            },
        }
        return fused


def _r(box: Box) -> list[float]:
    return [round(float(v), 2) for v in box]
