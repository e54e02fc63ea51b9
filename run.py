"""NePTune's single entry point.

    python run.py --config configs/clevr.json [--gpus 0 1] [--workers K] [--any_config_key value ...]
    python run.py --config configs/clevr-humans.json --evaluate [--judge_model M --judge_provider P]
    python run.py --config configs/demo-tune.json      # fine-tune through programs (or any config + --train)

Reads the config, applies overrides, picks the runner registered for ``dataset``, checks
the setup (preflight: models, servers, keys, data), runs it into
experiments/<config>-<hash>/ (rerunning the same command resumes, and redoes what is not
final), and prints the summary. Exit codes: see :data:`EXIT_CODES` (and ``--help``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neptune_core.config import RunConfig, load_config, parse_overrides
from neptune_core.errors import UserError
from runners.outcomes import DEGRADED_EXIT_CODE, check_failure_rate, degraded_reason

EXIT_CODES = f"""exit codes:
  0    done: every sample has a row, and at most max_failure_rate of them errored or fell back
  2    bad input or a broken setup (config, data, model, server, API key), found before the first
       sample: one line on stderr says what is wrong and how to fix it; no run directory is left.
       Also: workers that died (what they finished is merged; rerun to resume); with --cluster ray,
       samples left undone (no actor left, or a sample whose actor died twice)
  {DEGRADED_EXIT_CODE}    degraded run (or evaluation): more than max_failure_rate (config, default 0.05) of
       the samples errored or fell back (or could not be judged), or a training run in which more than
       10 % of the training sample passes failed; results are written, one line says why
  130  interrupted (Ctrl-C): finished samples are kept; rerun the same command to resume"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit code 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see python run.py --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="run.py",
        description="Run a NePTune experiment. Any --key value after the known flags overrides a config field.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--config", required=True, help="path to a JSON config (see configs/)")
    p.add_argument(
        "--gpus",
        type=int,
        nargs="*",
        default=None,
        help="GPU indices, one worker each (default: every visible GPU when there are several)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="CPU workers when no GPU is used (or judge threads with --evaluate)"
    )
    p.add_argument(
        "--cluster",
        choices=("local", "ray"),
        default=None,
        help="where workers run: local (spawned processes, static shards; the default) or ray (one actor per GPU "
        "or CPU worker of a Ray cluster, samples from a shared queue; --ray_address, default: a local instance)",
    )
    p.add_argument(
        "--retry_failed",
        action="store_true",
        help="also redo rows that errored or fell back for good (rows whose failure was transient are "
        "always redone by rerunning the same command; finished good rows never are)",
    )
    p.add_argument("--restart", action="store_true", help="move the existing run directory aside and start a fresh one")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="score an existing results file by exact match, plus an LLM judge when one is configured",
    )
    p.add_argument(
        "--judge_model",
        default=None,
        help="LLM judge model id (with --evaluate; default: the provider's, deepseek-chat for deepseek)",
    )
    p.add_argument(
        "--judge_provider",
        default=None,
        help="deepseek | openai | vllm (with --evaluate). Without this flag, --judge_model or judge.base_url, "
        "the judge runs only when DEEPSEEK_API_KEY is set; otherwise exact match only",
    )
    p.add_argument("--train", action="store_true", help="fine-tune through programs first (the config's train section)")
    return p


def resolve_config(args: argparse.Namespace, extra: list[str]) -> RunConfig:
    overrides = parse_overrides(extra)
    if args.workers is not None and not args.evaluate:
        overrides["workers"] = args.workers
    if args.cluster is not None:
        overrides["cluster"] = args.cluster
    if args.train:
        overrides["train.enabled"] = "true"
    config = load_config(args.config, overrides)
    if not config.run_name:
        from runners.identity import run_hash

        config.run_name = f"{Path(args.config).stem}-{run_hash(config)}"
    return config


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        config = resolve_config(args, extra)
        check_failure_rate(config.max_failure_rate)
        if args.evaluate:
            return _evaluate(config, args)
        return _run(config, args)
    except UserError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished samples are kept in results.jsonl; rerun the same command to resume", file=sys.stderr
        )
        return 130


