"""How often perception met a concept it does not know, from the trace of every row.

A backend that cannot ground a word records it on the trace entry of that call as
``{"info": {"unknown_concepts": [...]}}`` (see ``VisionAgent.score_with_info``). The run
summary gets :func:`count_unknown_concepts` under "unknown_concepts", and the console
prints :func:`unknown_concepts_warning` when at least :data:`WARN_SHARE` of the
perception calls hit one: answers built on them rest on p = 0.5, not on perception.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

WARN_SHARE = 0.05  # warn when this share of perception calls hit an unknown concept


def count_unknown_concepts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{"calls", "perception_calls", "samples", "samples_correct", "by_concept"} over the rows' traces.

    ``samples_correct`` counts the samples with an unknown concept that were judged correct anyway
    (by chance: their answers rest on p = 0.5)."""
    calls = perception = samples = samples_correct = 0
    counts: Counter[str] = Counter()
    for row in rows:
        hit = False
        for entry in row.get("trace") or []:
            perception += 1
            words = (entry.get("info") or {}).get("unknown_concepts") if isinstance(entry, dict) else None
            if words:
                calls += 1
                hit = True
                counts.update(str(w) for w in words)
        samples += hit
        samples_correct += hit and row.get("correct") is True
    return {
        "calls": calls,
        "perception_calls": perception,
        "samples": samples,
        "samples_correct": samples_correct,
        "by_concept": dict(counts.most_common()),
    }


def unknown_concepts_warning(block: dict[str, Any] | None) -> str | None:
    """A one-line console warning when many perception calls hit unknown concepts, else None."""
    if not block or not block.get("calls") or block["calls"] < WARN_SHARE * max(1, block["perception_calls"]):
        return None
    top = ", ".join(f"{w} ({n})" for w, n in list(block["by_concept"].items())[:8])
    return (
        f"warning: {block['calls']} of {block['perception_calls']} perception calls ({block['samples']} samples) "
        f"hit concepts the vision model does not know, answered as p = 0.5: {top}"
    )
