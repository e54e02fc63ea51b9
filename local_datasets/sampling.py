"""Seeded sample selection (the config's ``sampler`` section, neptune_core/sampler_config.py) and
its record, ``selection.json`` in the run directory.

:func:`select` applies ``ids_file`` (replay a saved choice), ``families`` (keep only these),
``per_type`` (at most k per question type: ``meta["question_type"]``, else the family) and
``total`` (a random subset), in that order, with one ``random.Random(seed)``; types are
visited in sorted order and the chosen samples keep the dataset's order, so the same data,
seed and settings give the same samples on any machine. :func:`load_samples` in this package
calls it on the full dataset, then applies ``num_samples``.

``selection.json``::

    {"dataset": "gqa", "split": "testdev", "sampler": {...}, "available": 12578,
     "selected": 1460, "per_type": {"existAttr": 20, ...}, "ids": ["20968078", ...]}

Pass it back as ``sampler.ids_file`` to run exactly those samples again.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neptune_core.errors import UserError
from neptune_core.types import Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

SELECTION_FILE = "selection.json"


class SampleList(list):
    """The samples of a run, with the sampler's record (``selection``; None when no sampler ran)."""

    selection: dict[str, Any] | None = None


def question_type(sample: Sample) -> str:
    """What ``per_type`` counts by: the loader's ``meta["question_type"]``, else the sample's family."""
    return str(sample.meta.get("question_type", sample.family))


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(
            f"sampler.ids_file {path} not found (a selection.json of an earlier run, or a JSON list of ids)"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"sampler.ids_file {path} is not valid JSON: {e.msg}") from None
    ids = data.get("ids") if isinstance(data, dict) else data
    if not isinstance(ids, list) or not ids:
        raise UserError(f"sampler.ids_file {path} must hold a non-empty list of ids (or a selection.json with 'ids')")
    return [str(i) for i in ids]


def select(samples: list[Sample], config: RunConfig) -> tuple[list[Sample], dict[str, Any]]:
    """The samples ``config.sampler`` chooses from ``samples``, and the record of the choice."""
    sampler = config.sampler
    rng = random.Random(sampler.seed)
    chosen = list(samples)
    if sampler.ids_file:
        wanted = _read_ids(config.resolve_path(sampler.ids_file))
        by_id = {s.id: s for s in chosen}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise UserError(
                f"{len(missing)} of the {len(wanted)} ids in sampler.ids_file are not in the dataset "
                f"(first: {', '.join(missing[:3])}); is it the same data and split?"
            )
        chosen = [by_id[i] for i in wanted]
    if sampler.families:
        present = sorted({s.family for s in chosen})
        unknown = [f for f in sampler.families if f not in present]
        if unknown:
            raise UserError(
                f"sampler.families {', '.join(unknown)} not in the data; its families: {', '.join(present)}"
            )
        chosen = [s for s in chosen if s.family in sampler.families]
    if sampler.per_type:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(chosen):
            groups[question_type(s)].append(i)
        keep: set[int] = set()
        for kind in sorted(groups):
            members = groups[kind]
            keep.update(members if len(members) <= sampler.per_type else rng.sample(members, sampler.per_type))
        chosen = [s for i, s in enumerate(chosen) if i in keep]
    if sampler.total and sampler.total < len(chosen):
        keep = set(rng.sample(range(len(chosen)), sampler.total))
        chosen = [s for i, s in enumerate(chosen) if i in keep]
    record = {
        "dataset": config.dataset,
        "split": config.split,
        "sampler": dataclasses.asdict(sampler),
        "available": len(samples),
        "selected": len(chosen),
        "per_type": dict(sorted(Counter(question_type(s) for s in chosen).items())),
        "ids": [s.id for s in chosen],
    }
    return chosen, record


def save_selection(run_dir: Path, samples: Any) -> Path | None:
    """Write the samples' selection record (if a sampler chose them) to ``run_dir/selection.json``."""
    record = getattr(samples, "selection", None)
    if record is None:
        return None
    path = Path(run_dir) / SELECTION_FILE
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path
