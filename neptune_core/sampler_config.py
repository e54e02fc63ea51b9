"""The ``sampler`` section of a run config: which samples of a dataset a run takes.

Benchmarks are often run on a seeded subset (VLAgent: 20 GQA questions per question type, 20
VQAv2 questions per question type from val, 1,400 HC-RefLOCO expressions from test). The
sampler (local_datasets/sampling.py) applies, in this order: ``families`` (keep only these),
``per_type`` (at most this many per question type), ``total`` (a random subset of this many),
then the run's ``num_samples`` (the first N of what is left). Its choice is written to the run
directory as ``selection.json``; ``ids_file`` replays a saved choice exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SamplerConfig:
    """Seeded sample selection; the defaults take every sample of the dataset, in its order."""

    per_type: int = 0  # at most this many samples per question type (meta "question_type", else family); 0 = all
    total: int = 0  # then a random subset of this many; 0 = all
    seed: int = 0  # the random choice of per_type and total
    families: list[str] = field(default_factory=list)  # keep only these families first (MME: existence, ...)
    ids_file: str = ""  # a saved selection.json (or a JSON list of ids), relative to data_root: exactly these

    def __post_init__(self) -> None:
        if self.per_type < 0 or self.total < 0:
            raise ValueError(f"sampler.per_type and sampler.total must be >= 0, got {self.per_type}, {self.total}")

    @property
    def active(self) -> bool:
        return bool(self.per_type or self.total or self.families or self.ids_file)
