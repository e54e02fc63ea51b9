"""summary.json: accuracy overall and per question family, errors by type,
program origins, timings, and the CLEVR function coverage of the questions run."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from analysis.calls_summary import calls_summary, format_calls
from analysis.verify_summary import ensemble_and_verification


def _accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    judged = [r for r in rows if r.get("correct") is not None]
    correct = sum(1 for r in judged if r["correct"])
    return {
        "accuracy": round(100.0 * correct / len(judged), 2) if judged else None,
        "correct": correct,
        "total": len(judged),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate result lines into the run summary."""
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_family[str(r.get("family", "all"))].append(r)
    errors = Counter(r["error"]["type"] for r in rows if r.get("error"))
    error_stages = Counter(r["error"].get("stage", "?") for r in rows if r.get("error"))
    origins = Counter(str(r.get("program_origin")) for r in rows)
    functions = Counter(f for r in rows for f in r.get("functions") or [])
    timings: dict[str, dict[str, float]] = {}
    stages = sorted({k for r in rows for k in (r.get("timings") or {})})
    for stage in stages:
        vals = [r["timings"][stage] for r in rows if stage in (r.get("timings") or {})]
        timings[stage] = {
            "mean_ms": round(statistics.fmean(vals), 3),
            "median_ms": round(statistics.median(vals), 3),
            "total_s": round(sum(vals) / 1000.0, 3),
        }
    summary: dict[str, Any] = {
        "num_samples": len(rows),
        **_accuracy(rows),
        "per_family": {f: _accuracy(rs) for f, rs in sorted(by_family.items())},
        "errors": {"total": sum(errors.values()), "by_type": dict(errors), "by_stage": dict(error_stages)},
        "program_origins": dict(origins),
        "timings": timings,
    }
    summary.update(ensemble_and_verification(rows))  # member_accuracy, verification (when present)
    summary.update(calls_summary(rows))  # model_calls per question (when rows record them)
    if functions:
        summary["function_coverage"] = {"num_functions": len(functions), "counts": dict(sorted(functions.items()))}
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A few readable lines for the terminal."""
    lines = [f"accuracy: {summary['accuracy']}% ({summary['correct']}/{summary['total']})"]
    for fam, acc in summary["per_family"].items():
        lines.append(f"  {fam:<20} {acc['accuracy']}% ({acc['correct']}/{acc['total']})")
    err = summary["errors"]
    lines.append(f"errors: {err['total']} {err['by_type'] if err['total'] else ''}".rstrip())
    if "member_accuracy" in summary:
        lines.append("members alone: " + ", ".join(f"{n} {a}%" for n, a in summary["member_accuracy"].items()))
    if "verification" in summary:
        v = summary["verification"]
        lines.append(
            f"verification: {v['changed']} of {v['rows']} answers changed; accuracy "
            f"{v['accuracy_before']}% -> {v['accuracy_after']}%"
        )
    calls = format_calls(summary)
    if calls:
        lines.append(calls)
    if "function_coverage" in summary:
        cov = summary["function_coverage"]
        lines.append(f"function coverage: {cov['num_functions']} functions: " + ", ".join(cov["counts"]))
    if "total" in summary["timings"]:
        t = summary["timings"]["total"]
        lines.append(f"time per sample: median {t['median_ms']} ms, total {t['total_s']} s")
    return "\n".join(lines)
