"""Runs on a Ray cluster (``--cluster ray``): one actor per GPU (or per CPU worker), a shared queue.

    python run.py --config configs/clevr.json --cluster ray                      # a local Ray instance
    python run.py --config configs/clevr.json --cluster ray --ray_address auto   # join a running cluster

How a run goes (the driver is the process that runs run.py):

- The driver loads the samples and generates (or looks up) every program itself, with the
  program cache, ``code_gen_concurrency`` at a time and ahead of the actors: a question's
  program is generated once, not once per actor, and the actors need no LLM key.
- Each actor (:class:`SampleWorker`) builds the task's runner once (its models load once),
  loads the samples itself (loaders are deterministic; no image crosses the network, only
  sample ids and programs) and checks its own models before its first sample. The driver
  compares the actor's sample list with its own, so a node with other data is turned away.
- Samples are handed out in small batches (``ray_batch_size``), at most two per actor at a
  time: an actor that finishes sooner gets the next batch, so fast actors take more.
- Each actor runs every sample through ``Runner.process`` (the one run loop) and returns the
  rows; the driver alone appends them to ``results.jsonl`` as they arrive (one writer: each
  sample exactly once) with the resume semantics of a local run (rows that are not final are
  redone next time, ``--retry_failed`` redoes failed ones). At the end the file is put in
  dataset order and summary.json is written.
- An actor that dies (killed, out of memory, a lost node) has its unfinished samples handed to
  the others; a sample whose actor died :data:`MAX_ATTEMPTS` times is left undone and named
  (rerun to try it again), so one poisonous sample cannot take every actor down.
- Ctrl-C: the driver stops the actors; every row that arrived is in results.jsonl.

Every node needs the code (a shared filesystem, or ``ray job submit --working-dir .``), the
data at the same ``data_root`` and its models; each actor starts in the driver's working
directory when that exists on its node. Ray is optional: ``pip install -r requirements-ray.txt``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from neptune_core.config import RunConfig
from neptune_core.errors import UserError
from neptune_core.types import Program, Sample
from runners.prefetch import ahead
from runners.results import ResultsWriter
from runners.run_vqa_parallel import WorkerFailedError
from runners.sharding import RESULTS, merge_shards

MAX_ATTEMPTS = 2  # actors a sample may see die while it runs before it is left undone
IN_FLIGHT_PER_ACTOR = 2  # batches handed to one actor at a time: one running, one waiting
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
            raise UserError(f"--workers {k} asks for {k} GPU actors but the Ray cluster has {gpus} GPUs")
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


# ---- the actor ---------------------------------------------------------------------------------
@dataclasses.dataclass
class ProgramFailure:
    """A program the driver could not make: its exception, by type name (rows record names only)."""

    type: str
    message: str

    def raise_(self) -> None:
        raise type(self.type, (Exception,), {"__module__": __name__})(self.message)


Item = tuple[str, Program | ProgramFailure, float]  # (sample id, its program, milliseconds it took)


class ShippedPrograms:
    """An actor's program generator: the programs the driver shipped with the batch."""

    concurrency = 1

    def __init__(self) -> None:
        self._programs: dict[str, Program | ProgramFailure] = {}
        self.ms: dict[str, float] = {}

    def put(self, sample_id: str, program: Program | ProgramFailure, ms: float) -> None:
        self._programs[sample_id] = program
        self.ms[sample_id] = ms

    def program_for(self, sample: Sample) -> Program:
        program = self._programs.pop(sample.id, None)
        if program is None:
            raise RuntimeError(f"the driver shipped no program for sample {sample.id}")
        if isinstance(program, ProgramFailure):
            program.raise_()
        return program  # type: ignore[return-value]


def _ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _import(target: str) -> Any:
    from runners.run_vqa_parallel import _import as import_target

    return import_target(target)


class SampleWorker:
    """One Ray actor: the task's runner, built once, processing the batches it is handed."""

    def __init__(self, runner_target: str, config: RunConfig, index: int, cwd: str, threads: int | None) -> None:
        with contextlib.suppress(ValueError):  # Ctrl-C is the driver's; it stops the actors
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.path.isdir(cwd):  # relative data paths and data_root mean what they meant to the driver
            os.chdir(cwd)
        os.environ["NEPTUNE_WORKER_INDEX"] = str(index)
        if threads:
            import torch

            torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
        self.index = index
        self.programs = ShippedPrograms()
        self.runner = _import(runner_target)(config, generator=self.programs)
        self.samples: dict[str, Sample] = {}

    def setup(self) -> dict[str, Any]:
        """Load the samples, build and check the models (preflight); say which samples and where."""
        samples = self.runner.load_samples()
        self.runner.prepare(samples, check_generator=False)
        self.samples = {s.id: s for s in samples}
        import ray

        return {
            "digest": _ids_digest([s.id for s in samples]),
            "count": len(samples),
            "node": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
        }

    def process(self, items: list[Item]) -> list[dict[str, Any]]:
        """The rows of a batch, through the runner's own loop (``Runner.process_all``)."""
        for sample_id, program, ms in items:
            self.programs.put(sample_id, program, ms)
        rows = []
        for row in self.runner.process_all([self.samples[sample_id] for sample_id, _, _ in items]):
            _driver_program_time(row, self.programs.ms.pop(row["id"], 0.0))
            rows.append(row)
        return rows


