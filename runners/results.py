"""The results file of a run: one JSON line per sample, appended and flushed.

A run killed mid-write leaves at most one partial last line; :func:`read_results`
drops it. A sample that is redone (its row was not final, or ``--retry_failed``) gets a
new line appended; the newest line of an id replaces the older ones, in the place of
the first. :class:`ResultsWriter` rewrites the file cleanly (one line per id) before
appending, so a rerun resumes with every sample exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runners.outcomes import is_done
from runners.row_guard import json_line


def read_results(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Valid result lines (the newest line of each id, in the place of its first) and the number dropped.

    Dropped lines are torn or invalid lines and older lines of an id that was redone.
    """
    if not path.exists():
        return [], 0
    by_id: dict[str, dict[str, Any]] = {}
    dropped = 0
    with path.open("rb") as f:
        for raw in f:
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                dropped += 1
                continue
            if not isinstance(row, dict) or not isinstance(row.get("id"), (str, int)):
                dropped += 1
                continue
            if row["id"] in by_id:
                dropped += 1
            by_id[row["id"]] = row  # a redone sample: the newest line wins, the first place is kept
    return list(by_id.values()), dropped


def _atomic_write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def compact_results(path: Path) -> list[dict[str, Any]]:
    """Rewrite ``path`` with one line per id (a redone sample's newest line in its first place); returns the rows."""
    rows, dropped = read_results(path)
    if dropped:
        _atomic_write_lines(path, rows)
    return rows


class ResultsWriter:
    """Appends result lines to ``path``; each line is flushed to the OS as it is written.

    ``done_ids`` are the samples a rerun keeps (:func:`runners.outcomes.is_done`): final
    rows, and with ``retry_failed`` only final good ones. Any other id is redone, and its
    new line replaces the old one.
    """

    def __init__(self, path: Path, *, retry_failed: bool = False) -> None:
        self.path = path
        rows, dropped = read_results(path)
        if dropped:
            _atomic_write_lines(path, rows)
        self.done_ids: set[str] = {r["id"] for r in rows if is_done(r, retry_failed)}
        self._f = path.open("a")

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` (or, if it cannot be written, its error row: runners/row_guard.py)."""
        self._f.write(json_line(row) + "\n")
        self._f.flush()
        self.done_ids.add(row["id"])

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
