"""Shard files of a data-parallel run and their merge into results.jsonl.

Worker ``k`` of ``K`` appends its result lines to ``results.shard<k>.jsonl`` in the run
directory. A sample is done when its newest row, in ``results.jsonl`` or in any shard
file, is final (:func:`runners.outcomes.is_done`). :func:`merge_shards` folds every shard
into ``results.jsonl`` (each id once: a shard's line, written later, replaces the merged
one of a redone sample; in dataset order when the order is known), writes it atomically
and only then removes the shards, so a crash at any point loses no finished sample.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from runners.outcomes import is_done
from runners.results import _atomic_write_lines, read_results

T = TypeVar("T")

RESULTS = "results.jsonl"
_SHARD_RE = re.compile(r"^results\.shard(\d+)\.jsonl$")


def shard_path(run_dir: Path, k: int) -> Path:
    """Where worker ``k`` appends its result lines."""
    return Path(run_dir) / f"results.shard{k}.jsonl"


def shard_files(run_dir: Path) -> list[Path]:
    """Existing shard files of ``run_dir``, by worker index."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("results.shard*.jsonl") if (m := _SHARD_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def partition(items: Sequence[T], k: int, num_workers: int) -> list[T]:
    """Worker ``k``'s share of ``items``: every ``num_workers``-th item starting at ``k`` (deterministic)."""
    if num_workers < 1 or not 0 <= k < num_workers:
        raise ValueError(f"worker {k} of {num_workers} does not exist")
    return list(items[k::num_workers])


def merged_ids(run_dir: Path, retry_failed: bool | None = None) -> set[str]:
    """Ids in the merged ``results.jsonl``: all of them, or (``retry_failed`` given) those a rerun keeps."""
    rows, _ = read_results(Path(run_dir) / RESULTS)
    return {r["id"] for r in rows if retry_failed is None or is_done(r, retry_failed)}


def latest_rows(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The newest row of each id in ``results.jsonl`` and the shard files."""
    by_id: dict[str, dict[str, Any]] = {}
    for path in [Path(run_dir) / RESULTS, *shard_files(run_dir)]:
        rows, _ = read_results(path)
        by_id.update((r["id"], r) for r in rows)
    return by_id


def done_ids(run_dir: Path, retry_failed: bool = False) -> set[str]:
    """Ids whose newest row (in ``results.jsonl`` or any shard file) a rerun keeps."""
    return {i for i, row in latest_rows(run_dir).items() if is_done(row, retry_failed)}


def merge_shards(run_dir: Path, order: Sequence[str] | None = None) -> int:
    """Fold all shards into ``results.jsonl`` and remove them; returns the number of lines written.

    Lines whose id is in ``order`` come first, in that order; any others (e.g. from an
    earlier run with more samples) follow in the order they were found.
    """
    run_dir = Path(run_dir)
    shards = shard_files(run_dir)
    if not shards and order is None:
        return len(read_results(run_dir / RESULTS)[0])
    by_id = latest_rows(run_dir)
    ordered: list[dict[str, Any]] = []
    if order is not None:
        ordered = [by_id.pop(i) for i in dict.fromkeys(order) if i in by_id]
    ordered.extend(by_id.values())
    _atomic_write_lines(run_dir / RESULTS, ordered)
    for p in shards:
        p.unlink()
    return len(ordered)
