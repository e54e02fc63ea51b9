"""Runs on a Ray cluster (``--cluster ray``): one actor per GPU (or per CPU worker), a shared queue.

    python run.py --config configs/clevr.json --cluster ray                      # a local Ray instance
    python run.py --config configs/clevr.json --cluster ray --ray_address auto   # join a running cluster

How a run goes (the driver is the process that runs run.py):

- The driver loads the samples and generates (or looks up) every program itself, with the
  program cache, ``code_gen_concurrency`` at a time and ahead of the actors: a question's
  program is generated once, not once per actor, and the actors need no LLM key.
- Each actor (:class:`runners.ray_actor.SampleWorker`) builds the task's runner once (its
  models load once), loads the samples itself (loaders are deterministic; no image crosses the
  network, only sample ids and programs) and checks its own models before its first sample. The
  driver compares the actor's sample list with its own, so a node with other data is turned away.
- Samples are handed out in small batches (``ray_batch_size``), at most two per actor at a
  time (:class:`runners.ray_dispatch.Dispatcher`): an actor that finishes sooner gets the next
  batch, so fast actors take more.
- Each actor runs every sample through ``Runner.process`` (the one run loop) and returns the
  rows; the driver alone appends them to ``results.jsonl`` as they arrive (one writer: each
  sample exactly once) with the resume semantics of a local run (rows that are not final are
  redone next time, ``--retry_failed`` redoes failed ones). At the end the file is put in
  dataset order and summary.json is written.
- An actor that dies (killed, out of memory, a lost node) has its unfinished samples handed to
  the others; a sample whose actor died twice is left undone and named (rerun to try it again),
  so one poisonous sample cannot take every actor down.
- Ctrl-C: the driver stops the actors; every row that arrived is in results.jsonl.

Every node needs the code (a shared filesystem, or ``ray job submit --working-dir .``), the
data at the same ``data_root`` and its models; each actor starts in the driver's working
directory when that exists on its node. Ray is optional: ``pip install -r requirements-ray.txt``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from neptune_core.config import RunConfig
from neptune_core.errors import UserError
from neptune_core.types import Sample
from runners.ordering import group_by_image
from runners.prefetch import ahead
from runners.ray_actor import SampleWorker, ids_digest, program_maker
from runners.ray_dispatch import IN_FLIGHT_PER_ACTOR, Dispatcher
from runners.results import ResultsWriter
from runners.sharding import RESULTS, merge_shards

LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2  # rows and programs are small; samples never travel
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
_INSTALL_HINT = "--cluster ray needs Ray: pip install -r requirements-ray.txt"


def require_ray() -> Any:
    """The ``ray`` module, or a one-line UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(_INSTALL_HINT) from None
    return ray


# ---- placement ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ActorSpec:
    """Actor ``index``: the Ray resources it asks for and the torch threads it may use."""

    index: int
    num_cpus: float
    num_gpus: float
    threads: int | None = None  # CPU actors: torch threads (the cluster's CPUs shared out)

    @property
    def device(self) -> str:
        return "gpu" if self.num_gpus else "cpu"


