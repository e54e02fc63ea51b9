"""The sandbox process: runs programs for one parent, under OS limits, until its pipe closes.

It is forked from a fork server (forkserver.py) that imported this module (and so torch) and
ran :func:`prepare_server` once. On start it isolates itself: every inherited file descriptor but its pipe is closed (stdin, stdout and
stderr point at /dev/null), torch uses one thread, and the OS limits are set (Linux):
RLIMIT_DATA = ``executor.memory_mb`` (private writable memory, its baseline included),
RLIMIT_AS = its address space at start + ``memory_mb`` (torch maps a lot of virtual memory
it never touches, so this one only bounds growth), RLIMIT_CORE = RLIMIT_FSIZE = 0, and before
each run RLIMIT_CPU leaves it between 2 x time_limit_s + 1 and twice that of CPU seconds (SIGXCPU beyond).
It also asks the kernel to kill it if the fork server (its parent) dies.

A program's primitive calls are sent to the parent as JSON and wait for the reply (polling first, wire.SPIN_S);
the result goes back as JSON (neptune_core/executor/wire.py).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
import math
import os
import pickle
import resource
import select
import signal
import sys
import time
from collections.abc import Hashable
from multiprocessing.connection import Connection
from typing import Any

import torch

from neptune_core.config import ExecutorConfig
from neptune_core.executor.checker import ProgramCheckError, parse_checked, parse_source
from neptune_core.executor.guards import (
    AgentError,
    PrimitiveLimitError,
    SandboxViolation,
    SizeLimitError,
    call_limit_error,
)
from neptune_core.executor.program import RunSetup, prepare_run, run_program
from neptune_core.executor.score_ahead import plan_tree
from neptune_core.executor.wire import encode_value, from_wire, poll_briefly, request_key, wire_size
from neptune_core.primitives import get_primitive
from neptune_core.primitives.base import Limits, SandboxRun
from neptune_core.types import ErrorRecord
from probabilistic_tensor import Semantics

_MB = 1024 * 1024
_MAX_KEPT_BYTES = 16 * _MB  # reply copies kept for reuse, per scope
# errors a primitive's parent side may raise, re-raised in the program under the same type
_REPLY_ERRORS: dict[str, type[Exception]] = {
    c.__name__: c
    for c in (AgentError, PrimitiveLimitError, SizeLimitError, SandboxViolation, TypeError, ValueError, IndexError)
}
_WARM_UP = """
def execute(score, query, n):
    a = score("a")
    b = score("b", 2)
    c = (a & ~a | a).implies(a)
    d = b.contract(a.iota()("y")) & c
    k = count(d) > 0 and d.exists() and forall(a) or exists(b)
    names = sorted([f"{i}" for i in range(n)], key=lambda s: -len(s))
    return [query("q", d.iota()), k.item() if k else 0, names, {"x": round(1.5, 1), "y": int("7", 16)}]
"""


def status_mb() -> dict[str, float]:
    """VmData, VmSize, VmRSS and VmHWM of this process in MB (empty where /proc is missing)."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmData", "VmSize", "VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) / 1024.0
    except OSError:
        pass
    return out


_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / _MB if hasattr(os, "sysconf") else 4096 / _MB
_COLLECT_ABOVE_MB = 64  # collect garbage after a run that left this much more resident memory
_PEAK_SLACK_MB = 8.0  # how far the kernel's peak may lag the resident memory it reads exactly


def _peak_rss_mb() -> float:
    """The most resident memory this process has had: one system call, no file to read. Within
    _PEAK_SLACK_MB an upper bound of :func:`_rss_mb` (the kernel sums its per-CPU page counts
    lazily), so a low peak spares reading /proc after every run."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MB if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, kilobytes on Linux


def _rss_mb() -> float:
    """This process's resident memory (one small read of /proc; 0 where it is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_MB
    except (OSError, ValueError, IndexError):
        return 0.0


def _send(conn: Connection, message: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(message).encode("utf-8"))


