"""Config section ``calls``: how a run saves model calls (lazy relations, memo, caches, marking).

A field of :class:`neptune_core.config.RunConfig`, built and validated like the rest of
it. Only ``mass_threshold`` and ``tensor_marking`` can change a run's results (the other
settings decide what is computed twice, never what comes out), so only they, and only
when changed from their defaults, enter the run's config hash (:func:`hashed_section`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class CallsConfig:
    """Fewer and cheaper model calls.

    ``lazy_relations``: ``score(question, 2)`` evaluates only the (subject, object) pairs the
    program uses: contracted with a distribution (an ``iota``, a one-hot), only the objects
    holding its mass are evaluated; anything else evaluates every pair.
    ``mass_threshold``: 0 is exact (an object is skipped only when its weight is exactly 0);
    above 0, the objects carrying the smallest weights are also skipped as long as their
    total stays at most this share of the distribution's mass (the contracted values then
    change by at most that share). Recorded on each relation's trace entry and in the summary.
    ``memo_images``: images whose evaluations and answers are kept and shared by all their
    questions (an LRU; 0 = one memo per sample, as before).
    ``group_by_image``: run the questions of one image one after another (resume unaffected:
    rows are keyed by sample id); workers take contiguous shares of that order, so an image's
    questions stay on one worker except where a share ends.
    ``detection_cache_images``: images whose detections are kept per (object names, detector
    settings) (an LRU; 0 = no cache).
    ``tensor_marking``: transformers VLMs preprocess an image once per question and draw each
    box's mark into the pixel tensor (vision_agents/tensor_marking.py), instead of running the
    processor on a PIL-marked copy per box.
    """

    lazy_relations: bool = True
    mass_threshold: float = 0.0
    memo_images: int = 8
    group_by_image: bool = True
    detection_cache_images: int = 8
    tensor_marking: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.mass_threshold < 1.0:
            raise ValueError(f"calls.mass_threshold must be in [0, 1), got {self.mass_threshold}")
        if self.memo_images < 0 or self.detection_cache_images < 0:
            raise ValueError("calls.memo_images and calls.detection_cache_images must be >= 0")


RESULT_FIELDS = ("mass_threshold", "tensor_marking")


def hashed_section(section: dict[str, Any]) -> dict[str, Any] | None:
    """The part of a ``calls`` section that enters the config hash: changed result fields, or None."""
    defaults = dataclasses.asdict(CallsConfig())
    changed = {k: section[k] for k in RESULT_FIELDS if k in section and section[k] != defaults[k]}
    return changed or None
