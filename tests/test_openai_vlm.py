"""OpenAIVisionAgent against a local fake OpenAI-compatible server (real ``openai`` client).

The server decodes every image, answers with logprobs chosen per question, and can be
scripted to fail (429, 500, a reply slower than the client's timeout) before answering.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
import torch
from PIL import Image

from neptune_core.config import RunConfig
from neptune_core.errors import ConfigError
from vision_agents.marking import SUBJECT_COLOR
from vision_agents.openai_vlm import OpenAIVisionAgent, p_yes_from_top_logprobs

# question -> top logprobs of the first token, as the server returns them
TOP: dict[str, list[tuple[str, float]]] = {
    "Is it red?": [("Yes", math.log(0.6)), (" yes", math.log(0.1)), ("No", math.log(0.2)), ("Maybe", math.log(0.05))],
    "Is it blue?": [("No", math.log(0.7)), ("yes", math.log(0.1)), (" NO", math.log(0.15))],
    "Is it round?": [("Perhaps", math.log(0.9))],
}


class FakeServer:
    def __init__(self) -> None:
        self.failures: list[str] = []  # "429" | "500" | "slow", consumed one per request
        self.lock = threading.Lock()
        self.chat_requests = 0
        self.images: list[Image.Image] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self.slow_s = 1.0


def make_handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left ("slow")
                pass

        def do_GET(self) -> None:
            self._send(
                200, {"object": "list", "data": [{"id": "fake-vlm", "object": "model", "created": 0, "owned_by": "t"}]}
            )

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.chat_requests += 1
                action = state.failures.pop(0) if state.failures else "ok"
                state._in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state._in_flight)
            try:
                time.sleep(0.02)
                if action == "429":
                    return self._send(429, {"error": {"message": "slow down", "type": "rate_limit"}})
                if action == "500":
                    return self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                if action == "slow":
                    time.sleep(state.slow_s)
                content = body["messages"][0]["content"]
                url = content[0]["image_url"]["url"]
                assert url.startswith("data:image/png;base64,")
                image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
                question = content[1]["text"]
                with state.lock:
                    state.images.append(image)
                top = TOP.get(question, [("red", 0.0)])
                tok, lp = top[0]
                choice: dict[str, Any] = {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": tok},
                }
                if body.get("logprobs"):
                    n = body["top_logprobs"]
                    tops = [{"token": t, "logprob": v, "bytes": None} for t, v in top[:n]]
                    choice["logprobs"] = {
                        "content": [{"token": tok, "logprob": lp, "bytes": None, "top_logprobs": tops}]
                    }
                self._send(
                    200,
                    {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [choice]},
                )
            finally:
                with state.lock:
                    state._in_flight -= 1

    return Handler


@pytest.fixture()
def server() -> Iterator[tuple[FakeServer, str]]:
    state = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def agent_for(url: str, **kw: Any) -> OpenAIVisionAgent:
    kw = {"timeout_s": 0.5, "retries": 3, "backoff_s": 0.01, **kw}
    return OpenAIVisionAgent(url, **kw)


IMAGE = Image.new("RGB", (80, 60), (40, 40, 40))
BOXES = [[5, 5, 30, 30], [40, 10, 70, 50], [10, 35, 35, 55]]


def test_p_yes_recovered_exactly(server: tuple[FakeServer, str]) -> None:
    state, url = server
    agent = agent_for(url, concurrency=4)
    out = agent.score(IMAGE, BOXES, ["Is it red?", "Is it blue?", "Is it round?"], 1)
    assert out.shape == (3, 3)
    assert torch.allclose(out[0], torch.full((3,), 0.7 / 0.9), atol=1e-7)  # (0.6 + 0.1) / (0.6 + 0.1 + 0.2)
    assert torch.allclose(out[1], torch.full((3,), 0.1 / 0.95), atol=1e-7)  # 0.1 / (0.1 + 0.7 + 0.15)
    assert torch.all(out[2] == 0.5)  # no yes/no token in the top list
    assert agent.model == "fake-vlm" and state.chat_requests == 9
    assert 1 < state.max_in_flight <= 4  # concurrent, bounded by the pool
    # each request carried its own marked image
    assert sum(im.getpixel((5, 15)) == SUBJECT_COLOR for im in state.images) == 3


def test_no_yes_no_evidence_is_said_on_the_trace_info(server: tuple[FakeServer, str]) -> None:
    """A question whose top tokens hold neither yes nor no gets 0.5 and says so; the others say nothing."""
    _, url = server
    agent = agent_for(url, top_logprobs=5)
    out, infos = agent.score_with_info(IMAGE, BOXES, ["Is it red?", "Is it round?"], 1)
    assert torch.all(out[1] == 0.5) and infos[0] == {}
    assert infos[1] == {"unknown_concepts": ["no yes/no token in the top 5 logprobs (3 of 3): Is it round?"]}
    pairs = [(BOXES[0], BOXES[1]), (BOXES[1], BOXES[1])]  # the second is a diagonal: 0, not asked
    rel, infos = agent.score_tuples_with_info(IMAGE, pairs, ["Is it round?", "Is it blue?"], 2)
    assert rel.tolist() == [[0.5, 0.0], [pytest.approx(0.1 / 0.95), 0.0]]
    assert infos == [{"unknown_concepts": ["no yes/no token in the top 5 logprobs (1 of 1): Is it round?"]}, {}]


def test_arity_0_and_2_layout(server: tuple[FakeServer, str]) -> None:
    state, url = server
    agent = agent_for(url)
    assert agent.score(IMAGE, BOXES, ["Is it red?"], 0).tolist() == pytest.approx([0.7 / 0.9])
    rel = agent.score(IMAGE, BOXES, ["Is it blue?"], 2)
    assert rel.shape == (1, 3, 3) and torch.all(rel[0].diagonal() == 0)
    assert torch.allclose(rel[0][~torch.eye(3, dtype=torch.bool)], torch.tensor(0.1 / 0.95))
    assert state.chat_requests == 1 + 6


@pytest.mark.parametrize("failures", [["429"], ["500", "500"], ["slow"], ["429", "slow", "500"]])
def test_transient_failures_are_retried(server: tuple[FakeServer, str], failures: list[str]) -> None:
    state, url = server
    agent = agent_for(url, concurrency=1)
    agent._model_name()
    state.failures = list(failures)
    out = agent.score(IMAGE, BOXES[:1], ["Is it red?"], 1)
    assert out.shape == (1, 1) and out[0, 0].item() == pytest.approx(0.7 / 0.9)
    assert state.chat_requests == len(failures) + 1


def test_retries_exhausted_raise(server: tuple[FakeServer, str]) -> None:
    state, url = server
    agent = agent_for(url, retries=1)
    agent._model_name()
    state.failures = ["500", "500", "500"]
    with pytest.raises(openai.InternalServerError):
        agent.score(IMAGE, BOXES[:1], ["Is it red?"], 1)
    assert state.chat_requests == 2


def test_answer_and_config(server: tuple[FakeServer, str]) -> None:
    _, url = server
    agent = OpenAIVisionAgent.from_config(RunConfig(vlm_model_name="intern_vllm", vlm_base_url=url, vlm_batch_size=3))
    assert agent.concurrency == 3 and agent.name == "intern_vllm"
    assert agent.answer(IMAGE, BOXES[0], "What color?") == "red"
    with pytest.raises(ConfigError, match="vlm_base_url"):
        OpenAIVisionAgent.from_config(RunConfig(vlm_model_name="intern_vllm"))


def test_p_yes_from_top_logprobs_pure() -> None:
    assert p_yes_from_top_logprobs([("Yes", math.log(0.3)), ("no", math.log(0.1))]) == pytest.approx(0.75)
    assert p_yes_from_top_logprobs([("YES", -1.0)]) == 1.0