class _Pipe:
    """The sandbox's end of the pipe: JSON messages out; the parent's pickled messages in, each polled
    for up to wire.SPIN_S before blocking (most come within it)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._poll = select.poll()  # one poll object: Connection.poll builds a selector per call
        self._poll.register(conn.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        self.checks: collections.deque[tuple] = collections.deque()  # programs to check, come during a run

    def send(self, message: dict[str, Any]) -> None:
        _send(self.conn, message)

    def pending(self) -> bool:
        """Whether a message (or the pipe's end) is waiting."""
        return bool(self._poll.poll(0))

    def receive(self) -> Any:
        poll_briefly(self._poll.poll, time.perf_counter())
        return pickle.loads(self.conn.recv_bytes())

    def reply(self) -> Any:
        """The next message of the current run; a program to check ahead (sent while this one runs)
        that comes first is kept in :attr:`checks` for after the run."""
        while True:
            message = self.receive()
            if not (isinstance(message, tuple) and message and message[0] == "check"):
                return message
            self.checks.append(message)


def _key_bytes(key: Hashable) -> int:
    """About how many bytes a :func:`request_key` holds."""
    if isinstance(key, str):
        return len(key)
    return 64 + sum(len(item[1]) for item in key[1:] if isinstance(item[1], str))  # type: ignore[index,attr-defined]


class _Primitives:
    """The program's side of primitive calls: forward each over the pipe and wait for the reply.

    A reply the parent marks reusable (``Primitive.reuse``) is kept for the run's reply scope (the
    image(s), boxes and memo it came from, named by the parent with each run): the same request
    again in that scope is answered from the copy, without a round trip: the program goes on at
    once while the parent, told by a ``"replay"`` message that needs no answer, runs the call for
    the trace and the counts (on another core, if there is one). A reply the primitive can give
    here (``Primitive.predict``: a lazy relation's handle) is reported the same way, with the reply
    for the parent to check. Calls are counted here too, so
    ``executor.max_primitive_calls`` stops a program at the same call either way.
    """

    def __init__(self, pipe: _Pipe, max_calls: int) -> None:
        self.pipe = pipe
        self.max_calls = max_calls
        self.scope: str | None = None
        self.replies: dict[Hashable, Any] = {}  # request_key -> reply as it came over the pipe
        self.kept_bytes = 0
        self.calls = 0
        self.run = SandboxRun(Limits(n=0, max_question_chars=0), None)
        self.prefill = False  # replies evaluated ahead are due from the parent

    def begin(self, scope: str | None, run: SandboxRun, prefill: bool = False) -> None:
        """A new run in ``scope`` (None: nothing may be reused); the copies of another scope are dropped.
        ``prefill``: the parent sends replies evaluated ahead (score_ahead.py) after the run request;
        they are read before the program's first call (:meth:`settle`)."""
        self.calls = 0
        self.run = run
        if scope is None or scope != self.scope:
            self.replies.clear()
            self.kept_bytes = 0
        self.scope = scope
        self.prefill = prefill

    def settle(self) -> None:
        """Read the announced replies evaluated ahead, if not yet read, and keep them like reused ones."""
        if not self.prefill:
            return
        self.prefill = False
        tag, replies = self.pipe.reply()
        if tag != "prefill":
            raise SandboxViolation(f"the parent sent {tag!r:.40} where replies evaluated ahead were due")
        for name, request, reply in replies if self.scope is not None else ():
            self._keep(request_key(name, request), reply)

    def _keep(self, key: Hashable, reply: Any) -> None:
        """Keep ``reply`` (as it came over the pipe) for reuse under ``key``, while the copies fit."""
        if self.kept_bytes < _MAX_KEPT_BYTES:
            self.replies[key] = reply
            self.kept_bytes += _key_bytes(key) + wire_size(reply)

    def __call__(self, name: str, request: dict[str, Any], program_seconds: float) -> Any:
        self.calls += 1
        if self.calls > self.max_calls:
            raise call_limit_error(name, self.max_calls)
        self.settle()
        primitive = get_primitive(name)
        if primitive.predict is not None:
            expect = primitive.predict(request, self.run)
            if expect is not None:
                self.pipe.send({"op": "replay", "name": name, "request": request, "expect": expect,
                                "program_seconds": program_seconds})  # fmt: skip
                return expect
        key = None
        if self.scope is not None:
            key = request_key(name, request)
            kept = self.replies.get(key)
            if kept is not None:
                self.pipe.send({"op": "replay", "name": name, "request": request, "program_seconds": program_seconds})
                return from_wire(kept)
        self.pipe.send({"op": "call", "name": name, "request": request, "program_seconds": program_seconds})
        reply = self.pipe.reply()
        if reply[0] == "ok":
            if key is not None and reply[2]:
                self._keep(key, reply[1])
            return from_wire(reply[1])
        _, kind, message = reply
        cls = _REPLY_ERRORS.get(kind)
        if cls is None:
            raise SandboxViolation(f"{kind}: {message}")
        raise cls(message)


def prepare_server() -> None:
    """Run once in the fork server before it forks: one torch thread, one program run with fake
    replies (so every lazily loaded part is loaded before the limits), then freeze what exists
    (the garbage collector never scans it again, and forked pages stay shared)."""

    def fake(name: str, request: dict[str, Any], program_seconds: float) -> Any:
        if name == "score":
            return torch.full((3,) * request["num_objects"], 0.5)
        return "red"

    torch.set_num_threads(1)
    result = run_program(_WARM_UP, 3, ExecutorConfig(), Semantics(), fake)
    if result.error is not None:  # the warm-up program must run; anything else is a bug here
        raise RuntimeError(f"sandbox warm-up failed: {result.error}")
    gc.collect()
    gc.freeze()


def _isolate(conn: Connection) -> None:
    keep = conn.fileno()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    fds = [int(name) for name in os.listdir("/proc/self/fd")] if os.path.isdir("/proc/self/fd") else []
    for fd in fds:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the descriptor of the directory listing itself, already closed
    if not fds:
        os.closerange(3, keep)
        os.closerange(keep + 1, 1024)
    try:  # PR_SET_PDEATHSIG: die with the fork server (which dies with the parent)
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the pipe's EOF still ends the loop, and RLIMIT_CPU a hang


def _set_limits(memory_mb: int, start: dict[str, float]) -> None:
    def limit(which: int, value: int) -> None:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard))

    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_FSIZE, 0)
    limit(resource.RLIMIT_DATA, memory_mb * _MB)
    if "VmSize" in start:
        limit(resource.RLIMIT_AS, int((start["VmSize"] + memory_mb) * _MB))


