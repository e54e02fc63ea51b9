"""The parent's side of the sandbox process: start it, run programs in it under a watchdog,
serve their primitive calls, and replace it when it dies or must not be reused.

Processes come from a fork server (forkserver.py), itself a fresh interpreter that imports
neptune_core.executor.child (and torch) once: a sandbox never inherits the parent's models,
CUDA state or file descriptors, and starting one takes milliseconds. One SandboxProcess
serves one parent (one per run worker), sample after sample.

A ``score``/``query`` request the sandbox has seen answered before in the same reply scope (the
agent's memo of the image and the boxes, ``CallContext.reply_scope``) is answered there from its
copy; a ``replay`` message that needs no answer tells this process, which runs the call for the
trace and the counts while the program goes on (child.py): the questions of one image share their
replies without a round trip each, and rows stay what they would have been.

A program to run next is sent as soon as it is known (:meth:`SandboxProcess.prepare`, during
the current run if there is one): the sandbox parses it when idle, sends back its plan of score
calls to evaluate ahead (score_ahead.plan_tree), then checks it, so that neither side parses a
program twice and the plan is there when the run starts.

The watchdog counts program time only: the sandbox's own count, reported with each primitive
call, plus the time since the parent last handed it work (the program, or a primitive's reply).
Time the parent spends answering ``score``/``query`` does not count. Past 1.5 x ``executor.time_limit_s`` (the interpreter's
own limit stops ordinary programs at 1 x) or past the memory limit (the parent also watches
the sandbox's resident memory, in case the OS limits are missing, as on macOS), the sandbox
is killed and the sample gets a typed error: ProgramTimeout, ProgramMemoryError or
SandboxCrash (it died, or broke the protocol). The next run starts a fresh sandbox.
"""

from __future__ import annotations

import collections
import contextlib
import json
import pickle
import select
import signal
import time
import weakref
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import psutil

from neptune_core.config import ExecutorConfig
from neptune_core.errors import UserError
from neptune_core.executor.forkserver import ForkServer, fork_server
from neptune_core.executor.guards import (
    ProgramMemoryError,
    ProgramTimeout,
    SandboxAbort,
    SandboxCrash,
    safe_message,
)
from neptune_core.executor.program import ProgramResult
from neptune_core.executor.wire import MAX_MESSAGE_BYTES, decode_value, poll_briefly, request_key, to_wire
from neptune_core.types import ErrorRecord
from probabilistic_tensor import Semantics

if TYPE_CHECKING:  # imported where used: neptune_core.primitives imports this package's guards
    from neptune_core.primitives.base import CallContext, Primitive

WATCHDOG_FACTOR = 1.5  # the watchdog kills at this multiple of executor.time_limit_s of program time
RSS_SLACK_MB = 128  # the parent kills a sandbox whose resident memory exceeds memory_mb by this much
START_TIMEOUT_S = 120.0  # the first start imports torch in the fork server
_POLL_S = 0.05  # how often the parent looks at the sandbox's memory while it runs
_KNOWN_REQUESTS = 4096  # checked requests of replayed calls remembered per reply scope
_DONE = object()  # an ``idle`` iterator with no step left
_PLAN_WAIT_S = 1.0  # how long scoring ahead waits for the sandbox's plan of a program it is checking
# a program given to check while a run goes on is sent at once only when this many bytes surely fit in
# the pipe's buffer (the send must not block while the sandbox runs); a bigger one is sent when the run ends
_CHECK_DURING_RUN_BYTES = 16_000


class SandboxStartError(UserError):
    """The sandbox process cannot start (or its memory limit is too small to start in)."""


