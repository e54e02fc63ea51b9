"""A small fork server for sandbox processes, shared by a run's worker processes.

The first process that needs a sandbox starts the server: ``python -c "...serve(address, fd)"``,
a fresh interpreter (it never inherits a parent's models, CUDA state or memory) that imports
neptune_core.executor.child (and so torch) once, then forks one sandbox process per request,
in milliseconds. It listens on a UNIX socket in a private temporary directory, whose address
goes into ``$NEPTUNE_SANDBOX_SERVER``: processes started later (run workers, subprocesses)
connect to the same server instead of importing torch again. Requests on a connection:
``("fork", pickled child arguments)`` returns the child's pid and one end of a new socket pair
(the child's only channel); ``("wait", pid, timeout_s)`` reaps a child and returns its exit status;
``("kill", pid, timeout_s)`` kills it first (the server alone knows the pid is not yet reaped).

The server exits when the process that started it closes its lifeline pipe (or dies); its
children are killed by the kernel when it exits (PR_SET_PDEATHSIG, set in the child). Unlike
``multiprocessing``'s fork server it never re-imports the parent's ``__main__`` in the children,
so a script that starts a run without ``if __name__ == "__main__"`` works.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ENV_ADDRESS = "NEPTUNE_SANDBOX_SERVER"
START_TIMEOUT_S = 120.0
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
_SERVER_ENV = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
_LENGTH = struct.Struct("!I")


def _send_msg(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    data = pickle.dumps(obj)
    if fds:
        socket.send_fds(sock, [_LENGTH.pack(len(data)) + data], fds)
    else:
        sock.sendall(_LENGTH.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv_msg(sock: socket.socket, with_fd: bool = False) -> tuple[Any, list[int]]:
    fds: list[int] = []
    if with_fd:
        head, fds, _, _ = socket.recv_fds(sock, _LENGTH.size, 1)
        if 0 < len(head) < _LENGTH.size:
            head = head + (_recv_exact(sock, _LENGTH.size - len(head)) or b"")
    else:
        head = _recv_exact(sock, _LENGTH.size) or b""
    if len(head) < _LENGTH.size:
        raise EOFError("fork server connection closed")
    (size,) = _LENGTH.unpack(head)
    data = _recv_exact(sock, size)
    if data is None:
        raise EOFError("fork server connection closed")
    return pickle.loads(data), fds


# ---- the server process --------------------------------------------------------------------
def serve(address: str, lifeline: int) -> None:
    """Main loop of the fork server process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)  # clients may connect (and wait) while the preload below runs
    from neptune_core.executor import child  # the preload: torch, the interpreter, the primitives

    child.prepare_server()
    statuses: dict[int, int] = {}  # exit statuses of reaped children not yet asked for
    children: set[int] = set()  # forked and not yet reported
    clients: list[socket.socket] = []
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(lifeline, selectors.EVENT_READ)

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            statuses[pid] = status

    def fork(conn: socket.socket, args: bytes) -> None:
        mine, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the sandbox process
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            selector.close()
            for s in (listener, mine, *clients):
                s.close()
            os.close(lifeline)
            child.child_main(Connection(theirs.detach()), *pickle.loads(args))
            os._exit(0)  # child_main exits itself; never reached
        theirs.close()
        children.add(pid)
        _send_msg(conn, pid, [mine.fileno()])
        mine.close()

    def wait(conn: socket.socket, pid: int, timeout_s: float, kill: bool = False) -> None:
        deadline = time.monotonic() + timeout_s
        reap()
        if kill and pid in children and pid not in statuses:  # not reaped yet: the pid is still this child's
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while pid not in statuses and time.monotonic() < deadline:
            time.sleep(0.002)
            reap()
        status = statuses.pop(pid, None)
        if status is not None:
            children.discard(pid)
        _send_msg(conn, status)

    while True:
        for key, _ in selector.select():
            if key.fileobj == lifeline:
                os._exit(0)  # the process that started the server is gone
            if key.fileobj is listener:
                conn, _ = listener.accept()
                clients.append(conn)
                selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                request, _ = _recv_msg(conn)
                if request[0] == "fork":
                    fork(conn, request[1])
                elif request[0] in ("wait", "kill"):
                    wait(conn, request[1], float(request[2]), kill=request[0] == "kill")
            except (EOFError, OSError, pickle.UnpicklingError, IndexError, TypeError, ValueError):
                selector.unregister(conn)
                clients.remove(conn)
                conn.close()
        reap()


