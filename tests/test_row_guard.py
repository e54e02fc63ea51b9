"""Bounded rows (runners/row_guard.py), the isolation setting, and the sandbox's lifecycle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neptune_core.config import ExecutorConfig, load_config
from neptune_core.errors import ConfigError
from neptune_core.text import clean_text
from probabilistic_tensor import Semantics
from runners.results import ResultsWriter, read_results
from runners.row_guard import bound_row, json_line
from vision_agents.base import VisionAgent

ROOT = Path(__file__).resolve().parent.parent


def test_clean_text_joins_pairs_and_replaces_lone_surrogates() -> None:
    assert clean_text("plain") == "plain"
    assert clean_text("\ud83d\ude00") == "\U0001f600"  # a pair written as two code points
    assert clean_text("a\ud800b\udfff") == "a\ufffdb\ufffd"


def test_bound_row_passes_ordinary_rows_through_unchanged() -> None:
    row = {"id": "a", "pred": "yes", "trace": [{"primitive": "score", "probs": [0.5, 0.25]}], "error": None}
    assert bound_row(row, 10_000) is row


def test_bound_row_measures_the_text_the_writer_writes() -> None:
    # non-ASCII text is written escaped (six characters each): the size cap counts those
    row = {"id": "a", "pred": "\u00e9" * 1000, "trace": []}
    assert bound_row(row, 2_000)["error"]["type"] == "RowNotWritable"  # 1000 characters, 6000 as written
    assert bound_row(row, 7_000) is row
    assert len(json_line(row)) <= 7_000
    circular: dict = {"id": "c", "trace": []}
    circular["self"] = circular
    assert bound_row(circular, 10_000)["error"]["type"] == "RowNotWritable"


def test_bound_row_cleans_text_and_numbers() -> None:
    row = {"id": "a", "pred": "x\ud800", "trace": [{"info": {"p": np.float32(0.5), "t": torch.tensor([1.0, 2.0])}}]}
    out = bound_row(row, 10_000)
    assert out["pred"] == "x\ufffd" and out["trace"][0]["info"] == {"p": 0.5, "t": [1.0, 2.0]}
    json.dumps(out).encode("utf-8")


def test_bound_row_shrinks_the_trace_then_strings_then_gives_up() -> None:
    trace = [{"primitive": "score", "question": "q" * 100, "probs": [0.5] * 50}] * 200
    out = bound_row({"id": "big", "gold": "g", "trace": trace}, 20_000)
    assert len(json.dumps(out)) <= 20_000
    assert out["trace"][-1]["primitive"] == "truncated" and out["trace"][-1]["omitted"] + len(out["trace"]) - 1 == 200
    out = bound_row({"id": "long", "question": "q" * 50_000, "trace": []}, 20_000)
    assert len(out["question"]) < 2_100 and "more characters" in out["question"]
    out = bound_row({"id": "wide", "gold": "g", "x": ["y" * 1000] * 100}, 20_000)
    assert out["error"]["type"] == "RowNotWritable" and out["id"] == "wide" and out["gold"] == "g"


def test_unwritable_rows_become_error_rows_in_the_file(tmp_path) -> None:
    bad = {"id": "bad", "question": "q", "gold": "yes", "value": object()}
    out = bound_row(bad, 10_000)
    assert out["error"]["type"] == "RowNotWritable" and "type object" in out["error"]["message"]
    with ResultsWriter(tmp_path / "results.jsonl") as writer:
        writer.write(bad)  # a row that skipped bound_row still cannot stop the loop
        writer.write({"id": "good", "pred": "\udcff"})
    rows, dropped = read_results(tmp_path / "results.jsonl")
    assert dropped == 0 and [r["id"] for r in rows] == ["bad", "good"]
    assert rows[0]["error"]["stage"] == "record" and rows[1]["pred"] == "\ufffd"
    assert json.loads(json_line({"id": "x", "v": float("nan")}))["id"] == "x"


def test_isolation_setting() -> None:
    assert ExecutorConfig().isolation == "process"
    assert load_config(None, {"executor.isolation": "in_process"}).executor.isolation == "in_process"
    with pytest.raises(ConfigError, match="executor.isolation must be one of process, in_process"):
        load_config(None, {"executor.isolation": "thread"})
    a = load_config(None, {"executor.isolation": "in_process"})
    assert a.config_hash() == load_config(None).config_hash()  # where programs run changes no result


class _Agent(VisionAgent):
    def score(self, image, boxes, questions, arity):
        return torch.full((len(questions),) + (len(boxes),) * arity, 0.75)

    def answer(self, image, box, question):
        return "red"


def test_an_idle_sandbox_that_died_is_replaced_without_charging_the_next_sample() -> None:
    from neptune_core.executor import Executor

    executor = Executor(ExecutorConfig(), Semantics())
    try:
        executor.start()
        first = executor.sandbox.pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not executor.sandbox._conn.poll(0):  # dead: its pipe closed
            time.sleep(0.01)
        out = executor.run(
            "def execute(score, query, n):\n    return score('q', 0)\n", _Agent(), Image.new("RGB", (4, 4)), []
        )
        assert out.error is None and out.value.item() == 0.75
        assert executor.sandbox.pid != first and executor.sandbox.starts == 2
    finally:
        executor.close()


def test_worker_processes_share_the_fork_server() -> None:
    """A process started after the fork server (a run worker, a subprocess) connects to it."""
    from neptune_core.executor.forkserver import ENV_ADDRESS, fork_server

    server = fork_server()
    assert os.environ[ENV_ADDRESS] and os.path.exists(os.environ[ENV_ADDRESS])
    code = (
        "from neptune_core.executor.forkserver import fork_server\n"
        "from neptune_core.executor import Executor\n"
        "from neptune_core.config import ExecutorConfig\n"
        "from probabilistic_tensor import Semantics\n"
        "e = Executor(ExecutorConfig(), Semantics()); e.start()\n"
        "print('own server' if fork_server().proc is not None else 'shared server'); e.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "shared server"
    assert server.alive()
