"""summary.json: accuracy overall and per question family, samples by outcome (ok /
error / fallback, and how many are not final), errors by stage and type, program origins,
timings, unknown concepts met by perception, ensemble members and verification, and the
CLEVR function coverage of the questions run."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from analysis.benchmarks import benchmark_summary, format_benchmark
from analysis.calls_summary import calls_summary, format_calls
from analysis.unknown_concepts import count_unknown_concepts, unknown_concepts_warning
from analysis.verify_summary import ensemble_and_verification
from runners.outcomes import count_outcomes, is_transient_error


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
    stage_types = Counter(f"{r['error'].get('stage', '?')}/{r['error']['type']}" for r in rows if r.get("error"))
    transient = sum(1 for r in rows if r.get("error") and is_transient_error(r["error"]))
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
        "outcomes": count_outcomes(rows),
        "errors": {
            "total": sum(errors.values()),
            "transient": transient,
            "by_type": dict(errors),
            "by_stage": dict(error_stages),
            "by_stage_type": dict(stage_types),
        },
        "program_origins": dict(origins),
        "timings": timings,
        "unknown_concepts": count_unknown_concepts(rows),
    }
    summary.update(ensemble_and_verification(rows))  # member_accuracy, verification (when present)
    summary.update(calls_summary(rows))  # model_calls per question (when rows record them)
    benchmark = benchmark_summary(rows)  # a benchmark's official numbers (analysis/benchmarks.py)
    if benchmark is not None:
        summary["benchmark"] = benchmark
    if functions:
        summary["function_coverage"] = {"num_functions": len(functions), "counts": dict(sorted(functions.items()))}
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A few readable lines for the terminal."""
    lines = [f"accuracy: {summary['accuracy']}% ({summary['correct']}/{summary['total']})"]
    if summary.get("benchmark"):
        lines.append(format_benchmark(summary["benchmark"]))
    for fam, acc in summary["per_family"].items():
        lines.append(f"  {fam:<20} {acc['accuracy']}% ({acc['correct']}/{acc['total']})")
    err = summary["errors"]
    lines.append(f"errors: {err['total']} {err.get('by_stage_type', err['by_type']) if err['total'] else ''}".rstrip())
    if "outcomes" in summary:
        o = summary["outcomes"]
        line = f"outcomes: ok {o['ok']}, error {o['error']}, fallback {o['fallback']}"
        if o["not_final"]:
            line += f"; not final {o['not_final']} (transient: the next run of the same command redoes them)"
        lines.append(line)
    origins = summary.get("program_origins") or {}
    if origins:
        lines.append("program origins: " + ", ".join(f"{k} {v}" for k, v in sorted(origins.items())))
    inv = summary.get("this_invocation")
    if inv is not None:
        line = f"this invocation: {inv.get('processed', 0)} samples processed"
        if "llm_requests" in inv:
            line += f", {inv['llm_requests']} LLM requests, {inv.get('cache_hits', 0)} program cache hits"
        if inv.get("program_origins"):
            line += " (" + ", ".join(f"{k} {v}" for k, v in sorted(inv["program_origins"].items())) + ")"
        lines.append(line)
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
    warning = unknown_concepts_warning(summary.get("unknown_concepts"))
    if warning:
        lines.append(warning)
    if "total" in summary["timings"]:
        t = summary["timings"]["total"]
        lines.append(f"time per sample: median {t['median_ms']} ms, total {t['total_s']} s")
    return "\n".join(lines)