# ---- a client's handle ---------------------------------------------------------------------
class ForkServer:
    """This process's connection to the fork server (see :func:`fork_server`)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None  # set when this process started the server
        self._lifeline: int | None = None
        self._dir: str | None = None
        self._booting: str | None = None  # the address of a server started but not connected to yet
        address = os.environ.get(ENV_ADDRESS, "")
        self.sock = self._connect(address, wait_s=0.0) if address else None
        if self.sock is None:
            self._start()

    def _start(self) -> None:
        """Start the server process; the connection is made when it is first needed (:meth:`ready`),
        so the server's start-up (importing torch) overlaps whatever this process does meanwhile."""
        self._dir = tempfile.mkdtemp(prefix="neptune-sandbox-")  # mode 0700: only this user connects
        address = os.path.join(self._dir, "server.sock")
        life_r, life_w = os.pipe()
        env = dict(os.environ, **_SERVER_ENV)
        env.pop(ENV_ADDRESS, None)
        env["PYTHONPATH"] = _REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        code = f"from neptune_core.executor.forkserver import serve; serve({address!r}, {life_r})"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=(life_r,), env=env, cwd=_REPO_ROOT, stdin=subprocess.DEVNULL
        )
        os.close(life_r)
        self._lifeline = life_w
        self._booting = address

    def ready(self) -> None:
        """Wait for a server this process started to accept connections (OSError if it does not)."""
        if self._booting is None:
            return
        address, self._booting = self._booting, None
        self.sock = self._connect(address, wait_s=START_TIMEOUT_S)
        if self.sock is None:
            self.close()
            raise OSError(f"the sandbox fork server did not start within {START_TIMEOUT_S:g} s")
        os.environ[ENV_ADDRESS] = address  # processes started from now on share this server

    def _connect(self, address: str, wait_s: float) -> socket.socket | None:
        deadline = time.monotonic() + wait_s
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(address)
                return sock
            except OSError:
                sock.close()
                if time.monotonic() >= deadline or (self.proc is not None and self.proc.poll() is not None):
                    return None
                time.sleep(0.01)

    def alive(self) -> bool:
        if self.pid != os.getpid() or (self.sock is None and self._booting is None):
            return False
        return self.proc is None or self.proc.poll() is None

    def fork(self, *args: Any) -> tuple[int, Connection]:
        """A new sandbox process running ``child_main(conn, *args)``: (pid, this process's end of its pipe)."""
        with self.lock:
            self.ready()
            if self.sock is None:
                raise OSError("the fork server connection is closed")
            _send_msg(self.sock, ("fork", pickle.dumps(args)))
            pid, fds = _recv_msg(self.sock, with_fd=True)
        if len(fds) != 1:
            raise OSError("the fork server did not pass the sandbox's pipe")
        return int(pid), Connection(fds[0])

    def wait(self, pid: int, timeout_s: float = 5.0, *, kill: bool = False) -> int | None:
        """Reap ``pid`` (a child of the server; ``kill``: SIGKILL it first, which only the server can do
        without racing a reused pid): its exit code (negative: killed by that signal), or None."""
        with self.lock:
            self.ready()
            if self.sock is None:
                raise OSError("the fork server connection is closed")
            _send_msg(self.sock, ("kill" if kill else "wait", pid, timeout_s))
            status, _ = _recv_msg(self.sock)
        return None if status is None else os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            if self._lifeline is not None:
                os.close(self._lifeline)
                self._lifeline = None
            if self._booting is not None:  # never used (e.g. the preflight failed): no need to wait for it
                self._booting = None
                self.proc.kill()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if os.environ.get(ENV_ADDRESS, "").startswith(self._dir or "\0"):
                os.environ.pop(ENV_ADDRESS, None)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


_server: ForkServer | None = None
_server_lock = threading.Lock()


def fork_server(fresh: bool = False) -> ForkServer:
    """This process's fork server connection, made on first use (and again if it failed, or ``fresh``)."""
    global _server
    with _server_lock:
        if _server is None or fresh or not _server.alive():
            if _server is not None and _server.pid == os.getpid():
                with contextlib.suppress(OSError):
                    _server.close()
            first = _server is None
            _server = ForkServer()
            if first:
                atexit.register(_close_server)
        return _server


def _close_server() -> None:
    if _server is not None and _server.pid == os.getpid():
        _server.close()
