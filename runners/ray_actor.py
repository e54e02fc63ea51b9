"""A Ray actor of a ``--cluster ray`` run, and what crosses between it and the driver.

The driver ships ``(sample id, program, milliseconds it took)`` items (:data:`Item`): the
program it generated or looked up, or, where that failed, a :class:`ProgramFailure` that the
actor raises again where a local run would have raised it (so the row is the same). A
:class:`SampleWorker` builds the task's runner once, with :class:`ShippedPrograms` as its
program generator, loads the samples itself, and runs each batch through ``Runner.process_all``.
Nothing here starts Ray; :mod:`runners.ray_cluster` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from neptune_core.config import RunConfig
from neptune_core.registry import import_target
from neptune_core.types import Program, Sample


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


def ids_digest(ids: Sequence[str]) -> str:
    """One hash of a sample list: the driver and each actor must have loaded the same samples."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


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
        self.runner = import_target(runner_target)(config, generator=self.programs)
        self.samples: dict[str, Sample] = {}

    def setup(self) -> dict[str, Any]:
        """Load the samples, build and check the models (preflight); say which samples and where."""
        samples = self.runner.load_samples()
        self.runner.prepare(samples, check_generator=False)
        self.samples = {s.id: s for s in samples}
        import ray

        return {
            "digest": ids_digest([s.id for s in samples]),
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


def program_maker(generator: Any) -> Callable[[Sample], tuple[Program | ProgramFailure, float]]:
    """On the driver: ``make(sample) -> (program or ProgramFailure, milliseconds)`` with ``generator``."""

    def make(sample: Sample) -> tuple[Program | ProgramFailure, float]:
        t0 = time.perf_counter()
        try:
            program: Program | ProgramFailure = generator.program_for(sample)
        except Exception as e:  # the actor raises it again inside process(): an error row, as in a local run
            program = ProgramFailure(type(e).__name__, str(e))
        return program, round((time.perf_counter() - t0) * 1000.0, 3)

    return make