def _driver_program_time(row: dict[str, Any], ms: float) -> None:
    """The row's program time is the driver's generation time (the actor only looked it up)."""
    timings = row.get("timings") or {}
    if "program" in timings:
        looked_up = timings["program"]
        timings["program"] = ms
        timings["total"] = round(timings.get("total", 0.0) - looked_up + ms, 3)


# ---- the driver --------------------------------------------------------------------------------
def _timed(generator: Any) -> Callable[[Sample], tuple[Program | ProgramFailure, float]]:
    def make(sample: Sample) -> tuple[Program | ProgramFailure, float]:
        t0 = time.perf_counter()
        try:
            program: Program | ProgramFailure = generator.program_for(sample)
        except Exception as e:  # the actor raises it again inside process(): an error row, as in a local run
            program = ProgramFailure(type(e).__name__, str(e))
        return program, round((time.perf_counter() - t0) * 1000.0, 3)

    return make


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def _describe(ray: Any, error: BaseException) -> tuple[str, str | None]:
    """(what went wrong, the UserError message if it was one) for an actor call that failed."""
    cause = getattr(error, "cause", None) if isinstance(error, ray.exceptions.RayTaskError) else None
    if cause is not None:
        if not isinstance(
            cause, UserError
        ):  # a bug, not a setup problem: its remote traceback, as a local worker prints
            print(str(error), file=sys.stderr)
        text = f"{type(cause).__name__}: {_one_line(cause)}"
        return text, (_one_line(cause, 500) if isinstance(cause, UserError) else None)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"died ({type(error).__name__}: {_one_line(first)})", None


