"""What a result row's outcome is, whether it is final, and when a run is degraded.

Every row the runner writes carries:

- ``outcome``: "ok" (a real program ran and gave a prediction), "error" (the sample failed;
  ``error`` says at which ``stage`` and with which ``type``) or "fallback" (no usable program:
  the whole question went to the VLM; ``fallback.reason`` says why). ``program_origin`` keeps
  saying where the program came from (generated, repaired, cache, symbolic, ...).
- ``error.transient``: the failure came from the world, not from the sample: a dropped
  connection, a timeout, a rate limit, a server or model that was unavailable, an interruption.
- ``final``: False when the next run of the same command must redo the row (a transient
  error, or a fallback caused by one). ``--retry_failed`` also redoes final error and
  fallback rows. A finished good row is never redone.

Which failures are transient is decided in :mod:`neptune_core.failures`.
"""

from __future__ import annotations

import json
from typing import Any

from neptune_core.errors import ConfigError
from neptune_core.failures import is_transient_error

OUTCOMES = ("ok", "error", "fallback")

#: exit code of a run whose share of errored + fallback samples exceeds ``max_failure_rate``
DEGRADED_EXIT_CODE = 3


def program_fields(program: Any) -> dict[str, Any]:
    """Row fields that say how a program was made: ``program_info`` (e.g. each LLM round's raw
    reply and problems) and, for a fallback, ``fallback`` = ``{"reason", "transient"}``."""
    info = dict(getattr(program, "info", None) or {})
    fallback = info.pop("fallback", None)
    fields: dict[str, Any] = {}
    if info:
        fields["program_info"] = json.loads(json.dumps(info, default=str))  # JSON-safe, a copy
    if fallback is None and getattr(program, "origin", None) == "fallback":
        fallback = {"reason": "the program generator fell back without saying why", "transient": False}
    if fallback is not None:
        fields["fallback"] = {"reason": str(fallback.get("reason", "")), "transient": bool(fallback.get("transient"))}
    return fields


def finalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """Set ``outcome``, ``final`` and ``error.transient`` on a freshly processed row (in place)."""
    error = row.get("error")
    fallback = row.get("fallback")
    transient = False
    if error is not None:
        error["transient"] = is_transient_error(error)
        transient = error["transient"]
    if fallback is not None:
        transient = transient or bool(fallback.get("transient"))
    row["outcome"] = "error" if error is not None else "fallback" if fallback is not None else "ok"
    row["final"] = not transient
    return row


def outcome_of(row: dict[str, Any]) -> tuple[str, bool]:
    """(outcome, final) of any row, also one written before rows carried these fields."""
    if "outcome" in row and "final" in row:
        return str(row["outcome"]), bool(row["final"])
    error = row.get("error")
    if error:
        return "error", not is_transient_error(error)
    if row.get("program_origin") == "fallback" or row.get("fallback"):
        return "fallback", True  # an old row cannot say why: --retry_failed redoes it
    return "ok", True


def is_done(row: dict[str, Any], retry_failed: bool = False) -> bool:
    """Whether a rerun keeps ``row``: it is final, and with ``retry_failed`` also ok."""
    outcome, final = outcome_of(row)
    return final and (outcome == "ok" or not retry_failed)


def count_outcomes(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by outcome, how many of each are transient / not final, and the failure rate."""
    counts = {k: 0 for k in OUTCOMES}
    not_final = {k: 0 for k in OUTCOMES}
    for row in rows:
        outcome, final = outcome_of(row)
        counts[outcome] = counts.get(outcome, 0) + 1
        if not final:
            not_final[outcome] = not_final.get(outcome, 0) + 1
    n = len(rows)
    failed = counts["error"] + counts["fallback"]
    return {
        **counts,
        "not_final": sum(not_final.values()),
        "not_final_by_outcome": {k: v for k, v in not_final.items() if v},
        "failure_rate": round(failed / n, 4) if n else 0.0,
    }


def check_failure_rate(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"max_failure_rate must be between 0 and 1, got {value}")
    return value


def degraded_reason(summary: dict[str, Any], max_failure_rate: float) -> str | None:
    """One line saying why the run is degraded, or None when its failure rate is within the limit."""
    check_failure_rate(max_failure_rate)
    outcomes = summary.get("outcomes") or {}
    n = summary.get("num_samples", 0)
    failed = outcomes.get("error", 0) + outcomes.get("fallback", 0)
    if not n or failed / n <= max_failure_rate:
        return None
    parts = []
    if outcomes.get("error"):
        by = summary.get("errors", {}).get("by_stage_type", {})
        top = ", ".join(f"{k} x{v}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:3])
        parts.append(f"{outcomes['error']} errors ({top})" if top else f"{outcomes['error']} errors")
    if outcomes.get("fallback"):
        parts.append(f"{outcomes['fallback']} fallback programs")
    redo = outcomes.get("not_final", 0)
    if redo == failed:
        hint = "all of them are transient: rerunning the same command redoes them; "
    elif redo:
        hint = f"{redo} of them are transient (rerunning the same command redoes them), --retry_failed redoes all; "
    else:
        hint = "rerun with --retry_failed to redo them; "
    return (
        f"degraded run: {failed} of {n} samples ({100.0 * failed / n:.1f}%) failed: {'; '.join(parts)}; "
        f"above max_failure_rate {max_failure_rate:g}; {hint}these samples count as wrong in the accuracy"
    )
