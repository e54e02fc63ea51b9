"""The driver's side of a ``--cluster ray`` run: a queue of samples, the actors, what is in flight.

:class:`Dispatcher` hands batches of ready programs (``ray_batch_size``, at most
:data:`IN_FLIGHT_PER_ACTOR` per actor) to whichever actors have room, writes the rows that
come back (each sample once), and, when an actor fails, puts what it held back on the queue.
It talks to Ray only through ``wait``, ``get``, ``kill`` and the actors' ``.remote`` methods,
so tests drive it with a simulated cluster.
"""

from __future__ import annotations

import contextlib
import sys
from collections import deque
from collections.abc import Generator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from neptune_core.errors import UserError
from neptune_core.types import Sample
from runners.ray_actor import Item
from runners.results import ResultsWriter
from runners.run_vqa_parallel import WorkerFailedError
from runners.sharding import RESULTS
from vision_agents.memo import sample_image_key

MAX_ATTEMPTS = 2  # actors a sample may see die while it runs before it is left undone
IMAGE_BATCH_CAP = 8  # a batch finishing its image grows to at most this many times ray_batch_size
IN_FLIGHT_PER_ACTOR = 2  # batches handed to one actor at a time: one running, one waiting


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def describe_failure(ray: Any, error: BaseException) -> tuple[str, str | None]:
    """(what went wrong, the UserError message if it was one) for an actor call that failed."""
    cause = getattr(error, "cause", None) if isinstance(error, ray.exceptions.RayTaskError) else None
    if cause is not None:
        if not isinstance(cause, UserError):  # a bug, not a setup problem: the remote traceback, as a local worker
            print(str(error), file=sys.stderr)
        text = f"{type(cause).__name__}: {_one_line(cause)}"
        return text, (_one_line(cause, 500) if isinstance(cause, UserError) else None)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"died ({type(error).__name__}: {_one_line(first)})", None


class Dispatcher:
    """The queue, the actors and what is in flight; :meth:`run` hands out work until none is left."""

    def __init__(
        self,
        ray: Any,
        actors: dict[int, Any],
        devices: dict[int, str],
        programs: Generator[tuple[Sample, Any], None, None],
        writer: ResultsWriter,
        digest: str,
        batch_size: int,
        bar: tqdm,
        static: bool = False,
        same_image: bool = False,
    ) -> None:
        self.ray, self.actors, self.devices = ray, actors, devices
        self.programs, self.writer, self.digest, self.bar = programs, writer, digest, bar
        self.batch_size = max(1, batch_size)
        self.static = static  # each actor's share (every K-th sample) fixed up front: for comparison only
        # a batch runs on to the end of its image (up to IMAGE_BATCH_CAP x batch_size), so an image's
        # questions share one actor's memo and detection cache
        self.same_image = same_image
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
        last_image: str | None = None
        while True:
            if self.upcoming is None:
                try:
                    self.upcoming = next(self.programs)
                except StopIteration:
                    self.exhausted = True
                    break
            sample, future = self.upcoming
            image = sample_image_key(sample)
            full = len(items) >= n
            if full and (not self.same_image or image != last_image or len(items) >= IMAGE_BATCH_CAP * n):
                break
            if not future.done() and (items or not block):
                break
            program, ms = future.result()
            self.upcoming = None
            items.append((sample.id, program, ms))
            last_image = image
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
            self.problems[k], user = describe_failure(self.ray, e)
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
        self.problems[k], _ = describe_failure(self.ray, error)
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
            f"actor {k} ({self.devices[k]}{', ' + self.where[k] if k in self.where else ''}) {self.problems[k]}"
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