class _Driver:
    """The queue, the actors and what is in flight; :meth:`run` hands out work until none is left."""

    def __init__(
        self,
        ray: Any,
        actors: dict[int, Any],
        specs: dict[int, ActorSpec],
        programs: Generator[tuple[Sample, Any], None, None],
        writer: ResultsWriter,
        digest: str,
        batch_size: int,
        bar: tqdm,
        static: bool = False,
    ) -> None:
        self.ray, self.actors, self.specs = ray, actors, specs
        self.programs, self.writer, self.digest, self.bar = programs, writer, digest, bar
        self.batch_size = max(1, batch_size)
        self.static = static  # each actor's share (every K-th sample) fixed up front: for comparison only
        self.shares: dict[int, list[Item]] | None = None
        self.setups: dict[Any, int] = {}
        self.ready: list[int] = []  # actors that finished their setup and are alive
        self.where: dict[int, str] = {}
        self.in_flight: dict[Any, tuple[int, int, list[Item]]] = {}  # ref -> (actor, sequence, items)
        self.sequence = 0
        self.retry: deque[Item] = deque()  # samples of actors that died: handed out first, one at a time
        self.exhausted = False
        self.upcoming: tuple[Sample, Any] | None = None  # the next sample and its program's future
        self.attempts: dict[str, int] = {}
        self.problems: dict[int, str] = {}
        self.user_errors: dict[int, str] = {}
        self.given_up: dict[str, str] = {}
        self.written: set[str] = set()
        self.handed_over = 0  # samples of failed actors put back on the queue

    # -- work --
    def _take(self, n: int) -> list[Item]:
        if self.retry:
            return [self.retry.popleft()]  # alone: if it kills this actor too, it takes no other sample along
        return self._take_fresh(n, block=not self.in_flight)

    def _take_fresh(self, n: int, block: bool = True) -> list[Item]:
        """Up to ``n`` samples whose programs are ready, in dataset order. It waits for a program
        only when it has none yet and ``block`` (nothing else is in flight): rows that come back
        meanwhile are written, and a batch never waits to be filled."""
        items: list[Item] = []
        while len(items) < n:
            if self.upcoming is None:
                try:
                    self.upcoming = next(self.programs)
                except StopIteration:
                    self.exhausted = True
                    break
            sample, future = self.upcoming
            if not future.done() and (items or not block):
                break
            program, ms = future.result()
            self.upcoming = None
            items.append((sample.id, program, ms))
        return items

    def _programs_pending(self) -> bool:
        """Whether an actor could take work whose program is still being generated."""
        spare = any(self._load(k) < IN_FLIGHT_PER_ACTOR for k in self.ready)
        return spare and not self.exhausted and not self.retry

    def _load(self, k: int) -> int:
        return sum(1 for actor, _, _ in self.in_flight.values() if actor == k)

    def _send(self, k: int, items: list[Item]) -> None:
        self.sequence += 1
        self.in_flight[self.actors[k].process.remote(items)] = (k, self.sequence, items)

    def _dispatch_shares(self) -> None:
        """Static sharding: once the first actor is ready, every actor's share is fixed and sent to it."""
        if self.shares is None:
            everything = self._take_all()
            alive = [k for k in sorted(self.actors) if k not in self.problems]
            self.shares = {k: everything[i :: len(alive)] for i, k in enumerate(alive)}
        for k in self.ready:
            share = self.shares.pop(k, [])
            for start in range(0, len(share), self.batch_size):
                self._send(k, share[start : start + self.batch_size])

    def _take_all(self) -> list[Item]:
        items: list[Item] = []
        while not self.exhausted:
            items.extend(self._take_fresh(self.batch_size, block=True))
        return items

    def _dispatch(self) -> None:
        if self.static and self.ready:
            self._dispatch_shares()
        for k in sorted(self.ready, key=self._load):
            while k in self.ready and self._load(k) < IN_FLIGHT_PER_ACTOR:
                items = self._take(self.batch_size)
                if not items:
                    return
                self._send(k, items)

    def run(self) -> None:
        """Hand out work until every sample has a row, or no actor is left to take the rest."""
        self.setups = {self.actors[k].setup.remote(): k for k in self.actors}
        while True:
            self._dispatch()
            if not self.in_flight:
                if self.exhausted and not self.retry and not any((self.shares or {}).values()):
                    return  # every sample's row came back (actors still loading are not needed)
                if not self.setups:
                    return  # work is left and no actor can take it: failure() says so
            waiting = [*self.setups, *self.in_flight]
            timeout = 0.02 if self._programs_pending() else 1.0  # look again soon for programs generated meanwhile
            done, _ = self.ray.wait(waiting, num_returns=1, timeout=timeout)
            for ref in done:
                if ref in self.setups:
                    self._on_setup(ref)
                elif ref in self.in_flight:
                    self._on_batch(ref)

    def _on_setup(self, ref: Any) -> None:
        k = self.setups.pop(ref)
        try:
            info = self.ray.get(ref)
        except Exception as e:
            self.problems[k], user = _describe(self.ray, e)
            if user is not None:
                self.user_errors[k] = user
            self._retire(k)
            return
        if info["digest"] != self.digest:
            self.problems[k] = (
                f"loaded {info['count']} samples that differ from the driver's (another dataset on its node, "
                "or a loader that is not deterministic)"
            )
            self._retire(k)
            return
        self.where[k] = f"node {info['node']}, pid {info['pid']}"
        self.ready.append(k)

    def _on_batch(self, ref: Any) -> None:
        k, seq, items = self.in_flight.pop(ref)
        try:
            rows = self.ray.get(ref)
        except Exception as e:
            self._actor_failed(k, e, seq, items)
            return
        self._write(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["id"] not in self.written:  # each sample once, whatever happened around it
                self.writer.write(row)
                self.written.add(row["id"])
                self.bar.update(1)

    def _finished(self, ref: Any) -> list[dict[str, Any]] | None:
        """The rows of a batch that has already come back, or None (not back yet, or failed)."""
        done, _ = self.ray.wait([ref], num_returns=1, timeout=0)
        if not done:
            return None
        try:
            return self.ray.get(ref)
        except Exception:
            return None

    def _actor_failed(self, k: int, error: BaseException, seq: int, items: list[Item]) -> None:
        """Retire actor ``k``. An actor runs its calls in order, so of the batches it held, the first
        handed to it was running: each of its samples counts an attempt. All go back to the queue."""
        self.problems[k], _ = _describe(self.ray, error)
        held = [(seq, items)]
        for ref, (actor, s, batch) in list(self.in_flight.items()):
            if actor == k:
                del self.in_flight[ref]
                rows = self._finished(ref)  # a batch it finished before it died is kept
                if rows is None:
                    held.append((s, batch))
                else:
                    self._write(rows)
        running = min(s for s, _ in held)
        for s, batch in held:
            for item in batch:
                ran = s == running
                self.attempts[item[0]] = self.attempts.get(item[0], 0) + int(ran)
                if self.attempts[item[0]] >= MAX_ATTEMPTS:
                    self.given_up[item[0]] = self.problems[k]
                else:
                    self.retry.append(item)
                    self.handed_over += 1
        self._retire(k)

    def _retire(self, k: int) -> None:
        if k in self.ready:
            self.ready.remove(k)
        if self.shares and k in self.shares:  # static sharding: a share never sent goes to the others
            self.retry.extend(self.shares.pop(k))
        with contextlib.suppress(Exception):
            self.ray.kill(self.actors[k], no_restart=True)

    # -- the end --
    def close(self) -> None:
        """Stop the actors (their GPUs are freed at once) and the program threads; close the bar."""
        self.bar.close()
        self.programs.close()
        for actor in self.actors.values():
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)

    def lost_note(self) -> str | None:
        """One line for a run that finished although actors failed (None when none did)."""
        if not self.problems:
            return None
        return (
            f"note: {len(self.problems)} of {len(self.actors)} Ray actors failed ({self._details()}); "
            f"{self.handed_over} unfinished samples were handed to the other actors; every sample has its row"
        )

    def _details(self) -> str:
        return "; ".join(
            f"actor {k} ({self.specs[k].device}{', ' + self.where[k] if k in self.where else ''}) {self.problems[k]}"
            for k in sorted(self.problems)
        )

    def failure(self, run_dir: Path, total: int) -> UserError | None:
        """The error that ends a run with samples left undone (None when every sample has a row)."""
        if self.user_errors and len(self.user_errors) == len(self.actors) and len(set(self.user_errors.values())) == 1:
            return UserError(next(iter(self.user_errors.values())))
        left = total - len(self.written)
        if not left:
            return None
        parts = [f"{left} of {total} samples were not processed"]
        if self.given_up:
            names = ", ".join(sorted(self.given_up)[:10]) + (" ..." if len(self.given_up) > 10 else "")
            parts.append(f"{names}: the actor running them died {MAX_ATTEMPTS} times")
        if self.problems:
            parts.append(f"{len(self.problems)} of {len(self.actors)} actors failed: {self._details()}")
        return WorkerFailedError(
            f"{'; '.join(parts)}; the finished rows are in {run_dir / RESULTS}; rerun the same command to resume"
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
    driver: _Driver | None = None
    with ResultsWriter(run_dir / RESULTS, retry_failed=retry_failed) as writer:
        todo = [s for s in samples if s.id not in writer.done_ids]
        if todo:
            with ray_session(config) as ray:
                driver = _start(ray, config, target, runner, todo, order, writer, progress, static_shares)
                try:
                    driver.run()
                finally:
                    driver.close()
    merge_shards(run_dir, order)  # the rows in dataset order (they were appended as they arrived)
    invocation = runner.invocation_stats(len(driver.written) if driver else 0)
    invocation.update(cluster="ray", workers=len(driver.actors) if driver else 0)
    if driver is not None:
        error = driver.failure(run_dir, len(todo))
        if error is not None:
            raise error
        note = driver.lost_note()
        if note:
            print(note, file=sys.stderr)
        invocation.update(actors_failed=len(driver.problems), handed_over=driver.handed_over)
    return finish_run(run_dir, order, invocation=invocation)


_ACTOR_CLASS: dict[str, Any] = {}


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
) -> _Driver:
    """Create the actors (their setup starts at once) and the program pipeline; return the driver."""
    specs = {s.index: s for s in plan_actors(config, ray.cluster_resources())}
    remote = _ACTOR_CLASS.setdefault("SampleWorker", ray.remote(SampleWorker))
    actors = {
        k: remote.options(
            num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, max_restarts=0, runtime_env=actor_env(k)
        ).remote(target, config, k, os.getcwd(), spec.threads)
        for k, spec in specs.items()
    }
    generator = runner.generator
    threads = max(1, int(getattr(generator, "concurrency", 1) or 1))
    window = max(4 * threads, 2 * IN_FLIGHT_PER_ACTOR * len(specs) * max(1, config.ray_batch_size))
    programs = ahead(_timed(generator), todo, workers=threads, window=window)
    bar = tqdm(
        desc=f"{config.dataset} x{len(specs)} ray actors",
        unit="q",
        dynamic_ncols=True,
        disable=not progress,
        initial=len(order) - len(todo),
        total=len(order),
    )
    return _Driver(ray, actors, specs, programs, writer, _ids_digest(order), config.ray_batch_size, bar, static)
