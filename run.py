"""NePTune's single entry point.

    python run.py --config configs/clevr.json [--gpus 0 1] [--workers K] [--any_config_key value ...]
    python run.py --config configs/clevr-humans.json --evaluate [--judge_model M --judge_provider P]

Reads the config, applies overrides, picks the runner registered for ``dataset``,
runs it into experiments/<config>-<hash>/ (rerunning the same command resumes), and
prints the summary. Bad input exits with code 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neptune_core.config import RunConfig, load_config, parse_overrides
from neptune_core.errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit code 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see python run.py --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="run.py",
        description="Run a NePTune experiment. Any --key value after the known flags overrides a config field.",
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
        "--evaluate", action="store_true", help="score an existing results file with exact match + LLM judge"
    )
    p.add_argument("--judge_model", default="deepseek-chat", help="LLM judge model id (with --evaluate)")
    p.add_argument("--judge_provider", default="deepseek", help="deepseek | openai | vllm (with --evaluate)")
    return p


def resolve_config(args: argparse.Namespace, extra: list[str]) -> RunConfig:
    overrides = parse_overrides(extra)
    if args.workers is not None and not args.evaluate:
        overrides["workers"] = args.workers
    config = load_config(args.config, overrides)
    if not config.run_name:
        config.run_name = f"{Path(args.config).stem}-{config.config_hash()}"
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
        if args.evaluate:
            from analysis.evaluate import evaluate_run

            report = evaluate_run(
                config, judge_model=args.judge_model, judge_provider=args.judge_provider, workers=args.workers or 256
            )
            print(json.dumps(report, indent=2))
            return 0
        from analysis.summary import format_summary
        from runners import RUNNERS
        from runners.rundir import prepare_run_dir

        runner_cls = RUNNERS.get(config.dataset)
        run_dir = prepare_run_dir(config)
        samples = None  # in memory after a single-process run, so the report need not reload them
        gpus = args.gpus
        if gpus is None and config.workers == 1 and config.device in ("auto", "cuda") and _cuda_devices() > 1:
            gpus = []  # the default: one worker on every visible GPU
        if config.workers > 1 or gpus is not None:
            from runners.run_vqa_parallel import run_parallel

            summary = run_parallel(config, run_dir, gpus=gpus)
        else:
            runner = runner_cls(config)
            summary = runner.run(run_dir)
            samples = runner.samples
        print(f"run directory: {run_dir}")
        print(format_summary(summary))
        if config.report:
            from analysis.report import write_report

            print(f"report: {write_report(run_dir, samples)}")
        return 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished samples are kept in results.jsonl; rerun the same command to resume", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
