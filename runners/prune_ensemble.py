"""Ensemble pruning as a command: run a pool of members, choose M by VLAgent's Algorithm 2.

    python -m runners.prune_ensemble --config configs/prune-pool.json --select 3 \\
        [--out chosen.json] [--output_dir /tmp/prune] [--any_config_key value ...]

The config is an ensemble config whose ``ensemble.vlm_members`` (and/or
``detector_members``) is the pool; ``num_samples`` is m. The pool runs as one ensemble
through the ordinary loop (its run directory keeps the rows, so a rerun resumes), then
:mod:`analysis.ensemble_pruning` scores each member by agreement with the fused
pseudo-label and clusters the scores. Printed: each member's score and number of calls,
and per round the silhouette value of each K, the K chosen and the cluster added.
Written to ``--out`` (default ``<run dir>/pruned_ensemble.json``): a config fragment
``{"ensemble": {...the chosen members...}}`` to merge into a config, with the scores and
rounds under ``"_pruning"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.ensemble_pruning import agreement_scores, prune  # noqa: E402
from neptune_core.config import RunConfig, load_config, parse_overrides  # noqa: E402
from neptune_core.errors import UserError  # noqa: E402

POOL_FIELDS = {"vlm": "vlm_members", "detector": "detector_members"}


def prune_rows(config: RunConfig, rows: list[dict[str, Any]], select: int) -> dict[str, Any]:
    """The config fragment (with the ``_pruning`` record) for ``rows`` of a pool run."""
    scores = agreement_scores(rows)
    if not scores:
        raise UserError("the pool run recorded no member outputs: use vlm_model_name or od_model 'ensemble'")
    fragment: dict[str, Any] = {}
    record: dict[str, Any] = {"select": select, "samples": len(rows)}
    for pool, member_scores in scores.items():
        chosen, rounds = prune({n: s["score"] for n, s in member_scores.items()}, select, seed=config.seed)
        specs = {m.name: m for m in getattr(config.ensemble, POOL_FIELDS[pool])}
        fragment[POOL_FIELDS[pool]] = [dataclasses.asdict(specs[n]) for n in chosen]
        record[pool] = {
            "scores": member_scores,
            "chosen": chosen,
            "rounds": [dataclasses.asdict(r) for r in rounds],
        }
    ens = config.ensemble
    fragment.update(score_fusion=ens.score_fusion, query_fusion=ens.query_fusion, box_fusion=ens.box_fusion)
    return {"ensemble": fragment, "_pruning": record}


def format_pruning(record: dict[str, Any]) -> str:
    lines = [f"ensemble pruning over {record['samples']} samples, select M = {record['select']}"]
    for pool in ("vlm", "detector"):
        if pool not in record:
            continue
        rec = record[pool]
        lines.append(f"{pool} members (agreement with the fused pseudo-label, calls):")
        for name, s in sorted(rec["scores"].items(), key=lambda kv: -kv[1]["score"]):
            lines.append(f"  {name:<20} {s['score']:.4f}  ({s['calls']} calls)")
        for i, r in enumerate(rec["rounds"], 1):
            sil = ", ".join(f"K={k}: {v:.4f}" for k, v in r["silhouettes"].items()) or "n/a (fewer than 3 left)"
            lines.append(f"  round {i}: silhouette {sil}; K* = {r['k']}; clusters {r['clusters']}; added {r['added']}")
        lines.append(f"  chosen: {', '.join(rec['chosen'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.prune_ensemble", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="an ensemble config whose members are the pool")
    parser.add_argument("--select", type=int, required=True, help="M: how many members to keep (at least)")
    parser.add_argument("--out", default="", help="where to write the chosen ensemble (a config fragment)")
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        from runners import RUNNERS
        from runners.results import read_results
        from runners.rundir import prepare_run_dir

        config = load_config(args.config, parse_overrides(extra))
        if not config.run_name:
            config.run_name = f"{Path(args.config).stem}-{config.config_hash()}"
        config.report = False
        run_dir = prepare_run_dir(config)
        runner = RUNNERS.get(config.dataset)(config)
        runner.run(run_dir)
        rows, _ = read_results(run_dir / "results.jsonl")
        wanted = {s.id for s in runner.samples or []}
        result = prune_rows(config, [r for r in rows if r["id"] in wanted], args.select)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else run_dir / "pruned_ensemble.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(format_pruning(result["_pruning"]))
    print(f"chosen ensemble written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
