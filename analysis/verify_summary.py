"""summary.json fields of ensembles and verifiers, from the rows' ``members`` and ``verify``.

- ``member_accuracy``: member name -> percent correct when that member alone ran the
  same program on the same samples (rows with an error of the whole sample count as
  wrong for every member, as they do for the ensemble); ``member_errors``: name -> how
  many of its solo runs failed.
- ``verification``: per verifier, how many rows it skipped / kept / changed (by status),
  plus accuracy before and after verification over the same rows, and how many answers
  verification changed to right and to wrong.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any


def _pct(k: int, n: int) -> float | None:
    return round(100.0 * k / n, 2) if n else None


def member_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``member_accuracy`` and ``member_errors`` over the judged rows (empty when no row has members)."""
    judged = [r for r in rows if r.get("correct") is not None]
    if not any(r.get("members") for r in judged):
        return {}
    names = list(dict.fromkeys(n for r in judged for n in (r.get("members") or {})))
    correct: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for r in judged:
        for name in names:
            m = (r.get("members") or {}).get(name)
            if m is None:
                continue
            correct[name] += bool(m.get("correct"))
            errors[name] += "error" in m
    return {
        "member_accuracy": {n: _pct(correct[n], len(judged)) for n in names},
        "member_errors": {n: errors[n] for n in names},
    }


def verification_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``verification`` block (empty when no row was verified)."""
    verified = [r for r in rows if r.get("verify")]
    if not verified:
        return {}
    status: dict[str, Counter[str]] = defaultdict(Counter)
    for r in verified:
        for name, rec in r["verify"].items():
            if isinstance(rec, dict) and "status" in rec:
                status[name][rec["status"]] += 1
    judged = [r for r in verified if r.get("correct") is not None]
    before = sum(1 for r in judged if r["verify"].get("correct_before"))
    after = sum(1 for r in judged if r["correct"])
    fixed = sum(1 for r in judged if r["correct"] and not r["verify"].get("correct_before"))
    broken = sum(1 for r in judged if not r["correct"] and r["verify"].get("correct_before"))
    return {
        "verification": {
            "rows": len(verified),
            "changed": sum(1 for r in verified if r["verify"].get("changed")),
            "by_verifier": {name: dict(c) for name, c in sorted(status.items())},
            "accuracy_before": _pct(before, len(judged)),
            "accuracy_after": _pct(after, len(judged)),
            "changed_to_correct": fixed,
            "changed_to_wrong": broken,
        }
    }


def ensemble_and_verification(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {**member_summary(rows), **verification_summary(rows)}