def _run(config: RunConfig, args: argparse.Namespace) -> int:
    from analysis.summary import format_summary
    from local_datasets.sampling import save_selection
    from runners import RUNNERS
    from runners.rundir import discard_if_unused, prepare_run_dir, run_dir_for

    runner_cls = RUNNERS.get(config.dataset)
    gpus = args.gpus
    one_process = config.workers == 1 and config.device in ("auto", "cuda") and not config.train.enabled
    if gpus is None and one_process and _cuda_devices() > 1:
        gpus = []  # the default: one worker on every visible GPU (training runs in one process)
    on_ray = _cluster(config)
    parallel = config.workers > 1 or gpus is not None or on_ray
    if config.train.enabled and parallel:
        raise UserError(
            "training runs in one process: drop --workers / --gpus / --cluster ray (pick the device with --device)"
        )
    # preflight before the run directory exists: a broken setup leaves nothing behind. In a
    # parallel run this process checks the program generator; each worker loads its own models.
    run_dir = run_dir_for(config)
    runner = runner_cls(config)
    runner.prepare(
        existing=None if args.restart else run_dir, retry_failed=args.retry_failed, check_models=not parallel
    )
    existed = run_dir.exists() and not args.restart
    made_output_dir = not run_dir.parent.exists()
    run_dir = prepare_run_dir(config, restart=args.restart)
    save_selection(run_dir, runner.samples)  # a sampler's choice, saved so the run can be repeated exactly
    try:
        if config.train.enabled:
            from runners.train import format_training, train_and_evaluate

            summary = train_and_evaluate(runner, run_dir)
            samples = runner.samples
            print(format_training(summary))
        elif on_ray:
            from runners.ray_cluster import run_on_ray

            summary = run_on_ray(config, run_dir, runner=runner, gpus=args.gpus, retry_failed=args.retry_failed)
            samples = None
        elif parallel:
            from runners.run_vqa_parallel import run_parallel

            summary = run_parallel(config, run_dir, gpus=gpus, retry_failed=args.retry_failed)
            samples = None
        else:
            summary = runner.run(run_dir, retry_failed=args.retry_failed)
            samples = runner.samples  # in memory, so the report need not reload them
    except BaseException:
        # a start that failed before its first result leaves no stub folder (nor the output folder it made)
        if not existed and discard_if_unused(run_dir) and made_output_dir and not any(run_dir.parent.iterdir()):
            run_dir.parent.rmdir()
        raise
    print(f"run directory: {run_dir}")
    print(format_summary(summary))
    if config.report:
        from analysis.report import write_report

        print(f"report: {write_report(run_dir, samples)}")
    reason = degraded_reason(summary, config.max_failure_rate)
    if reason is None and (summary.get("training") or {}).get("degraded"):
        reason = f"degraded training: many training samples failed: {summary['training']['skipped']}"
    if reason is not None:
        print(reason, file=sys.stderr)
        return DEGRADED_EXIT_CODE
    return 0


def _cluster(config: RunConfig) -> bool:
    """Whether the run goes to Ray (``cluster: ray``); checks that Ray is installed before any work."""
    if config.cluster not in ("local", "ray"):
        raise UserError(f"cluster '{config.cluster}' is not known; known: local, ray")
    if config.cluster == "ray":
        from runners.ray_cluster import require_ray

        require_ray()
    return config.cluster == "ray"


def _evaluate(config: RunConfig, args: argparse.Namespace) -> int:
    from analysis.evaluate import evaluate_run, unjudged_reason

    report = evaluate_run(
        config, judge_model=args.judge_model, judge_provider=args.judge_provider, workers=args.workers or 256
    )
    print(json.dumps(report, indent=2))
    if report.get("judge_note"):
        print(f"note: {report['judge_note']}", file=sys.stderr)
    reason = unjudged_reason(report, config.max_failure_rate)
    if reason is not None:
        print(reason, file=sys.stderr)
        return DEGRADED_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