def _set_cpu_limit(time_limit_s: float) -> None:
    """RLIMIT_CPU for the next run: at least 2 x time_limit_s + 1 s of CPU from now, at most twice that
    (the limit is moved only when less than the minimum is left, saving a system call most runs)."""
    times = os.times()
    used = times.user + times.system
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if soft != resource.RLIM_INFINITY and soft >= used + 2 * time_limit_s + 1:
        return
    soft = int(math.ceil(used + 2 * (2 * time_limit_s + 1)))
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _check_ahead(pipe: _Pipe, source: str, plan_cap: int, lazy_relations: bool) -> None:
    """Parse and check the next program (kept in the checker's cache for its run). With ``plan_cap`` > 0,
    first send the parent its score calls to evaluate ahead (score_ahead.plan_tree), planned on the
    tree just parsed, before the check: the parent needs them when it sends the run."""
    try:
        tree = parse_source(source)
    except ProgramCheckError:  # not reported here: its run reports it
        tree = None
    if plan_cap > 0:
        try:
            calls = plan_tree(tree, plan_cap, lazy_relations) if tree is not None else []
        except MemoryError:  # what an earlier program left leaves no room: nothing is evaluated ahead
            calls = []
        pipe.send({"op": "plan", "calls": calls})
    if tree is not None:
        with contextlib.suppress(ProgramCheckError):
            parse_checked(source, tree)


def child_main(conn: Connection, config: ExecutorConfig, semantics: Semantics) -> None:
    """Entry point of the sandbox process, called in the fork server's new child; never returns."""
    code = 0
    try:
        _isolate(conn)
        start = status_mb()
        baseline = start.get("VmData", start.get("VmRSS", 0.0))
        if baseline + 128 > config.memory_mb:
            _send(conn, {"op": "too_small", "baseline_mb": round(baseline, 1)})
            return
        _set_limits(int(config.memory_mb), start)
        baseline_rss = _rss_mb()
        _send(conn, {"op": "ready", "baseline_mb": round(baseline, 1), "status": start})
        pipe = _Pipe(conn)
        primitives = _Primitives(pipe, int(config.max_primitive_calls))
        ready: RunSetup | None = None  # the next run's setup, built while this process waits for it
        while True:
            if ready is None and not pipe.checks and not pipe.pending():  # (a program to check goes first)
                ready = prepare_run(config, semantics, primitives)
            try:
                request = pipe.checks.popleft() if pipe.checks else pipe.receive()
            except EOFError:
                return
            if request is None:
                return
            if request[0] == "check":  # the next program, ahead of its run
                _check_ahead(pipe, *request[1:])
                continue
            _, source, n, scope, mass_threshold, prefill = request
            primitives.begin(scope, SandboxRun(Limits.of(n, config.max_question_chars), mass_threshold), prefill)
            _set_cpu_limit(config.time_limit_s)
            result = run_program(source, n, config, semantics, primitives, ready)
            ready = None
            primitives.settle()  # a program that made no call leaves them in the pipe
            try:
                value = encode_value(result.value)
            except (RecursionError, MemoryError) as e:
                value, result.error = None, ErrorRecord(type="SizeLimitError", message=f"result: {e!r:.200}")
            pipe.send(
                {
                    "op": "done",
                    "value": value,
                    "error": None if result.error is None else result.error.to_dict(),
                    "operations": result.operations,
                    "seconds": result.seconds,
                    "primitive_seconds": result.primitive_seconds,
                    "printed": result.printed,
                    "fresh_process": result.fresh_process,
                },
            )
            if result.fresh_process:
                return
            del result, value
            above = baseline_rss + _COLLECT_ABOVE_MB
            if _peak_rss_mb() + _PEAK_SLACK_MB > above and _rss_mb() > above:  # a program left (cyclic) garbage
                gc.collect()
                if _rss_mb() > config.memory_mb - 128:  # what a program left must not fail the next one
                    return
    except (EOFError, BrokenPipeError):
        code = 0  # the parent went away
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which records a SandboxCrash
        code = 1
        try:
            _send(conn, {"op": "crash", "error": f"{type(e).__name__}: {e!s:.300}"})
        except BaseException:  # noqa: BLE001 - the pipe is gone too; the exit code says it
            pass
    finally:
        sys.stdout.flush()
        os._exit(code)
