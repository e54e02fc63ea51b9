"""A local OpenAI-compatible HTTP server for tests, and a pytest fixture that starts it.

The real ``openai`` client talks to it over 127.0.0.1. Tell it what to answer:

    server.script(reply("..."), error(429, retry_after=0.01), reply("..."))  # one action per request, in order
    server.responder = lambda body: reply(...)  # used when the script is empty
    server.on("blue cube", reply("..."))  # answer requests whose last message contains a text

Actions: :func:`reply` (a chat completion), :func:`error` (status + JSON error body,
optional Retry-After), :func:`raw` (any body, e.g. malformed JSON), :func:`delay`
(wait, then another action), :func:`disconnect` (close without answering).
``server.request_count`` and ``server.requests`` (the JSON bodies) record what came in,
including requests from other processes. Use the fixture in a test module with
``from tests import fake_openai_server`` and ``fake_openai = fake_openai_server.fake_openai``,
then take a ``fake_openai`` argument; or start a :class:`FakeOpenAIServer` yourself.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


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
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- control --------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

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
            self.responder = None

    def _next_action(self, body: dict[str, Any]) -> Action:
        with self._lock:
            self.requests.append(body)
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
    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

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
                    self._send(server._next_action(body))
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}).encode()
                self._send(Action("raw", 200, body, {"Content-Type": "application/json"}))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


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
