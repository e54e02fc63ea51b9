"""Data-parallel runs: same results as one worker, resume after a killed worker, sharding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run
from neptune_core.config import RunConfig
from neptune_core.errors import UserError
from runners import RUNNERS
from runners import run_vqa_parallel as rvp
from runners.sharding import done_ids, merge_shards, partition, shard_files, shard_path
from tests.test_parallel_fakes import BrokenDataRunner, FakeRunner

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"dataset": "fake_parallel", "num_samples": 40, "max_failure_rate": 0.2}  # 1 in 11 programs is broken


@pytest.fixture(autouse=True)
def _register_fake() -> None:
    for name, cls in (("fake_parallel", FakeRunner), ("fake_broken", BrokenDataRunner)):
        if name not in RUNNERS:  # other test modules register some of them too
            RUNNERS.register(name)(cls)


def _config_file(tmp_path: Path) -> Path:
    p = tmp_path / "fake.json"
    p.write_text(json.dumps(CONFIG))
    return p


def _rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        r.pop("timings")
    return rows


def _write(path: Path, ids: list[str], partial: bool = False) -> None:
    with path.open("w") as f:
        for i in ids:
            f.write(json.dumps({"id": i, "pred": i}) + "\n")
        if partial:
            f.write('{"id": "cut')


# ---- sharding (fast) ------------------------------------------------------------------
def test_partition_is_deterministic_and_complete():
    items = list(range(23))
    parts = [partition(items, k, 3) for k in range(3)]
    assert sorted(x for p in parts for x in p) == items
    assert parts[1] == [1, 4, 7, 10, 13, 16, 19, 22]
    with pytest.raises(ValueError):
        partition(items, 3, 3)


def test_merge_orders_by_dataset_dedups_and_drops_partial_lines(tmp_path):
    _write(tmp_path / "results.jsonl", ["c", "a"])
    _write(shard_path(tmp_path, 0), ["b", "a", "e"], partial=True)
    _write(shard_path(tmp_path, 1), ["d", "x"])
    assert done_ids(tmp_path) == {"a", "b", "c", "d", "e", "x"}
    assert merge_shards(tmp_path, ["a", "b", "c", "d", "e"]) == 6
    ids = [json.loads(line)["id"] for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert ids == ["a", "b", "c", "d", "e", "x"]  # ids outside the dataset order are kept, last
    assert shard_files(tmp_path) == []


def test_plan_workers_gpus(monkeypatch):
    cfg = RunConfig(workers=3)
    cpu = rvp.plan_workers(cfg, None)
    assert [s.device for s in cpu] == ["cpu"] * 3 and all("CUDA_VISIBLE_DEVICES" not in s.env for s in cpu)
    monkeypatch.setattr(rvp, "_visible_gpus", lambda: ["4", "5", "6"])
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in rvp.plan_workers(cfg, [])] == ["4", "5", "6"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in rvp.plan_workers(cfg, [2, 0])] == ["6", "4"]
    with pytest.raises(UserError, match="only GPUs 0..2"):
        rvp.plan_workers(cfg, [3])
    monkeypatch.setattr(rvp, "_visible_gpus", lambda: [])
    with pytest.raises(UserError, match="no CUDA device"):
        rvp.plan_workers(cfg, [])


# ---- end to end through run.py (spawned workers) ---------------------------------------
@pytest.mark.slow
def test_two_workers_match_one_worker_sample_for_sample(tmp_path, capsys):
    cfg = _config_file(tmp_path)
    common = ["--config", str(cfg), "--output_dir", str(tmp_path), "--report", "false"]
    assert run.main([*common, "--run_name", "one", "--workers", "1"]) == 0
    assert run.main([*common, "--run_name", "two", "--workers", "2"]) == 0
    one, two = _rows(tmp_path / "one" / "results.jsonl"), _rows(tmp_path / "two" / "results.jsonl")
    assert [r["id"] for r in two] == [f"s{i:04d}" for i in range(40)]
    assert two == one
    assert {r["correct"] for r in one} == {True, False} and any(r["error"] for r in one)
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert (s1["accuracy"], s1["per_family"], s1["errors"]) == (s2["accuracy"], s2["per_family"], s2["errors"])
    assert shard_files(tmp_path / "two") == []
    # a rerun finds everything done and changes nothing
    before = (tmp_path / "two" / "results.jsonl").read_text()
    assert run.main([*common, "--run_name", "two", "--workers", "2"]) == 0
    assert (tmp_path / "two" / "results.jsonl").read_text() == before


def _workers_of(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids if "spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes().decode(errors="replace")]


@pytest.mark.slow
def test_worker_sigkilled_then_rerun_has_every_sample_once(tmp_path):
    cfg = _config_file(tmp_path)
    boot = (
        "import sys; from runners import RUNNERS; from tests.test_parallel_fakes import FakeRunner; "
        "RUNNERS.register('fake_parallel')(FakeRunner); import run; sys.exit(run.main(sys.argv[1:]))"
    )
    cmd = [
        sys.executable,
        "-c",
        boot,
        "--config",
        str(cfg),
        "--output_dir",
        str(tmp_path),
        "--run_name",
        "k",
        "--report",
        "false",
        "--workers",
        "2",
        "--num_samples",
        "60",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEPTUNE_FAKE_SLEEP_S": "0.05"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "k"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        lines = sum(p.read_bytes().count(b"\n") for p in shard_files(run_dir)) if run_dir.exists() else 0
        if lines >= 10:
            break
        time.sleep(0.02)
    workers = _workers_of(proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 workers failed: worker 1 (cpu) was killed by SIGKILL") and "rerun" in last
    partial = _rows(run_dir / "results.jsonl")
    assert 10 <= len(partial) < 60 and len({r["id"] for r in partial}) == len(partial)

    env.pop("NEPTUNE_FAKE_SLEEP_S")
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = _rows(run_dir / "results.jsonl")
    assert [r["id"] for r in rows] == [f"s{i:04d}" for i in range(60)]
    assert shard_files(run_dir) == []
    by_id = {r["id"]: r for r in partial}
    assert all(by_id[i] == r for r in rows if (i := r["id"]) in by_id)  # finished lines kept as they were
    assert json.loads((run_dir / "summary.json").read_text())["num_samples"] == 60


def test_gpus_without_a_gpu_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(rvp, "_visible_gpus", lambda: [])
    argv = ["--config", str(_config_file(tmp_path)), "--output_dir", str(tmp_path), "--gpus"]
    assert run.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --gpus was given but no CUDA device is visible") and "\n" not in err


@pytest.mark.slow
def test_real_pipeline_two_workers_match_one(tmp_path, capsys):
    """The synthetic CLEVR world with the scene oracle and translated programs, 1 vs 2 workers."""
    cfg = ROOT / "configs" / "clevr-mini-oracle.json"
    common = ["--config", str(cfg), "--output_dir", str(tmp_path), "--report", "false", "--num_samples", "60"]
    assert run.main([*common, "--run_name", "one"]) == 0
    assert run.main([*common, "--run_name", "two", "--workers", "2"]) == 0
    one, two = _rows(tmp_path / "one" / "results.jsonl"), _rows(tmp_path / "two" / "results.jsonl")
    assert len(one) == 60 and two == one


@pytest.mark.slow
def test_same_user_error_in_every_worker_is_reported_once(tmp_path, capsys):
    argv = [
        "--config",
        str(_config_file(tmp_path)),
        "--output_dir",
        str(tmp_path),
        "--workers",
        "2",
        "--dataset",
        "fake_broken",
    ]
    assert run.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: data_path /nowhere does not exist; set data_root"


@pytest.mark.slow
def test_ctrl_c_with_two_workers_is_one_line_and_loses_nothing(tmp_path):
    """Ctrl-C in a terminal signals the whole foreground process group: the parent and its workers."""
    cfg = _config_file(tmp_path)
    boot = (
        "import sys; from runners import RUNNERS; from tests.test_parallel_fakes import FakeRunner; "
        "RUNNERS.register('fake_parallel')(FakeRunner); import run; sys.exit(run.main(sys.argv[1:]))"
    )
    cmd = [sys.executable, "-c", boot, "--config", str(cfg), "--output_dir", str(tmp_path), "--run_name", "c"]
    cmd += ["--report", "false", "--workers", "2", "--num_samples", "60"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEPTUNE_FAKE_SLEEP_S": "0.05"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    run_dir = tmp_path / "c"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        lines = sum(p.read_bytes().count(b"\n") for p in shard_files(run_dir)) if run_dir.exists() else 0
        if lines >= 10:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    messages = [
        ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and "it/s" not in ln and "q/s" not in ln
    ]
    messages = [ln for ln in messages if not ln.startswith("fake_parallel x2 workers")]  # the progress bar
    assert messages == ["interrupted: finished samples are kept in results.jsonl; rerun the same command to resume"]
    partial = _rows(run_dir / "results.jsonl")
    assert 10 <= len(partial) < 60 and shard_files(run_dir) == []  # the shards were merged

    env.pop("NEPTUNE_FAKE_SLEEP_S")
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = _rows(run_dir / "results.jsonl")
    assert [r["id"] for r in rows] == [f"s{i:04d}" for i in range(60)]
    by_id = {r["id"]: r for r in partial}
    assert all(by_id[i] == r for r in rows if (i := r["id"]) in by_id)  # nothing finished was lost or redone
