"""A local OpenAI-compatible HTTP server for tests, and a pytest fixture that starts it.

The real ``openai`` client talks to it over 127.0.0.1. Tell it what to answer:

    server.script(reply("..."), error(429, retry_after=0.01), reply("..."))  # one action per request, in order
    server.responder = lambda body: reply(...)  # used when the script is empty
    server.on("blue cube", reply("..."))  # answer requests whose last message contains a text

Actions: :func:`reply` (a chat completion), :func:`error` (status + JSON error body,
optional Retry-After), :func:`raw` (any body, e.g. malformed JSON), :func:`delay`
(wait, then another action), :func:`disconnect` (close without answering).
``server.request_count`` and ``server.requests`` (the JSON bodies of chat requests) record
what came in, including requests from other processes; ``server.gets`` the paths of GETs.

Like a real server it answers only under ``/v1``: ``GET /v1/models`` lists ``server.models``
(None: 404, a server without a model list), ``POST /v1/chat/completions`` runs the actions;
any other path is a 404. ``server.api_key`` set: a request without that bearer key gets a 401.
A preflight check (a chat request carrying ``neptune_core.endpoints.PROBE_TEXT``) is answered
with ``server.probe_action`` (default: a reply "OK"; None: treat it like any request) before
the script, and counted in ``server.probe_count`` as well as in ``request_count``.
``server.stop()`` closes the port and every open connection (clients see a dead server);
``server.restart()`` serves again on the same port.

Use the fixture in a test module with ``from tests import fake_openai_server`` and
``fake_openai = fake_openai_server.fake_openai``, then take a ``fake_openai`` argument; or
start a :class:`FakeOpenAIServer` yourself.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from neptune_core.endpoints import PROBE_TEXT


@dataclass
class Action:
    """What the server does with one request."""

    kind: str  # "reply" | "error" | "raw" | "delay" | "disconnect"
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    then: Action | None = None


def reply(content: str | None, *, finish_reason: str = "stop", model: str = "fake-model") -> Action:
    """A 200 chat completion whose single choice holds ``content`` (None: a null content)."""
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    return Action("reply", 200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def error(status: int, message: str = "fake error", *, retry_after: float | str | None = None) -> Action:
    """An HTTP error with an OpenAI-style JSON body; ``retry_after`` sets the Retry-After header."""
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = {"error": {"message": message, "type": "fake", "code": status}}
    return Action("error", status, json.dumps(body).encode(), headers)


def raw(body: str | bytes, *, status: int = 200, content_type: str = "application/json") -> Action:
    """Any body with any status, e.g. malformed JSON."""
    data = body.encode() if isinstance(body, str) else body
    return Action("raw", status, data, {"Content-Type": content_type})


def delay(seconds: float, then: Action) -> Action:
    """Wait ``seconds`` before doing ``then`` (slower than a client timeout: the client gives up)."""
    return Action("delay", seconds=seconds, then=then)


def disconnect() -> Action:
    """Close the connection without an answer."""
    return Action("disconnect")


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last message of a chat request body ("" when there is none)."""
    messages = body.get("messages") or []
    return str(messages[-1].get("content", "")) if messages else ""


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 (random port) serving scripted actions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Action] = deque()
        self._rules: list[tuple[str, Action]] = []
        self.responder: Callable[[dict[str, Any]], Action] | None = None
        self.requests: list[dict[str, Any]] = []
        self.gets: list[str] = []
        self.models: list[str] | None = ["fake-model"]
        self.api_key: str | None = None
        self.probe_action: Action | None = reply("OK")
        self.probe_count = 0
        self.port: int | None = None
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- control --------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self.port is not None, "server not started"
        return f"http://127.0.0.1:{self.port}/v1"

    def sample_requests(self) -> list[dict[str, Any]]:
        """Chat requests that were not preflight checks."""
        with self._lock:
            return [b for b in self.requests if not is_probe(b)]

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def script(self, *actions: Action) -> None:
        """Queue actions, one per incoming request, before rules and the responder."""
        with self._lock:
            self._script.extend(actions)

    def on(self, text: str, action: Action) -> None:
        """Answer every request whose last message contains ``text`` with ``action``."""
        with self._lock:
            self._rules.append((text, action))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._rules.clear()
            self.requests.clear()
            self.gets.clear()
            self.probe_count = 0
            self.responder = None

    def _next_action(self, body: dict[str, Any]) -> Action:
        with self._lock:
            self.requests.append(body)
            if is_probe(body):
                self.probe_count += 1
                if self.probe_action is not None:
                    return self.probe_action
            if self._script:
                return self._script.popleft()
            text = last_user_text(body)
            for needle, action in self._rules:
                if needle in text:
                    return action
            responder = self.responder
        if responder is not None:
            return responder(body)
        return error(500, "fake server: nothing scripted for this request")

    # ---- lifecycle ------------------------------------------------------------------
    def start(self, port: int = 0) -> FakeOpenAIServer:
        """Serve on ``port`` (0: a free one; :meth:`restart` reuses the last)."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:  # closed by stop()
                    pass

            def _refused(self) -> Action | None:
                """A 404 outside /v1, a 401 without the right key; None when the request may go on."""
                path = self.path.split("?", 1)[0].rstrip("/")
                if path not in ("/v1/models", "/v1/chat/completions"):
                    return error(404, f"fake server: no route {self.path}")
                if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return error(401, "fake server: invalid API key")
                if (
                    self.command == "GET"
                    and path != "/v1/models"
                    or self.command == "POST"
                    and path != "/v1/chat/completions"
                ):
                    return error(404, f"fake server: no route {self.command} {self.path}")
                return None

            def _send(self, action: Action) -> None:
                if action.kind == "delay":
                    time.sleep(action.seconds)
                    assert action.then is not None
                    return self._send(action.then)
                if action.kind == "disconnect":
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(action.status)
                for k, v in action.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(action.body)))
                self.end_headers()
                self.wfile.write(action.body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                try:
                    body = json.loads(data or b"{}")
                except json.JSONDecodeError:
                    body = {"_unparsed": data.decode(errors="replace")}
                try:
                    refused = self._refused()
                    if refused is not None:
                        with server._lock:
                            server.requests.append(body)
                        return self._send(refused)
                    self._send(server._next_action(body))
                except OSError:  # the client gave up (timeout test), or stop() closed the connection
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                with server._lock:
                    server.gets.append(self.path)
                refused = self._refused()
                if refused is None and server.models is None:
                    refused = error(404, "fake server: no model list")
                if refused is not None:
                    return self._send(refused)
                data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in server.models or []]
                body = json.dumps({"object": "list", "data": data}).encode()
                self._send(Action("raw", 200, body, {"Content-Type": "application/json"}))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port and every open connection (safe to call from inside a responder)."""
        if self._httpd is not None:
            httpd, self._httpd = self._httpd, None
            httpd.shutdown()
            httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restart(self) -> FakeOpenAIServer:
        """Serve again on the port of the last start (script, rules and counters are kept)."""
        assert self.port is not None and self._httpd is None, "restart() follows stop()"
        return self.start(self.port)


def is_probe(body: dict[str, Any]) -> bool:
    """Whether a chat request body is a preflight check (it carries PROBE_TEXT)."""
    return PROBE_TEXT in json.dumps(body.get("messages") or [])


class InFlight:
    """A responder wrapper that holds each request ``seconds`` and records the peak number in flight."""

    def __init__(self, respond: Callable[[dict[str, Any]], Action], seconds: float = 0.05) -> None:
        self.respond = respond
        self.seconds = seconds
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Action:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.seconds)
        with self._lock:
            self.now -= 1
        return self.respond(body)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A fresh fake server on a free port for one test (starting one takes about a millisecond)."""
    server = FakeOpenAIServer().start()
    yield server
    server.stop()
