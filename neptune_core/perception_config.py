"""Config sections ``marking`` and ``depth``: how an object is shown to the VLM, and depth relations.

Fields of :class:`neptune_core.config.RunConfig`, built and validated like the rest of it;
the backends themselves are named by the top-level ``segmenter`` and ``depth_model`` fields
(vision_agents/segmenters.py, vision_agents/depth.py). Only the settings that can change
results enter the run's config hash, and only when changed from their defaults
(:func:`hashed_perception`), so older runs keep their hashes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

MARKING_STYLES = ("box", "mask_outline", "mask_overlay", "crop")
MASK_STYLES = frozenset({"mask_outline", "mask_overlay"})
DEPTH_REDUCTIONS = ("mask_median", "box_median", "exact")


@dataclass
class MarkingConfig:
    """How the object a question is about is marked on the image, for ``score`` and ``query`` alike.

    ``style``: ``box`` (the box outlined: red subject, green object; as the paper does),
    ``mask_outline`` (the object's mask outlined in the same colours: needs a ``segmenter``),
    ``mask_overlay`` (the masks tinted and outlined, everything else dimmed to ``overlay_dim``
    of its brightness: needs a ``segmenter``), ``crop`` (the image cut to the boxes plus
    ``crop_context`` of their size on every side, boxes outlined in it).
    An object whose mask is empty is outlined by its box.
    ``mask_cache_images``: images whose masks are kept (an LRU; each image's masks are
    computed once per box).
    """

    style: str = "box"
    crop_context: float = 0.5
    overlay_dim: float = 0.35
    mask_cache_images: int = 8

    def __post_init__(self) -> None:
        if self.style not in MARKING_STYLES:
            raise ValueError(f"marking.style must be one of {', '.join(MARKING_STYLES)}, got {self.style!r}")
        if self.crop_context < 0:
            raise ValueError(f"marking.crop_context must be >= 0, got {self.crop_context}")
        if not 0.0 <= self.overlay_dim <= 1.0:
            raise ValueError(f"marking.overlay_dim must be in [0, 1], got {self.overlay_dim}")
        if self.mask_cache_images < 0:
            raise ValueError(f"marking.mask_cache_images must be >= 0, got {self.mask_cache_images}")

    @property
    def uses_masks(self) -> bool:
        return self.style in MASK_STYLES


@dataclass
class DepthConfig:
    """The ``closer()`` primitive: per-object depths from the ``depth_model`` and a soft relation.

    ``reduce``: one depth per box: ``mask_median`` (the median of the depth map over the
    object's mask; over its box when no ``segmenter`` is configured), ``box_median`` (over the
    box), ``exact`` (the depth of the object's centre; only the ``scene_depth`` oracle has it).
    ``temperature``: p(x closer than y) = sigmoid((d_y - d_x) / (temperature * (d_x + d_y) / 2))
    for depths d (distances; a model that outputs inverse depth is inverted first), so it is
    a relative depth difference: 0.02 makes a 2 % difference p = 0.73.
    ``symbolic_relations``: the CLEVR translator (``program_generator: symbolic_clevr``) writes
    "in front of" / "behind" as ``closer()`` instead of asking the VLM.
    ``cache_images``: images whose depth maps are kept (an LRU).
    """

    reduce: str = "mask_median"
    temperature: float = 0.02
    symbolic_relations: bool = False
    cache_images: int = 8

    def __post_init__(self) -> None:
        if self.reduce not in DEPTH_REDUCTIONS:
            raise ValueError(f"depth.reduce must be one of {', '.join(DEPTH_REDUCTIONS)}, got {self.reduce!r}")
        if not self.temperature > 0:
            raise ValueError(f"depth.temperature must be > 0, got {self.temperature}")
        if self.cache_images < 0:
            raise ValueError(f"depth.cache_images must be >= 0, got {self.cache_images}")


_NOT_HASHED = {"marking": ("mask_cache_images",), "depth": ("cache_images",)}


def hashed_perception(d: dict[str, Any]) -> None:
    """Drop from a config dict (``RunConfig.to_dict``) what of this module cannot change results:
    cache sizes, and sections and backend names left at their defaults."""
    defaults = {"marking": dataclasses.asdict(MarkingConfig()), "depth": dataclasses.asdict(DepthConfig())}
    for section, keys in _NOT_HASHED.items():
        for k in keys:
            d.get(section, {}).pop(k, None)
            defaults[section].pop(k, None)
        if d.get(section) == defaults[section]:
            d.pop(section, None)
    for key in ("segmenter", "depth_model"):
        if d.get(key) == "":
            d.pop(key)
