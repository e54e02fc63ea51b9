"""Dataset loaders: each turns a RunConfig into Samples (``config.dataset`` picks one).

Add a loader: write ``def load_<name>(config: RunConfig) -> Iterable[Sample]`` in a
module of this package (validate paths eagerly and raise
``neptune_core.errors.UserError`` with a one-line message naming the path and what
belongs there), then add one lazy line to the table below. Importing this package
loads nothing heavy; :func:`load_samples` applies ``num_samples`` lazily, so a
generated dataset only produces the scenes it needs.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from neptune_core.errors import UserError
from neptune_core.registry import Registry

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from neptune_core.types import Sample

LOADERS: Registry = Registry("dataset")

LOADERS.register_lazy("clevr_synthetic", "local_datasets.clevr:load_clevr_synthetic")
LOADERS.register_lazy("clevr", "local_datasets.clevr:load_clevr")
LOADERS.register_lazy("clevr_humans", "local_datasets.clevr:load_clevr_humans")
LOADERS.register_lazy("clevr_refexps", "local_datasets.clevr_transfer:load_clevr_refexps")
LOADERS.register_lazy("clevr_puzzle", "local_datasets.clevr_transfer:load_clevr_puzzle")
LOADERS.register_lazy("clevr_rpm", "local_datasets.clevr_transfer:load_clevr_rpm")
LOADERS.register_lazy("refadv", "local_datasets.refer:load_refadv")
LOADERS.register_lazy("refgta", "local_datasets.refer:load_refgta")
LOADERS.register_lazy("jsonl", "local_datasets.jsonl:load_jsonl")
LOADERS.register_lazy("hf", "local_datasets.hf:load_hf")


def load_samples(config: RunConfig) -> list[Sample]:
    """The Samples of ``config.dataset``, the first ``config.num_samples`` of them (-1 = all)."""
    n = config.num_samples
    if n < -1:
        raise UserError(f"num_samples must be -1 (all) or >= 0, got {n}")
    samples = LOADERS.get(config.dataset)(config)
    return list(samples if n == -1 else itertools.islice(samples, n))
