"""A small fork server for sandbox processes.

``python -c "...serve(fd)"`` is started once per parent process (a fresh interpreter: it never
inherits the parent's models, CUDA state or memory), imports neptune_core.executor.child (and
so torch) once, then forks one sandbox process per request, in milliseconds. The parent talks
to it over a UNIX socket: ``("fork", pickled child arguments)`` returns the child's pid and one
end of a new socket pair (the child's only channel), ``("wait", pid, timeout_s)`` reaps a child
and returns its exit status. The server exits when the parent closes the socket (or dies); its
children are killed by the kernel when it exits (PR_SET_PDEATHSIG, set in the child).

Unlike ``multiprocessing``'s fork server this one never re-imports the parent's ``__main__``
in the children, so a script that starts a run without ``if __name__ == "__main__"`` works.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

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
        if len(head) < _LENGTH.size:
            rest = _recv_exact(sock, _LENGTH.size - len(head))
            head = head + (rest or b"")
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
def serve(fd: int) -> None:
    """Main loop of the fork server process (requests come only from the parent that started it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from neptune_core.executor import child  # the preload: torch, the interpreter, the primitives

    child.prepare_server()
    ctl = socket.socket(fileno=fd)
    statuses: dict[int, int] = {}

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            statuses[pid] = status

    while True:
        try:
            request, _ = _recv_msg(ctl)
        except (EOFError, OSError):
            return
        reap()
        if request[0] == "fork":
            mine, theirs = socket.socketpair()
            pid = os.fork()
            if pid == 0:  # the sandbox process
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                ctl.close()
                mine.close()
                child.child_main(Connection(theirs.detach()), *pickle.loads(request[1]))
                os._exit(0)  # child_main exits itself; this is never reached
            theirs.close()
            _send_msg(ctl, pid, [mine.fileno()])
            mine.close()
        elif request[0] == "wait":
            _, pid, timeout_s = request
            deadline = time.monotonic() + timeout_s
            while pid not in statuses and time.monotonic() < deadline:
                time.sleep(0.005)
                reap()
            _send_msg(ctl, statuses.pop(pid, None))


# ---- the parent's handle -------------------------------------------------------------------
class ForkServer:
    """The parent's connection to its fork server (one per parent process; see :func:`fork_server`)."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair()
        env = dict(os.environ, **_SERVER_ENV)
        env["PYTHONPATH"] = _REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        code = f"from neptune_core.executor.forkserver import serve; serve({theirs.fileno()})"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            pass_fds=(theirs.fileno(),),
            env=env,
            cwd=_REPO_ROOT,
            stdin=subprocess.DEVNULL,
            start_new_session=False,
        )
        theirs.close()
        self.sock = mine
        self.pid = os.getpid()
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None and self.pid == os.getpid()

    def fork(self, *args: Any) -> tuple[int, Connection]:
        """A new sandbox process running ``child_main(conn, *args)``: (pid, the parent's end of its pipe)."""
        with self.lock:
            _send_msg(self.sock, ("fork", pickle.dumps(args)))
            pid, fds = _recv_msg(self.sock, with_fd=True)
        if len(fds) != 1:
            raise OSError("the fork server did not pass the sandbox's pipe")
        return int(pid), Connection(fds[0])

    def wait(self, pid: int, timeout_s: float = 5.0) -> int | None:
        """Reap ``pid`` (a child of the server): its exit code (negative: killed by that signal), or None."""
        with self.lock:
            _send_msg(self.sock, ("wait", pid, timeout_s))
            status, _ = _recv_msg(self.sock)
        return None if status is None else os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_server: ForkServer | None = None
_server_lock = threading.Lock()


def fork_server() -> ForkServer:
    """This process's fork server, started on first use (and again if it died)."""
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            first = _server is None
            _server = ForkServer()
            if first:
                atexit.register(_close_server)
        return _server


def _close_server() -> None:
    if _server is not None and _server.pid == os.getpid():
        _server.close()
