"""``--evaluate``: score a finished run's results.jsonl, exact match first, an LLM judge second.

For each result line: a box answer (referring expressions) keeps its IoU verdict; a
line with no prediction (an error) is wrong; a fallback's answer (the whole question put
to the VLM when no program could be made) is scored by exact match only and never sent to
the judge; otherwise the prediction is compared with the gold answer after normalisation
(:mod:`analysis.normalize`), and only the mismatches go to the LLM judge
(:mod:`analysis.judge`), in ``workers`` threads.

The judge runs only when one is configured (:func:`analysis.judge.judge_requested`);
without one, the report is exact match only and says so. A configured judge is checked
once first (its preflight: a broken endpoint or key is one line, exit 2). A row the judge
cannot judge (no verdict in its replies, or the judge went down) is recorded as unjudged
and scored by exact match; the evaluation goes on and a rerun asks only for what is
missing. Verdicts are cached in ``<run_dir>/judge_verdicts.jsonl`` as they arrive. Writes
``evaluation.json`` and ``evaluation.md`` (overall and per question family) and returns the
report.

    python run.py --config configs/clevr-humans.json --evaluate [--judge_model M --judge_provider P --workers 64]
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from analysis.benchmarks import benchmark_summary
from analysis.judge import (
    DEFAULT_JUDGE_PROVIDER,
    JudgeUnavailableError,
    LLMJudge,
    NoVerdictError,
    VerdictCache,
    judge_requested,
    resolve_judge,
    verdict_key,
)
from analysis.normalize import answers_match
from neptune_core.config import RunConfig
from neptune_core.errors import UserError
from runners.outcomes import outcome_of
from runners.results import read_results
from runners.rundir import run_dir_for
from runners.sharding import shard_files

VERDICTS = "judge_verdicts.jsonl"


def load_run_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Result lines of a run: results.jsonl plus any shards a stopped parallel run left (each id once)."""
    results = run_dir / "results.jsonl"
    shards = shard_files(run_dir)
    if not results.exists() and not shards:
        raise UserError(
            f"no results to evaluate: {results} does not exist (run the same config and overrides without --evaluate first)"
        )
    seen: dict[str, dict[str, Any]] = {}
    for path in [results, *shards]:
        for row in read_results(path)[0]:
            seen[row["id"]] = row  # a shard's line is newer (a redone sample)
    return list(seen.values())


def classify(row: dict[str, Any]) -> tuple[str, bool | None]:
    """(method, verdict) without the judge: "box", "no_gold", "no_prediction", "fallback", "exact",
    or ("judge", None) for a mismatch the judge may accept."""
    gold, pred = row.get("gold"), row.get("pred")
    if gold is None:
        return "no_gold", None
    if isinstance(gold, (list, tuple)):
        return "box", bool(row.get("correct"))
    if pred is None:
        return "no_prediction", False
    if outcome_of(row)[0] == "fallback":  # its answer is no program's: exact match only, never the judge
        return "fallback", answers_match(str(pred), str(gold))
    if answers_match(str(pred), str(gold)):
        return "exact", True
    return "judge", None


def _acc(correct: int, total: int) -> float | None:
    return round(100.0 * correct / total, 2) if total else None


