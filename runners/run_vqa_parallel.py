"""Data-parallel runs: one spawned worker process per GPU (``--gpus 0 1``) or ``--workers K`` CPU workers.

Used by run.py for every task. Each worker builds its own runner
(``RUNNERS.get(config.dataset)(config)``, so models load once per worker), loads the
samples itself (loaders are deterministic; no images cross processes), takes every
K-th sample not yet in ``results.jsonl`` and appends its lines to its own shard
(:mod:`runners.sharding`). The parent shows one tqdm bar fed by the workers through a
pipe each (a shared ``multiprocessing.Queue`` can stay locked by a SIGKILLed worker),
merges the shards into ``results.jsonl`` in dataset order and writes summary.json.

A worker that dies loses nothing the others finished: the parent still merges what
exists, then raises :class:`WorkerFailedError` naming the worker and its exit code.
Rerunning the same command skips every finished sample (and redoes rows that are not final).

Each worker runs the preflight of its models (:mod:`runners.preflight`) before its first
sample; a failure there is reported as one line (the same error from every worker: once).
Ctrl-C reaches only the parent (workers start with SIGINT ignored): it stops the workers,
merges what they finished and run.py prints one line.

Usage: python run.py --config configs/clevr.json --gpus 0 1 2 3   (or --workers 2 on CPU)
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from tqdm import tqdm

from neptune_core.config import RunConfig
from neptune_core.errors import UserError
from neptune_core.registry import import_target
from runners.ordering import partition_by_image
from runners.results import ResultsWriter
from runners.sharding import merge_shards, merged_ids, partition, shard_path

_EXIT_GRACE_S = 60.0  # how long a worker that closed its pipe may take to exit
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class WorkerFailedError(UserError):
    """One or more workers died; finished samples were merged and a rerun resumes."""


@dataclass
class WorkerSpec:
    """Worker ``index`` and the environment it starts with (CUDA_VISIBLE_DEVICES, thread counts)."""

    index: int
    device: str  # "cpu" or "cuda (CUDA_VISIBLE_DEVICES=<id>)"
    env: dict[str, str] = field(default_factory=dict)


def _visible_gpus() -> list[str]:
    """Device ids as CUDA_VISIBLE_DEVICES should name them, in torch's index order."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()][:count]
    return [str(i) for i in range(count)]


