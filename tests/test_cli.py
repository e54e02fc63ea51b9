"""run.py on bad input: one line on stderr naming the problem, exit code 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def cfg(tmp_path: Path, data) -> str:
    p = tmp_path / "cfg.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(p)


@pytest.mark.parametrize(
    "make_args, expected",
    [
        (lambda t: ["--config", str(t / "missing.json")], "config file not found"),
        (lambda t: ["--config", cfg(t, '{"dataset": "clevr",')], "is not valid JSON"),
        (lambda t: ["--config", cfg(t, {"datset": "clevr"})], "unknown config key 'datset' (did you mean 'dataset'?)"),
        (lambda t: ["--config", cfg(t, {}), "--num_smples", "3"], "did you mean 'num_samples'"),
        (lambda t: ["--config", cfg(t, {"dataset": "clever"})], "unknown dataset 'clever' (did you mean 'clevr'?)"),
        (lambda t: ["--config", cfg(t, {"dataset": "clevr", "data_path": str(t / "no_such_dir")})], "no_such_dir"),
        (lambda t: [], "the following arguments are required: --config"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, make_args, expected):
    proc = run_cli(*make_args(tmp_path), "--output_dir", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr
