"""``--evaluate``: score a finished run's results.jsonl, exact match first, an LLM judge second.

For each result line: a box answer (referring expressions) keeps its IoU verdict; a
line with no prediction (an error) is wrong; otherwise the prediction is compared
with the gold answer after normalisation (:mod:`analysis.normalize`), and only the
mismatches are sent to the LLM judge (:mod:`analysis.judge`), in ``workers`` threads.
Verdicts are cached in ``<run_dir>/judge_verdicts.jsonl`` as they arrive. Writes
``evaluation.json`` and ``evaluation.md`` (overall and per question family) and
returns the report.

    python run.py --config configs/clevr-humans.json --evaluate [--judge_model M --judge_provider P --workers 64]
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from analysis.judge import LLMJudge, VerdictCache, resolve_judge, verdict_key
from analysis.normalize import answers_match
from neptune_core.config import RunConfig
from neptune_core.errors import UserError
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
            seen.setdefault(row["id"], row)
    return list(seen.values())


def classify(row: dict[str, Any]) -> tuple[str, bool | None]:
    """(method, verdict) without the judge: "box", "no_gold", "no_prediction", "exact", or ("judge", None)."""
    gold, pred = row.get("gold"), row.get("pred")
    if gold is None:
        return "no_gold", None
    if isinstance(gold, (list, tuple)):
        return "box", bool(row.get("correct"))
    if pred is None:
        return "no_prediction", False
    if answers_match(str(pred), str(gold)):
        return "exact", True
    return "judge", None


def _acc(correct: int, total: int) -> float | None:
    return round(100.0 * correct / total, 2) if total else None


def evaluate_rows(
    rows: list[dict[str, Any]], cache: VerdictCache, judge_factory: Any, model: str, workers: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per-row verdicts (``{"id", "family", "method", "exact", "correct"}``) and judge counters."""
    decided: list[dict[str, Any]] = []
    pending: dict[str, tuple[int, dict[str, Any]]] = {}
    counts = {"cached": 0, "new": 0, "requests": 0}
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
            key = verdict_key(row["id"], row["pred"], row["gold"], model)
            cached = cache.get(key)
            if cached is not None:
                entry["correct"] = cached
                counts["cached"] += 1
            else:
                pending.setdefault(key, (len(decided), row))
        decided.append(entry)
    if not pending:
        return decided, counts

    judge: LLMJudge = judge_factory()
    down = threading.Event()  # set at the first failure: verdicts not yet started are not asked

    def ask(row: dict[str, Any]) -> bool | None:
        if down.is_set():
            return None
        try:
            return judge.verdict(str(row.get("question", "")), str(row["gold"]), str(row["pred"]))
        except UserError:
            down.set()
            raise

    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=min(workers, len(pending))) as pool:
        futures = {pool.submit(ask, row): key for key, (_, row) in pending.items()}
        for fut in as_completed(futures):
            key = futures[fut]
            idx, row = pending[key]
            try:
                correct = fut.result()
            except UserError as e:
                failures.append(str(e))
                continue
            if correct is None:  # skipped: the judge was already down
                continue
            cache.put(key, {"id": row["id"], "pred": row["pred"], "gold": row["gold"], "model": model}, correct)
            decided[idx]["correct"] = correct
            counts["new"] += 1
    counts["requests"] = judge.requests
    if failures:
        left = sum(1 for d in decided if d["method"] == "judge" and d["correct"] is None)
        raise UserError(
            f"{failures[0]}; {counts['new']} new verdicts were saved in {cache.path} and {left} are still "
            "missing: rerun --evaluate to judge only those"
        )
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
        judged = [d for d in ds if d["method"] == "judge"]
        return {
            "total": n,
            "exact_match_correct": exact,
            "exact_match_accuracy": _acc(exact, n),
            "correct": correct,
            "accuracy": _acc(correct, n),
            "judged": len(judged),
            "judge_accepted": sum(1 for d in judged if d["correct"]),
        }

    scored = [d for ds in fams.values() for d in ds]
    return {
        **meta,
        "num_results": len(decided),
        "overall": stats(scored),
        "per_family": {f: stats(ds) for f, ds in sorted(fams.items())},
        "methods": {m: sum(1 for d in decided if d["method"] == m) for m in sorted({d["method"] for d in decided})},
        "judge_verdicts": counts,
    }


def format_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation of {report['run_dir']}",
        "",
        f"Judge: {report['judge_model']} ({report['judge_provider']}); verdicts: {report['judge_verdicts']['new']} new, "
        f"{report['judge_verdicts']['cached']} cached, {report['judge_verdicts']['requests']} requests.",
        "",
        "| family | n | exact match % | + LLM judge % | judged | judge accepted |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in [("**overall**", report["overall"]), *report["per_family"].items()]:
        lines.append(
            f"| {name} | {s['total']} | {s['exact_match_accuracy']} | {s['accuracy']} | {s['judged']} | "
            f"{s['judge_accepted']} |"
        )
    return "\n".join(lines) + "\n"


def evaluate_run(
    config: RunConfig, judge_model: str = "deepseek-chat", judge_provider: str = "deepseek", workers: int = 256
) -> dict[str, Any]:
    """Evaluate the run of ``config`` (its directory resolved as run.py does); write and return the report."""
    if workers < 1:
        raise UserError(f"--workers must be at least 1 for --evaluate, got {workers}")
    run_dir = run_dir_for(config)
    rows = load_run_rows(run_dir)
    cache = VerdictCache(run_dir / VERDICTS)

    def make_judge() -> LLMJudge:
        from code_generator.providers import load_dotenv_file

        load_dotenv_file()
        return LLMJudge(resolve_judge(judge_provider, judge_model, config.judge), config.judge)

    decided, counts = evaluate_rows(rows, cache, make_judge, judge_model, workers)
    meta = {
        "run_dir": str(run_dir),
        "dataset": config.dataset,
        "judge_model": judge_model,
        "judge_provider": judge_provider,
    }
    report = build_report(decided, counts, meta)
    (run_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "evaluation.md").write_text(format_markdown(report))
    return report
