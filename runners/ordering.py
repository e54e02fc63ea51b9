"""Run order: the questions of one image one after another, and (mostly) on one worker.

The memo (vision_agents.base.MemoizedAgent) and the detection cache keep the most recently
used images, so a run that visits an image's questions together computes each box
evaluation and detection once. Resume is unaffected: rows are keyed by sample id, and
the merged results keep dataset order (runners.sharding.merge_shards).
"""

from __future__ import annotations

from neptune_core.types import Sample
from vision_agents.memo import sample_image_key


def group_by_image(samples: list[Sample]) -> list[Sample]:
    """``samples`` with each image's questions together, images in order of first appearance (stable)."""
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(sample_image_key(s), []).append(s)
    return [s for group in groups.values() for s in group]


def partition_by_image(samples: list[Sample], k: int, num_workers: int) -> list[Sample]:
    """Worker ``k``'s share: a contiguous ``1/num_workers`` of the samples grouped by image (deterministic).

    Shares differ by at most one sample, and an image's questions stay on one worker except
    where a share ends inside an image (at most ``num_workers - 1`` images are split).
    """
    if num_workers < 1 or not 0 <= k < num_workers:
        raise ValueError(f"worker {k} of {num_workers} does not exist")
    ordered = group_by_image(samples)
    n = len(ordered)
    return ordered[k * n // num_workers : (k + 1) * n // num_workers]
