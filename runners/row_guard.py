"""Bounded result rows: every row the loop writes is valid UTF-8, JSON-serialisable and at most
``executor.max_row_bytes``; a row that cannot be made so becomes an error row. Never raises.

:func:`bound_row` (called by the run loop on each finished row) cleans and, if needed, shrinks
a row: lone surrogates (say, in an answer) become U+FFFD (surrogate pairs are joined), numpy
and torch numbers and small arrays become plain JSON, and a row over the size cap first loses
trace entries beyond what fits (a "truncated" marker entry counts them), then has its long
strings cut. :func:`json_line` is the writer's last line of defence: the JSON text of a row, or
of its error row.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from neptune_core.text import clean_text

_ESCAPED_SURROGATE = re.compile(r"\\ud[89a-f]", re.IGNORECASE)  # in json.dumps output (pairs included)
_MAX_DEPTH = 64
_CUT_STRINGS = 2_000  # strings are cut to this many characters when a row is still too large
_ERROR_FIELDS = ("id", "question", "gold", "family", "program", "program_origin", "config_hash")


class RowError(ValueError):
    """A row cannot be written as it is (not serialisable, too large)."""


def _plain(value: Any, path: str, depth: int) -> Any:
    """A JSON-able copy of ``value`` with clean text; RowError naming the path of anything else."""
    if depth > _MAX_DEPTH:
        raise RowError(f"{path}: nested more than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _plain(v, f"{path}.{k}", depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and callable(getattr(value, "tolist", None)):  # numpy / torch numbers, arrays
        if math.prod(shape) <= 100_000:
            return _plain(value.tolist(), path, depth + 1)
    raise RowError(f"{path}: a value of type {type(value).__name__} cannot be written to results.jsonl")


def _dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, allow_nan=True)


# the quick first look of bound_row: the same text as _dumps wherever that is all ASCII (nothing to escape,
# so no lone surrogate either), without the circular-reference bookkeeping (a circular row still fails:
# RecursionError)
_QUICK = json.JSONEncoder(ensure_ascii=False, check_circular=False, allow_nan=True)


def _needs_cleaning(line: str) -> bool:
    return _ESCAPED_SURROGATE.search(line) is not None


def _shrink_trace(row: dict[str, Any], budget: int) -> None:
    trace = row.get("trace")
    if not isinstance(trace, list) or not trace:
        return
    kept, used = [], 0
    for entry in trace:
        size = len(_dumps(entry)) + 2
        if used + size > budget:
            break
        kept.append(entry)
        used += size
    omitted = len(trace) - len(kept)
    if omitted:
        kept.append(
            {
                "primitive": "truncated",
                "omitted": omitted,
                "message": f"{omitted} trace entries left out to keep the row under executor.max_row_bytes",
            }
        )
        row["trace"] = kept


def _cut_strings(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _CUT_STRINGS:
        return value[:_CUT_STRINGS] + f"...[{len(value) - _CUT_STRINGS} more characters]"
    if isinstance(value, dict):
        return {k: _cut_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_strings(v) for v in value]
    return value


def error_row(row: dict[str, Any], error_type: str, message: str) -> dict[str, Any]:
    """A small row keeping what identifies the sample, with ``error`` set (stage "record")."""
    out: dict[str, Any] = {}
    for key in _ERROR_FIELDS:
        if key in row:
            try:
                out[key] = _cut_strings(_plain(row[key], key, 0))
            except RowError:
                out[key] = None
    out.setdefault("id", None)
    out.update(
        {
            "pred": None,
            "correct": False if out.get("gold") is not None else None,
            "error": {"type": error_type, "message": clean_text(message)[:2000], "stage": "record"},
            "trace": [],
            "timings": {},
        }
    )
    return out


def bound_row(row: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """``row`` made writable: clean, JSON-serialisable and at most ``max_bytes`` (see the module doc)."""
    try:
        line = _QUICK.encode(row)
        if line.isascii() and len(line) <= max_bytes:
            return row
        line = _dumps(row)
        if len(line) <= max_bytes and not _needs_cleaning(line):
            return row
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        clean = _plain(row, "row", 0)
        line = _dumps(clean)
        if len(line) > max_bytes:
            others = len(_dumps({k: v for k, v in clean.items() if k != "trace"}))
            _shrink_trace(clean, max(0, max_bytes - others - 200))
            line = _dumps(clean)
        if len(line) > max_bytes:
            clean = _cut_strings(clean)
            line = _dumps(clean)
        if len(line) > max_bytes:
            raise RowError(f"the row has {len(line)} bytes even with its trace and long strings cut")
        return clean
    except (RowError, TypeError, ValueError, RecursionError, MemoryError) as e:
        return error_row(row, "RowNotWritable", f"{type(e).__name__}: {e}")


def json_line(row: dict[str, Any]) -> str:
    """The JSON text of ``row`` (text made valid), or of its error row if ``row`` cannot be written."""
    try:
        line = _dumps(row)
        if _needs_cleaning(line):
            line = _dumps(_plain(row, "row", 0))
        return line
    except (TypeError, ValueError, RecursionError, MemoryError, RowError) as e:
        return _dumps(error_row(row if isinstance(row, dict) else {}, "RowNotWritable", f"{type(e).__name__}: {e}"))
