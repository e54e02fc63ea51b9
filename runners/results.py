"""The results file of a run: one JSON line per sample, appended and flushed.

A run killed mid-write leaves at most one partial last line; :func:`read_results`
drops it (and any duplicate ids) and :class:`ResultsWriter` rewrites the file
cleanly before appending, so a rerun resumes with every finished sample exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runners.row_guard import json_line


def read_results(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Valid result lines (first occurrence of each id) and the number of bad/duplicate lines dropped."""
    if not path.exists():
        return [], 0
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    dropped = 0
    with path.open("rb") as f:
        for raw in f:
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                dropped += 1
                continue
            if not isinstance(row, dict) or not isinstance(row.get("id"), (str, int)) or row["id"] in seen:
                dropped += 1
                continue
            seen.add(row["id"])
            rows.append(row)
    return rows, dropped


def _atomic_write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ResultsWriter:
    """Appends result lines to ``path``; each line is flushed to the OS as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        rows, dropped = read_results(path)
        if dropped:
            _atomic_write_lines(path, rows)
        self.done_ids: set[str] = {r["id"] for r in rows}
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