def _status_mb(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return out


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _shutdown(server: ForkServer, pid: int, conn: Connection, kill: bool) -> int | None:
    """End a sandbox (asked to exit, else killed) and reap it; its exit code."""
    if not kill:
        with contextlib.suppress(OSError, ValueError):
            conn.send_bytes(pickle.dumps(None))
    with contextlib.suppress(OSError):
        conn.close()
    code = None
    with contextlib.suppress(OSError, EOFError):
        if not kill:
            code = server.wait(pid, 0.5)
        if code is None:
            code = server.wait(pid, 5.0, kill=True)
    return code


def _server_failed(e: BaseException) -> SandboxStartError:
    return SandboxStartError(
        f"the sandbox fork server failed ({type(e).__name__}: {e}); "
        "set --executor.isolation in_process to run trusted programs without it"
    )


def _named_primitive(message: dict[str, Any]) -> Primitive:
    """The primitive a call or replay message names; SandboxCrash if it names none."""
    from neptune_core.primitives import get_primitive

    name = message.get("name")
    if not isinstance(name, str):
        raise SandboxCrash("malformed primitive call")
    return get_primitive(name)


def start_fork_server(*, wait: bool = True) -> None:
    """Start (or reach) the fork server: processes started later (run workers) share it once it is
    up. ``wait=False`` only starts its process: its start-up overlaps the caller's (loading models,
    the preflight), and the first sandbox waits for it."""
    try:
        server = fork_server()
        if wait:
            server.ready()
    except (OSError, EOFError) as e:
        raise _server_failed(e) from None


class SandboxProcess:
    """One sandbox process (restarted when needed) and the watchdog around each run."""

    def __init__(
        self,
        config: ExecutorConfig,
        semantics: Semantics,
        *,
        rss_limit_mb: float | None = None,
        lazy_relations: bool = False,
    ) -> None:
        self.config = config
        self.semantics = semantics
        self.lazy_relations = lazy_relations  # how the sandbox plans score calls (score_ahead.plan_tree)
        self.rss_limit_mb = float(rss_limit_mb if rss_limit_mb is not None else config.memory_mb + RSS_SLACK_MB)
        self.watchdog_s = WATCHDOG_FACTOR * float(config.time_limit_s)
        self.peak_rss_mb = 0.0  # the largest resident memory any of this object's sandboxes reached
        self.baseline_mb: float | None = None  # private memory of a fresh sandbox
        self.starts = 0
        self.served = 0  # primitive calls answered over the pipe
        self.replayed = 0  # calls the sandbox answered from a reused reply, run here afterwards
        self.last_exit_code: int | None = None
        self._pid: int | None = None
        self._conn: Connection | None = None
        self._ps: psutil.Process | None = None
        self._finalizer: weakref.finalize | None = None
        self._poller: Any = None
        self._checked: str | None = None  # the program this sandbox was last given to check ahead
        self._next: str | None = None  # a program to give it to check as soon as the current run ends
        self._plans_due: collections.deque[str] = collections.deque()  # programs sent to check, plan to come
        self._plan: tuple[str, list[tuple[str, int]]] | None = None  # the latest plan that came, and its program
        self._running = False
        # requests of replayed calls as checked here, for one reply scope (whose boxes the limits come from)
        self._requests_scope: str | None = None
        self._requests: dict[Any, dict[str, Any]] = {}

    # ---- lifecycle ------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._pid

    def alive(self) -> bool:
        """A sandbox is running and idle (a dead one has closed its end of the pipe)."""
        if self._conn is None or self._poller is None:
            return False
        try:
            while self._poller.poll(0):  # readable while idle: a plan that is due, else EOF (or junk)
                if not self._plans_due:
                    return False
                self._read_plan()
        except (OSError, ValueError, EOFError, SandboxCrash):
            return False
        return True

    def start(self) -> None:
        """Start a sandbox unless one is running; SandboxStartError when it cannot start."""
        if self.alive():
            return
        self._discard(kill=True)
        try:
            try:
                server = fork_server()
                pid, conn = server.fork(self.config, self.semantics)
            except (OSError, EOFError):  # a server that went away: once more with a new one
                server = fork_server(fresh=True)
                pid, conn = server.fork(self.config, self.semantics)
        except (OSError, EOFError) as e:
            raise _server_failed(e) from None
        self._pid, self._conn = pid, conn
        self._finalizer = weakref.finalize(self, _shutdown, server, pid, conn, True)
        self.starts += 1
        try:
            if not conn.poll(START_TIMEOUT_S):
                raise SandboxStartError(f"the sandbox process did not start within {START_TIMEOUT_S:g} s")
            message = json.loads(conn.recv_bytes(MAX_MESSAGE_BYTES))
        except (EOFError, OSError, ValueError) as e:
            self._discard(kill=True)
            raise SandboxStartError(
                f"the sandbox process {_describe_exit(self.last_exit_code)} while starting ({type(e).__name__}); "
                "set --executor.isolation in_process to run trusted programs without it"
            ) from None
        except SandboxStartError:
            self._discard(kill=True)
            raise
        if message.get("op") == "too_small":
            self._discard(kill=True)
            need = int(message["baseline_mb"]) + 512
            raise SandboxStartError(
                f"executor.memory_mb = {self.config.memory_mb} is too small: the sandbox process already uses "
                f"{message['baseline_mb']} MB after importing torch; set --executor.memory_mb {need} or more"
            )
        if message.get("op") != "ready":
            self._discard(kill=True)
            raise SandboxStartError(f"the sandbox process failed while starting: {str(message.get('error'))[:300]}")
        self.baseline_mb = float(message.get("baseline_mb", 0.0))
        self._poller = select.poll()  # one poll object per sandbox: cheaper than Connection.poll per wait
        self._poller.register(conn.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        try:
            self._ps = psutil.Process(pid)
        except psutil.Error:
            self._ps = None

    def close(self) -> None:
        """Stop the sandbox (a later run starts a new one)."""
        self._discard(kill=False)

    def _discard(self, kill: bool) -> None:
        """End the current sandbox, if any (asked to exit, or killed), and note its exit code."""
        if self._pid is not None:
            self._note_peak()
            info = self._finalizer.detach() if self._finalizer is not None else None
            if info is not None:
                server, pid, conn, _ = info[2]
                self.last_exit_code = _shutdown(server, pid, conn, kill)
        self._pid, self._conn, self._ps, self._finalizer = None, None, None, None
        self._checked, self._plan = None, None
        self._plans_due.clear()

    def _note_peak(self) -> None:
        if self._pid is not None:
            status = _status_mb(self._pid)
            self.peak_rss_mb = max(self.peak_rss_mb, status.get("VmHWM", status.get("VmRSS", 0.0)))

    def _rss_mb(self) -> float:
        try:
            rss = self._ps.memory_info().rss / (1024.0 * 1024.0) if self._ps is not None else 0.0
        except psutil.Error:
            return 0.0
        self.peak_rss_mb = max(self.peak_rss_mb, rss)
        return rss

    # ---- one program ----------------------------------------------------------------
    def prepare(self, source: str) -> None:
        """Have the sandbox parse and check ``source`` (kept in its checker's cache) and plan its score
        calls to evaluate ahead (:meth:`planned`), while this process gets the sample's boxes; :meth:`run`
        then finds it done. Asked during a run (the next sample's program, generated while this one
        runs), it is sent at once and taken up as soon as the run ends (a program too big to send
        without blocking: sent then). A sandbox that is not running is left alone: :meth:`run` starts
        one (or reports why it cannot)."""
        if source == self._checked:
            return
        if self._running:
            if 4 * len(source) > _CHECK_DURING_RUN_BYTES:  # (UTF-8: at most 4 bytes a character)
                self._next = source
                return
            self._send_check(source)
        elif self.alive():
            self._send_check(source)

    def _send_check(self, source: str) -> None:
        cap = int(self.config.score_ahead)
        check = ("check", source, cap, self.lazy_relations)
        try:
            self._conn.send_bytes(pickle.dumps(check, protocol=pickle.HIGHEST_PROTOCOL))  # type: ignore[union-attr]
        except OSError:
            return  # gone since: the run finds out and records how
        self._checked = source
        if cap > 0:
            self._plans_due.append(source)

    def planned(self, source: str) -> list[tuple[str, int]] | None:
        """The score calls to evaluate ahead for ``source``, as the sandbox planned them on the tree it
        parsed to check it (score_ahead.plan_tree; sent before its check, so this process need not parse
        the program too); None when no plan of it comes (plan here). Waits for a plan that is due (the
        run cannot start before the sandbox has checked its program), at most _PLAN_WAIT_S. Only calls
        whose question the program's text holds are taken: a sandbox that lied could at most have
        calls the program names evaluated ahead, at most ``executor.score_ahead``. SandboxCrash for a
        malformed plan."""
        try:
            until = time.perf_counter() + _PLAN_WAIT_S
            while source in self._plans_due:
                self._read_plans()
                left = until - time.perf_counter()
                if source not in self._plans_due:
                    break
                if self._poller is None or left <= 0 or not self._poller.poll(1000.0 * left):
                    return None
        except (EOFError, OSError):
            return None  # the run finds out what happened to the sandbox
        if self._plan is None or self._plan[0] != source:
            return None
        return self._plan[1]

    def _read_plans(self) -> None:
        """Read the plans that are due and have come (a due plan comes before anything else)."""
        while self._plans_due and self._conn is not None and self._poller.poll(0):
            self._read_plan()

    def _read_plan(self) -> None:
        """Read the next message, which must be the plan that is due first."""
        try:
            message = json.loads(self._conn.recv_bytes(MAX_MESSAGE_BYTES))  # type: ignore[union-attr]
        except (ValueError, RecursionError):
            raise SandboxCrash("the sandbox process sent a malformed message where a plan was due") from None
        self._take_plan(message)

    def _take_plan(self, message: Any) -> None:
        """Keep a ``plan`` message for the program it was due for; SandboxCrash if it is not one that was due."""
        calls = message.get("calls") if isinstance(message, dict) and message.get("op") == "plan" else None
        if not self._plans_due or not isinstance(calls, list) or len(calls) > int(self.config.score_ahead):
            raise SandboxCrash("the sandbox process sent a malformed message where a plan was due")
        source = self._plans_due.popleft()
        if not all(isinstance(c, list) and len(c) == 2 and type(c[0]) is str and type(c[1]) is int for c in calls):
            raise SandboxCrash("the sandbox process sent a malformed plan")
        self._plan = (source, [(q, k) for q, k in calls if q in source])

    def run(
        self,
        source: str,
        ctx: CallContext,
        ahead: Callable[[], list[tuple[dict[str, Any], Any]]] | None = None,
        idle: Iterator[None] | None = None,
    ) -> ProgramResult:
        """Run ``source`` in the sandbox, serving its primitive calls from ``ctx``.

        ``ahead``: evaluates the score calls the program will make (score_ahead.py) while the
        sandbox checks the program; their replies follow the run request in one message, kept by
        the sandbox like reused replies. ``idle``: work of this process's own (e.g. the next
        sample's program), one step (``next``) each time the sandbox is busy and this process
        would wait, until it is done or the run ends; a call the sandbox makes meanwhile waits for
        the step (not program time).

        Program time is the sandbox's own count (it excludes the round trips of primitive
        calls), reported with each call, plus the time since the parent last handed it work;
        the watchdog stops the sandbox past ``watchdog_s`` of it. A sandbox that lied about its
        time would still meet RLIMIT_CPU.
        """
        t0 = time.perf_counter()
        self.start()
        self._running = True
        try:
            return self._run(source, ctx, ahead, idle, t0)
        except BaseException:  # e.g. Ctrl-C inside an ``idle`` step: the sandbox is mid-run, so not reusable
            self._discard(kill=True)
            raise
        finally:
            self._running, self._next = False, None

    def _run(
        self,
        source: str,
        ctx: CallContext,
        ahead: Callable[[], list[tuple[dict[str, Any], Any]]] | None,
        idle: Iterator[None] | None,
        t0: float,
    ) -> ProgramResult:
        conn = self._conn
        assert conn is not None
        scope = ctx.reply_scope()
        mass_threshold = ctx.lazy.mass_threshold if ctx.lazy is not None else None
        request = ("run", source, ctx.limits.counts or ctx.limits.n, scope, mass_threshold, ahead is not None)
        try:
            conn.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
            # always sent when announced (the sandbox reads it before its first call); should ahead() fail, the
            # sandbox waits for a message that will not come: run() discards it
            if ahead is not None:
                replies = [("score", req, to_wire(reply)) for req, reply in ahead()]
                conn.send_bytes(pickle.dumps(("prefill", replies), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            return self._died(t0)
        except SandboxCrash as e:  # a malformed plan (ahead() asks for the sandbox's plan: planned())
            return self._stop(e, t0)
        # the first replayed call that failed: the next call gets it, and the run ends with it
        failed: tuple | None = None
        told = False  # whether a call has answered with ``failed``
        used = 0.0  # program seconds up to the last message, as the sandbox counts them
        handed = time.perf_counter()  # when the sandbox was last given work
        while True:
            remaining = self.watchdog_s - used - (time.perf_counter() - handed)
            if remaining <= 0 and not self._poller.poll(0):  # (a message waiting says how long it ran)
                return self._stop(
                    ProgramTimeout(
                        f"the program ran longer than {self.watchdog_s:g} s of program time and was stopped by the "
                        f"watchdog (executor.time_limit_s = {self.config.time_limit_s:g})"
                    ),
                    t0,
                )
            if idle is not None and not self._poller.poll(0):
                if next(idle, _DONE) is _DONE:
                    idle = None
                continue  # the watchdog's count, from here
            if not poll_briefly(self._poller.poll, handed) and not self._poller.poll(1000.0 * min(remaining, _POLL_S)):
                if self._rss_mb() > self.rss_limit_mb:
                    return self._stop(
                        ProgramMemoryError(
                            f"the sandbox process used more than {self.rss_limit_mb:g} MB and was stopped "
                            f"(executor.memory_mb = {self.config.memory_mb})"
                        ),
                        t0,
                    )
                continue
            try:
                data = conn.recv_bytes(MAX_MESSAGE_BYTES)
            except (EOFError, OSError):
                return self._died(t0)
            try:
                message = json.loads(data)
                op = message["op"]
            except (ValueError, TypeError, KeyError, RecursionError):
                return self._stop(SandboxCrash("the sandbox process sent a malformed message"), t0)
            if op in ("call", "replay"):
                reported = message.get("program_seconds")
                if isinstance(reported, (int, float)) and reported >= 0:
                    used = float(reported)
                else:
                    used += time.perf_counter() - handed
                handed = time.perf_counter()  # a replay needs no answer: the sandbox runs on meanwhile
                if op == "replay":
                    failed = failed or self._replay(ctx, message)
                    continue
                if failed is not None and not told:
                    reply, told = failed, True
                else:
                    reply = self._serve(ctx, message, reusable=scope is not None)
                try:
                    conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
                except OSError:
                    return self._died(t0)
                handed = time.perf_counter()
            elif op == "plan":  # a plan that came after its run had started (scoring ahead did not wait)
                try:
                    self._take_plan(message)
                except SandboxCrash as e:
                    return self._stop(e, t0)
            elif op == "done":
                if self._next is not None:  # the next program, checked there while this result is read here
                    self._send_check(self._next)
                return self._finish(message, t0, failed)
            elif op == "crash":
                return self._died(t0, str(message.get("error"))[:300])
            else:
                return self._stop(SandboxCrash(f"the sandbox process sent an unknown message {str(op)[:40]!r}"), t0)

    def _serve(self, ctx: CallContext, message: dict[str, Any], reusable: bool) -> tuple:
        """One primitive call: the parent side runs it; errors travel back to the program. ``reusable``:
        the run has a reply scope, so the sandbox may keep a ``Primitive.reuse`` reply that is not a handle."""
        try:
            primitive = _named_primitive(message)
            self.served += 1
            reply = primitive.call(ctx, message.get("request"))
            return ("ok", to_wire(reply), reusable and primitive.reuse and not isinstance(reply, dict))
        except Exception as e:  # re-raised inside the program with the same type (see child._REPLY_ERRORS)
            return ("error", type(e).__name__, safe_message(e))

    def _replay(self, ctx: CallContext, message: dict[str, Any]) -> tuple | None:
        """Run a call the sandbox answered from a reused reply as if asked: its trace entry and counts
        (from the agent's memo without calling it, where the primitive can: ``Primitive.known``). A
        failure comes back as an error reply (the program's next call raises it, and the run ends
        with it: the program went on with a reply the parent no longer gives); None when it went through."""
        try:
            primitive = _named_primitive(message)
            predicted = "expect" in message
            if not (primitive.predict is not None if predicted else primitive.reuse):
                raise SandboxCrash(f"the sandbox process answered {primitive.name}() itself, which it may not")
            self.replayed += 1
            request = self._checked_request(primitive, ctx, message.get("request"))
            known = None if predicted or primitive.known is None else primitive.known(ctx, request)
            if known is not None:
                ctx.replay(known)
                return None
            reply = primitive.call(ctx, request, trusted=True)
            if predicted and reply != message["expect"]:
                raise SandboxCrash(
                    f"the sandbox process answered {primitive.name}() with {message['expect']!r:.100}, not {reply!r:.100}"
                )
        except Exception as e:  # a call that fails now: the program's view is not the parent's
            return ("error", type(e).__name__, f"(a repeated call) {safe_message(e)}")
        return None

    def _checked_request(self, primitive: Primitive, ctx: CallContext, raw: Any) -> dict[str, Any]:
        """``primitive.checked`` of a replayed call's request, remembered for the run's reply scope: an
        image's questions repeat their calls, and a request equal to one checked before (request_key)
        under the same limits (the scope's boxes) is checked alike."""
        scope = ctx.reply_scope()
        if scope is None or not isinstance(raw, dict):
            return primitive.checked(ctx.limits, raw)
        if scope != self._requests_scope:
            self._requests_scope, self._requests = scope, {}
        try:
            key = request_key(primitive.name, raw)
            hit = self._requests.get(key)
        except (TypeError, ValueError, RecursionError):  # checked (and refused) below
            return primitive.checked(ctx.limits, raw)
        if hit is None:
            hit = primitive.checked(ctx.limits, raw)
            if len(self._requests) < _KNOWN_REQUESTS:
                self._requests[key] = hit
        return hit

    def _finish(self, message: dict[str, Any], t0: float, failed: tuple | None = None) -> ProgramResult:
        try:
            error = message["error"]
            printed = message["printed"]
            result = ProgramResult(
                value=decode_value(message["value"], self.semantics),
                error=None if error is None else ErrorRecord(str(error["type"])[:100], str(error["message"])[:2000]),
                operations=int(message["operations"]),
                primitive_seconds=float(message["primitive_seconds"]),
                printed=[str(p)[:1000] for p in printed[:100]],
                fresh_process=bool(message["fresh_process"]),
            )
        except (KeyError, TypeError, ValueError, IndexError, RecursionError, OverflowError):
            return self._stop(SandboxCrash("the sandbox process sent a malformed result"), t0)
        if failed is not None:  # a call the program made failed here (even if the program caught what it got)
            result.value, result.error = None, ErrorRecord(str(failed[1]), str(failed[2])[:2000])
        if result.fresh_process:
            self._discard(kill=False)
        result.seconds = time.perf_counter() - t0
        return result

    def _stop(self, error: SandboxAbort, t0: float) -> ProgramResult:
        """Kill the sandbox (if still there) and give the sample ``error``."""
        self._discard(kill=True)
        return ProgramResult(
            error=ErrorRecord(type(error).__name__, str(error)), seconds=time.perf_counter() - t0, fresh_process=True
        )

    def _died(self, t0: float, detail: str = "") -> ProgramResult:
        """The sandbox closed its pipe (or failed) mid-run: find out how, and give the sample the error."""
        self._discard(kill=False)
        code = self.last_exit_code
        error: SandboxAbort
        if code == -signal.SIGXCPU:
            error = ProgramTimeout(
                "the program used more than the sandbox's CPU time limit (at least 2 x executor.time_limit_s + 1 s) and was stopped"
            )
        else:
            why = f": {detail}" if detail else ""
            error = SandboxCrash(
                f"the sandbox process {_describe_exit(code)} while running the program{why} "
                f"(its memory limit is executor.memory_mb = {self.config.memory_mb})"
            )
        return self._stop(error, t0)
