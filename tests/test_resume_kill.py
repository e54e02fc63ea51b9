"""A run SIGKILLed halfway, then the same command again: every sample exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_sigkill_then_rerun_completes_exactly_once(tmp_path):
    n = 240
    cmd = [
        sys.executable,
        str(ROOT / "run.py"),
        "--config",
        str(ROOT / "configs" / "clevr-mini-oracle.json"),
        "--num_samples",
        str(n),
        "--output_dir",
        str(tmp_path),
        "--run_name",
        "killed",
        "--report",
        "false",
    ]
    results = tmp_path / "killed" / "results.jsonl"
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 120
    while count_lines(results) < n // 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = count_lines(results)
    assert 0 < done_before < n, f"kill landed at {done_before} of {n} lines"

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    ids = [json.loads(line)["id"] for line in results.read_text().splitlines()]
    assert len(ids) == n and len(set(ids)) == n
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["num_samples"] == n and summary["accuracy"] == 100.0