def evaluate_rows(
    rows: list[dict[str, Any]], cache: VerdictCache, judge_factory: Any, model: str, workers: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per-row verdicts (``{"id", "family", "method", "exact", "correct"}``, plus ``"unjudged"``: the
    reason, for a mismatch the judge could not decide) and judge counters.

    ``judge_factory`` None: no judge; mismatches keep their exact-match verdict (wrong).
    Otherwise it is called once, only when some mismatch is not in ``cache``, and must
    return a checked :class:`LLMJudge`.
    """
    decided: list[dict[str, Any]] = []
    pending: dict[str, tuple[int, dict[str, Any]]] = {}
    counts = {"cached": 0, "new": 0, "requests": 0, "unjudged": 0}
    for row in rows:
        method, verdict = classify(row)
        entry = {
            "id": row["id"],
            "family": str(row.get("family", "all")),
            "method": method,
            "exact": verdict if method != "judge" else False,
            "correct": verdict,
        }
        if method == "judge":
            entry["correct"] = False  # exact match says wrong; a verdict of the judge may change that
            key = verdict_key(row["id"], row["pred"], row["gold"], model)
            cached = cache.get(key)
            if cached is not None:
                entry["correct"] = cached
                entry["judged"] = True
                counts["cached"] += 1
            elif judge_factory is not None:
                pending.setdefault(key, (len(decided), row))
        decided.append(entry)
    if not pending:
        return decided, counts

    judge: LLMJudge = judge_factory()
    down = threading.Event()  # set when the judge stops answering: rows not yet asked are not asked
    reasons: list[str] = []

    def ask(row: dict[str, Any]) -> bool | None:
        if down.is_set():
            return None
        try:
            return judge.verdict(str(row.get("question", "")), str(row["gold"]), str(row["pred"]))
        except JudgeUnavailableError as e:
            down.set()
            reasons.append(str(e))
            raise

    with ThreadPoolExecutor(max_workers=min(workers, len(pending))) as pool:
        futures = {pool.submit(ask, row): key for key, (_, row) in pending.items()}
        for fut in as_completed(futures):
            key = futures[fut]
            idx, row = pending[key]
            try:
                correct = fut.result()
            except (JudgeUnavailableError, NoVerdictError) as e:
                decided[idx]["unjudged"] = " ".join(str(e).split())[:300]
                continue
            if correct is None:  # not asked: the judge was already down
                decided[idx]["unjudged"] = "not asked: the judge had stopped answering" + (
                    f" ({' '.join(reasons[0].split())[:200]})" if reasons else ""
                )
                continue
            cache.put(key, {"id": row["id"], "pred": row["pred"], "gold": row["gold"], "model": model}, correct)
            decided[idx]["correct"] = correct
            decided[idx]["judged"] = True
            counts["new"] += 1
    counts["requests"] = judge.requests
    counts["unjudged"] = sum(1 for d in decided if "unjudged" in d)
    return decided, counts


def build_report(decided: list[dict[str, Any]], counts: dict[str, int], meta: dict[str, Any]) -> dict[str, Any]:
    """Accuracy overall and per family, exact match and exact match + judge."""
    fams: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in decided:
        if d["correct"] is not None:
            fams[d["family"]].append(d)

    def stats(ds: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(ds)
        exact = sum(1 for d in ds if d["exact"])
        correct = sum(1 for d in ds if d["correct"])
        judged = [d for d in ds if d.get("judged")]
        return {
            "total": n,
            "exact_match_correct": exact,
            "exact_match_accuracy": _acc(exact, n),
            "correct": correct,
            "accuracy": _acc(correct, n),
            "judged": len(judged),
            "judge_accepted": sum(1 for d in judged if d["correct"]),
            "unjudged": sum(1 for d in ds if "unjudged" in d),
        }

    scored = [d for ds in fams.values() for d in ds]
    unjudged = [{"id": d["id"], "reason": d["unjudged"]} for d in decided if "unjudged" in d]
    return {
        **meta,
        "num_results": len(decided),
        "overall": stats(scored),
        "per_family": {f: stats(ds) for f, ds in sorted(fams.items())},
        "methods": {m: sum(1 for d in decided if d["method"] == m) for m in sorted({d["method"] for d in decided})},
        "judge_verdicts": counts,
        "unjudged": unjudged,
    }


def format_markdown(report: dict[str, Any]) -> str:
    v = report["judge_verdicts"]
    if report.get("judge_model"):
        judge = (
            f"Judge: {report['judge_model']} ({report['judge_provider']}); verdicts: {v['new']} new, "
            f"{v['cached']} cached, {v['requests']} requests, {v['unjudged']} rows unjudged (scored by exact match)."
        )
    else:
        judge = f"No LLM judge: exact match only ({report.get('judge_note', '')})."
    lines = [
        f"# Evaluation of {report['run_dir']}",
        "",
        judge,
        "",
        "| family | n | exact match % | + LLM judge % | judged | judge accepted | unjudged |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in [("**overall**", report["overall"]), *report["per_family"].items()]:
        lines.append(
            f"| {name} | {s['total']} | {s['exact_match_accuracy']} | {s['accuracy']} | {s['judged']} | "
            f"{s['judge_accepted']} | {s['unjudged']} |"
        )
    return "\n".join(lines) + "\n"


def evaluate_run(
    config: RunConfig, judge_model: str | None = None, judge_provider: str | None = None, workers: int = 256
) -> dict[str, Any]:
    """Evaluate the run of ``config`` (its directory resolved as run.py does); write and return the report.

    ``judge_model`` / ``judge_provider`` None: the judge runs only if the default provider's
    key (or ``judge.base_url``) is set; see :func:`analysis.judge.judge_requested`.
    """
    if workers < 1:
        raise UserError(f"--workers must be at least 1 for --evaluate, got {workers}")
    from code_generator.providers import load_dotenv_file

    run_dir = run_dir_for(config)
    rows = load_run_rows(run_dir)
    load_dotenv_file()
    use_judge = judge_requested(judge_provider, judge_model, config.judge)
    endpoint = resolve_judge(judge_provider, judge_model, config.judge) if use_judge else None
    cache = VerdictCache(run_dir / VERDICTS)
    checked: list[LLMJudge] = []

    def make_judge() -> LLMJudge:
        if not checked:
            assert endpoint is not None
            judge = LLMJudge(endpoint, config.judge)
            judge.preflight()  # one line, exit 2, when the endpoint, key or model is wrong
            checked.append(judge)
        return checked[0]

    if endpoint is not None and not endpoint.model:  # a local server's own model: ask it now (verdicts keyed by it)
        endpoint = make_judge().endpoint
    model = endpoint.model if endpoint is not None else ""
    decided, counts = evaluate_rows(rows, cache, make_judge if use_judge else None, model, workers)
    meta: dict[str, Any] = {
        "run_dir": str(run_dir),
        "dataset": config.dataset,
        "judge_model": model or None,
        "judge_provider": endpoint.provider if endpoint is not None else None,
    }
    if endpoint is None:
        key_env = "DEEPSEEK_API_KEY" if DEFAULT_JUDGE_PROVIDER == "deepseek" else "the judge key"
        meta["judge_note"] = (
            f"no LLM judge configured: scored by exact match only (set {key_env}, or pass --judge_provider / "
            "--judge_model, to add a judge)"
        )
    report = build_report(decided, counts, meta)
    benchmark = benchmark_summary(rows)  # a benchmark's official numbers, beside the judged accuracy
    if benchmark is not None:
        report["benchmark"] = benchmark
    (run_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "evaluation.md").write_text(format_markdown(report))
    return report


def unjudged_reason(report: dict[str, Any], max_failure_rate: float) -> str | None:
    """One line when more than ``max_failure_rate`` of the scored rows could not be judged, else None."""
    n = report["overall"]["total"]
    left = report["overall"]["unjudged"]
    if not n or not left or left / n <= max_failure_rate:
        return None
    first = report["unjudged"][0]["reason"] if report.get("unjudged") else ""
    return (
        f"degraded evaluation: {left} of {n} rows ({100.0 * left / n:.1f}%) could not be judged and count by exact "
        f"match, above max_failure_rate {max_failure_rate:g} (first reason: {first[:200]}); rerun --evaluate to "
        "judge only those"
    )