def plan_actors(config: RunConfig, resources: Mapping[str, float]) -> list[ActorSpec]:
    """One actor per GPU of the cluster (``--workers K``: K of them), else ``config.workers`` CPU actors.

    GPUs are used when ``device`` is "cuda" or "auto" and the cluster has any. ``resources``
    is ``ray.cluster_resources()``. Asking for more actors than the cluster can place is a
    one-line UserError (Ray would wait for them forever).
    """
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    if config.device.startswith("cuda") or (config.device == "auto" and gpus > 0):
        if gpus == 0:
            raise UserError(f"device '{config.device}' but the Ray cluster has no GPU; use --device cpu")
        k = gpus if config.workers <= 1 else config.workers
        if k > gpus:
            raise UserError(
                f"--workers {k} asks for {k} GPU actors but the Ray cluster has {gpus} GPUs (--device cpu: CPU actors)"
            )
        return [ActorSpec(i, 1, 1) for i in range(k)]
    k = max(1, config.workers)
    if k > cpus:
        raise UserError(f"--workers {k} asks for {k} CPU actors but the Ray cluster has {cpus} CPUs")
    return [ActorSpec(i, 1, 0, threads=max(1, cpus // k)) for i in range(k)]


@contextlib.contextmanager
def ray_session(config: RunConfig) -> Iterator[Any]:
    """Ray, connected: to ``config.ray_address``, else to a local instance started here (and
    stopped at the end). A process that already called ``ray.init`` keeps its connection."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if config.ray_address:
            _reachable(config.ray_address)
            ray.init(address=config.ray_address, **quiet)
        else:
            start_local(ray, num_cpus=max(os.cpu_count() or 1, config.workers))
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at '{config.ray_address}'" if config.ray_address else "a local Ray instance"
        raise UserError(
            f"cannot start or reach {where}: {' '.join(str(e).split())[:300]}; start one with `ray start --head` "
            "and pass --ray_address auto (or leave ray_address empty for a local instance)"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address answers on its port; Ray itself would retry
    an unreachable one for minutes. Other forms ("auto") are Ray's to resolve."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConnectionError(f"nothing answers at {host}:{port} ({e.strerror or e})") from None


def start_local(ray: Any, num_cpus: int) -> None:
    """A local Ray instance on this machine: ``num_cpus`` logical CPUs, a small object store, no dashboard."""
    ray.init(
        address="local",  # a new instance, even where `ray start` runs one (join that with ray_address auto)
        num_cpus=num_cpus,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
    )


def run_on_ray(
    config: RunConfig,
    run_dir: Path,
    *,
    runner: Any = None,
    runner_cls: type | None = None,
    gpus: list[int] | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    static_shares: bool = False,
) -> dict[str, Any]:
    """Run ``config`` on Ray actors into ``run_dir``; return the summary (as ``Runner.run``).

    ``runner``: the driver's runner, prepared or not (run.py passes the one it checked); it
    generates the programs. ``runner_cls`` (default: the runner's class, else the one registered
    for ``config.dataset``) must be importable by name on every node. ``static_shares``: each
    actor gets every K-th sample up front instead of taking batches from the queue (what local
    ``--workers`` runs do; bench/bench_parallel.py compares the two).
    """
    from runners import RUNNERS
    from runners.base import finish_run

    if gpus is not None:
        raise UserError(
            "--gpus picks GPUs of this machine; with --cluster ray every GPU of the cluster gets an actor "
            "(--workers K uses K of them)"
        )
    if config.ray_batch_size < 1:
        raise UserError(f"ray_batch_size must be at least 1, got {config.ray_batch_size}")
    require_ray()
    run_dir = Path(run_dir)
    cls = runner_cls or (type(runner) if runner is not None else RUNNERS.get(config.dataset))
    runner = runner if runner is not None else cls(config)
    # the driver checks the program generator only; each actor loads and checks its own models
    samples = runner.prepare(existing=run_dir, retry_failed=retry_failed, check_models=False)
    order = [s.id for s in samples]
    if len(set(order)) != len(order):
        raise UserError(f"dataset '{config.dataset}' yields duplicate sample ids; ids must be unique")
    merge_shards(run_dir)  # rows left in shard files by an interrupted --workers run count as done
    target = f"{cls.__module__}:{cls.__qualname__}"
    queue: Dispatcher | None = None
    with ResultsWriter(run_dir / RESULTS, retry_failed=retry_failed) as writer:
        todo = [s for s in samples if s.id not in writer.done_ids]
        if config.calls.group_by_image:  # an image's questions go out together and share one actor's memo
            todo = group_by_image(todo)
        if todo:
            with ray_session(config) as ray:
                queue = _start(ray, config, target, runner, todo, order, writer, progress, static_shares)
                try:
                    queue.run()
                finally:
                    queue.close()
    merge_shards(run_dir, order)  # the rows in dataset order (they were appended as they arrived)
    invocation = runner.invocation_stats(len(queue.written) if queue else 0)
    invocation.update(cluster="ray", workers=len(queue.actors) if queue else 0)
    if queue is not None:
        error = queue.failure(run_dir, len(todo))
        if error is not None:
            raise error
        note = queue.lost_note()
        if note:
            print(note, file=sys.stderr)
        invocation.update(actors_failed=len(queue.problems), handed_over=queue.handed_over)
    return finish_run(run_dir, order, invocation=invocation)


def actor_env(index: int) -> dict[str, Any]:
    """Actor ``index``'s Ray runtime environment: the driver's code on its Python path (a node that
    lacks that folder keeps its own, e.g. a job's working_dir), the driver's ``NEPTUNE_*`` variables
    (``NEPTUNE_DATA_ROOT``: data paths resolve as they did for the run's identity) and its index."""
    env = {k: v for k, v in os.environ.items() if k.startswith("NEPTUNE_")}
    env["PYTHONPATH"] = os.pathsep.join([_REPO_ROOT, "${PYTHONPATH}"])
    env["NEPTUNE_WORKER_INDEX"] = str(index)
    return {"env_vars": env}


def _start(
    ray: Any,
    config: RunConfig,
    target: str,
    runner: Any,
    todo: list[Sample],
    order: list[str],
    writer: ResultsWriter,
    progress: bool,
    static: bool = False,
) -> Dispatcher:
    """Create the actors (their setup starts at once) and the program pipeline; return the dispatcher."""
    specs = {s.index: s for s in plan_actors(config, ray.cluster_resources())}
    remote = ray.remote(SampleWorker)
    actors = {
        k: remote.options(
            num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, max_restarts=0, runtime_env=actor_env(k)
        ).remote(target, config, k, os.getcwd(), spec.threads)
        for k, spec in specs.items()
    }
    generator = runner.generator
    threads = max(1, int(getattr(generator, "concurrency", 1) or 1))
    window = max(4 * threads, 2 * IN_FLIGHT_PER_ACTOR * len(specs) * max(1, config.ray_batch_size))
    programs = ahead(program_maker(generator), todo, workers=threads, window=window)
    bar = tqdm(
        desc=f"{config.dataset} x{len(specs)} ray actors",
        unit="q",
        dynamic_ncols=True,
        disable=not progress,
        initial=len(order) - len(todo),
        total=len(order),
    )
    devices = {k: spec.device for k, spec in specs.items()}
    return Dispatcher(
        ray,
        actors,
        devices,
        programs,
        writer,
        ids_digest(order),
        config.ray_batch_size,
        bar,
        static,
        same_image=config.calls.group_by_image,
    )
