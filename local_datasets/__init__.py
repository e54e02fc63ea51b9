"""Dataset loaders: each turns a RunConfig into Samples (``config.dataset`` picks one).

Add a loader: write ``def load_<name>(config: RunConfig) -> Iterable[Sample]`` in a
module of this package (validate paths eagerly and raise
``neptune_core.errors.UserError`` with a one-line message naming the path and what
belongs there), then add one lazy line to the table below. Importing this package
loads nothing heavy; :func:`load_samples` applies ``num_samples`` lazily, so a
generated dataset only produces the scenes it needs.
"""

from __future__ import annotations

import dataclasses
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
# VLAgent's image benchmarks: the official release layout, or a Hugging Face copy (hf_path)
LOADERS.register_lazy("gqa", "local_datasets.gqa:load_gqa")
LOADERS.register_lazy("nlvr2", "local_datasets.nlvr2:load_nlvr2")
LOADERS.register_lazy("vqav2", "local_datasets.vqav2:load_vqav2")
LOADERS.register_lazy("mme", "local_datasets.mme:load_mme")
LOADERS.register_lazy("hc_refloco", "local_datasets.hc_refloco:load_hc_refloco")


def load_samples(config: RunConfig) -> list[Sample]:
    """The Samples of ``config.dataset``, the first ``config.num_samples`` of them (-1 = all).

    With an active ``sampler`` section (local_datasets/sampling.py) the loader reads the whole
    dataset, the sampler chooses, and ``num_samples`` applies to its choice; the returned
    list then carries the record of the choice (``.selection``, saved as selection.json)."""
    from local_datasets.sampling import SampleList, select

    n = config.num_samples
    if n < -1:
        raise UserError(f"num_samples must be -1 (all) or >= 0, got {n}")
    if not config.sampler.active:
        samples = LOADERS.get(config.dataset)(config)
        return SampleList(samples if n == -1 else itertools.islice(samples, n))
    everything = list(LOADERS.get(config.dataset)(dataclasses.replace(config, num_samples=-1)))
    chosen, record = select(everything, config)
    out = SampleList(chosen if n == -1 else chosen[:n])
    record["num_samples"] = n
    record["ids"] = [s.id for s in out]
    out.selection = record
    return out