def plan_workers(config: RunConfig, gpus: list[int] | None) -> list[WorkerSpec]:
    """One worker per requested GPU (all visible ones for an empty list), else ``config.workers`` CPU workers."""
    if gpus is None:
        k = max(1, config.workers)
        threads = str(max(1, (os.cpu_count() or 1) // k))
        env = {v: os.environ.get(v, threads) for v in _THREAD_VARS}
        return [WorkerSpec(i, "cpu", dict(env)) for i in range(k)]
    visible = _visible_gpus()
    if not visible:
        raise UserError(
            "--gpus was given but no CUDA device is visible; drop --gpus and use --workers K for CPU workers"
        )
    if not gpus:
        gpus = list(range(len(visible)))
    bad = [g for g in gpus if not 0 <= g < len(visible)]
    if bad:
        raise UserError(f"--gpus {' '.join(map(str, bad))}: only GPUs 0..{len(visible) - 1} are visible")
    if len(set(gpus)) != len(gpus):
        raise UserError(f"--gpus lists a GPU twice: {' '.join(map(str, gpus))}")
    return [
        WorkerSpec(i, f"cuda (CUDA_VISIBLE_DEVICES={visible[g]})", {"CUDA_VISIBLE_DEVICES": visible[g]})
        for i, g in enumerate(gpus)
    ]


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` while a worker is spawned (a spawned child copies the parent's environment at start)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while workers are spawned: they inherit it, so Ctrl-C reaches only the parent."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _worker_main(
    k: int,
    num_workers: int,
    env: dict[str, str],
    runner_target: str,
    config: RunConfig,
    run_dir: str,
    conn: Connection,
    retry_failed: bool = False,
) -> None:
    """Body of worker ``k``: load samples, preflight its models, process its share into its shard, report."""
    os.environ.update(env)  # already inherited at spawn; repeated in case the start method changes
    os.environ["NEPTUNE_WORKER_INDEX"] = str(k)  # as on a Ray actor (runners/ray_cluster.py)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    try:
        runner = import_target(runner_target)(config)
        samples = runner.load_samples()
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            raise UserError(f"dataset '{config.dataset}' yields duplicate sample ids; ids must be unique")
        conn.send(("ids", k, ids))
        kept = merged_ids(Path(run_dir), retry_failed)  # nobody writes results.jsonl while workers run
        todo = [s for s in samples if s.id not in kept]
        # one image's questions stay on one worker, so they share its memo and detections
        mine = (
            partition_by_image(todo, k, num_workers) if config.calls.group_by_image else partition(todo, k, num_workers)
        )
        # the parent checked the program generator; this worker loads and checks its own models
        runner.prepare(samples, existing=Path(run_dir), retry_failed=retry_failed, check_generator=False)
        with ResultsWriter(shard_path(Path(run_dir), k), retry_failed=retry_failed) as writer:
            mine = [s for s in mine if s.id not in writer.done_ids]
            conn.send(("start", k, len(mine)))
            for row in runner.process_all(mine):
                writer.write(row)
                conn.send(("done", k, 1))
        conn.send(("finished", k, runner.invocation_stats(len(mine))))
    except UserError as e:
        conn.send(("error", k, f"{type(e).__name__}: {_one_line(e)}", True))
        sys.exit(3)
    except BaseException as e:
        traceback.print_exc()
        conn.send(("error", k, f"{type(e).__name__}: {_one_line(e)}", False))
        sys.exit(1)
    finally:
        conn.close()


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:500]


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name} (exit code {code})"
        except ValueError:
            return f"was killed by signal {-code} (exit code {code})"
    return f"exited with code {code}"


def run_parallel(
    config: RunConfig,
    run_dir: Path,
    gpus: list[int] | None = None,
    *,
    runner_cls: type | None = None,
    progress: bool = True,
    retry_failed: bool = False,
) -> dict[str, Any]:
    """Run ``config`` with data-parallel workers into ``run_dir``; return the summary (as ``Runner.run``).

    ``runner_cls`` defaults to ``RUNNERS.get(config.dataset)``; it must be importable by
    name in the workers. ``progress=False`` hides the bar. ``retry_failed``: as for ``Runner.run``.
    """
    from runners import RUNNERS
    from runners.base import finish_run

    run_dir = Path(run_dir)
    cls = runner_cls or RUNNERS.get(config.dataset)
    target = f"{cls.__module__}:{cls.__qualname__}"
    specs = plan_workers(config, gpus)
    merge_shards(run_dir)  # fold leftovers of an interrupted run, so every worker sees one finished set
    already = merged_ids(run_dir, retry_failed)

    if config.executor.isolation == "process":  # one sandbox fork server, shared by every worker
        from neptune_core.executor.process import start_fork_server

        start_fork_server()
    ctx = mp.get_context("spawn")
    procs: dict[int, Any] = {}
    conns: dict[int, Connection] = {}
    for spec in specs:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker_main,
            args=(spec.index, len(specs), spec.env, target, config, str(run_dir), send, retry_failed),
            name=f"neptune-worker-{spec.index}",
        )
        with _environment(spec.env), _sigint_ignored():
            proc.start()
        send.close()
        procs[spec.index], conns[spec.index] = proc, recv

    order: list[str] | None = None
    problems: dict[int, str] = {}
    user_errors: dict[int, str] = {}
    finished: set[int] = set()
    stats: list[dict[str, Any]] = []
    bar = tqdm(desc=f"{config.dataset} x{len(specs)} workers", unit="q", dynamic_ncols=True, disable=not progress)
    clean = False
    try:
        while conns:
            ready = wait([*conns.values(), *(procs[k].sentinel for k in conns)], timeout=1.0)
            for k in list(conns):
                conn = conns[k]
                try:
                    while conn.poll():
                        kind, _, payload, *rest = conn.recv()
                        if kind == "ids":
                            if order is None:
                                order = payload
                                bar.total = len(order)
                                bar.n = len(already.intersection(order))
                                bar.refresh()
                            elif payload != order:
                                problems[k] = "loaded a different sample list than worker 0 (loader not deterministic)"
                        elif kind == "done":
                            bar.update(payload)
                        elif kind == "finished":
                            finished.add(k)
                            if payload:
                                stats.append(payload)
                        elif kind == "error":
                            problems[k] = payload
                            if rest and rest[0]:
                                user_errors[k] = payload.split(": ", 1)[-1]
                except (EOFError, OSError):
                    del conns[k]
                    continue
                if procs[k].sentinel in ready and not procs[k].is_alive() and not conn.poll():
                    del conns[k]
        clean = True
    finally:
        bar.close()
        for proc in procs.values():
            proc.join(timeout=_EXIT_GRACE_S if clean else 0.0)
            if proc.is_alive():  # interrupted, or hanging after its work was done
                proc.terminate()
                proc.join()
        merge_shards(run_dir, order)

    for k, proc in procs.items():
        if proc.exitcode != 0 and k not in problems:
            problems[k] = "no error report from the worker (killed from outside, or out of memory?)"
        elif k not in finished and k not in problems:
            problems[k] = "stopped before finishing its share"
    if problems:
        if len(user_errors) == len(specs) and len(set(user_errors.values())) == 1:
            raise UserError(next(iter(user_errors.values())))
        done = len(merged_ids(run_dir).intersection(order)) if order is not None else len(merged_ids(run_dir))
        total = f" of {len(order)}" if order is not None else ""
        details = "; ".join(
            f"worker {k} ({specs[k].device}) {_describe_exit(procs[k].exitcode)}: {problems[k]}"
            for k in sorted(problems)
        )
        raise WorkerFailedError(
            f"{len(problems)} of {len(specs)} workers failed: {details}; {done}{total} samples are in "
            f"{run_dir / 'results.jsonl'}; rerun the same command to resume"
        )
    return finish_run(run_dir, order, invocation=_sum_stats(stats))


def _sum_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' invocation stats added up (numbers summed, nested counts merged)."""
    total: dict[str, Any] = {}
    for one in stats:
        for key, value in one.items():
            if isinstance(value, dict):
                merged = total.setdefault(key, {})
                for k, v in value.items():
                    merged[k] = merged.get(k, 0) + v
            else:
                total[key] = total.get(key, 0) + value
    total["workers"] = len(stats)
    return total
