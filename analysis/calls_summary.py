"""summary.json field ``model_calls``: the model calls per question, from the rows' ``model_calls``.

``per_question``: mean box evaluations (total and by arity), queries, detections and
memo hits per row; ``total``: their sums; ``lazy_relations``: how many relations the
programs built lazily, the pairs they evaluated out of all pairs, and the largest share
of a distribution's mass a contraction skipped (``calls.mass_threshold``; 0 when exact).
Rows written before these counters existed are left out (``rows`` says how many counted).
"""

from __future__ import annotations

from typing import Any

FIELDS = ("box_evals", "queries", "detections", "memo_hits")


def calls_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"model_calls": ...}`` over the rows that record their calls (empty when none does)."""
    counted = [r["model_calls"] for r in rows if isinstance(r.get("model_calls"), dict)]
    if not counted:
        return {}
    total: dict[str, Any] = {f: sum(int(c.get(f, 0)) for c in counted) for f in FIELDS}
    arities = sorted({a for c in counted for a in (c.get("by_arity") or {})})
    total["by_arity"] = {a: sum(int((c.get("by_arity") or {}).get(a, 0)) for c in counted) for a in arities}
    n = len(counted)
    per = {f: round(total[f] / n, 3) for f in FIELDS}
    per["by_arity"] = {a: round(v / n, 3) for a, v in total["by_arity"].items()}
    out: dict[str, Any] = {"rows": n, "per_question": per, "total": total}
    lazy = [
        e["lazy"] for r in rows for e in r.get("trace") or [] if isinstance(e, dict) and isinstance(e.get("lazy"), dict)
    ]
    if lazy:
        out["lazy_relations"] = {
            "relations": len(lazy),
            "evaluated_pairs": sum(int(x.get("evaluated", 0)) for x in lazy),
            "pairs": sum(int(x.get("entries", 0)) for x in lazy),
            "max_dropped_mass": max(float(x.get("dropped_mass", 0.0)) for x in lazy),
        }
    return {"model_calls": out}


def format_calls(summary: dict[str, Any]) -> str | None:
    """One line for the terminal, or None."""
    calls = summary.get("model_calls")
    if not calls:
        return None
    per = calls["per_question"]
    arity = ", ".join(f"{a}: {v}" for a, v in per["by_arity"].items())
    line = (
        f"model calls per question: {per['box_evals']} box evaluations (by arity {arity}), "
        f"{per['queries']} queries, {per['detections']} detections, {per['memo_hits']} memo hits"
    )
    lazy = calls.get("lazy_relations")
    if lazy:
        line += f"; lazy relations evaluated {lazy['evaluated_pairs']} of {lazy['pairs']} pairs"
        if lazy["max_dropped_mass"]:
            line += f" (skipped at most {lazy['max_dropped_mass']:.3f} of a distribution's mass)"
    return line
