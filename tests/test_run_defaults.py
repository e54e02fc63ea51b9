"""run.py's default worker layout: several visible GPUs -> one worker each, else one process."""

from __future__ import annotations

from pathlib import Path

import pytest

import run
import runners.run_vqa_parallel as parallel
from runners.outcomes import DEGRADED_EXIT_CODE


@pytest.mark.parametrize("devices, extra, expected", [(2, [], []), (1, [], None), (2, ["--gpus", "1"], [1]),
                                                      (2, ["--device", "cpu"], None)])  # fmt: skip
def test_gpu_default(tmp_path, monkeypatch, devices, extra, expected):
    calls: list = []

    def fake_parallel(config, run_dir, gpus=None, **kw):  # noqa: ANN003
        calls.append(gpus)
        return {"accuracy": None, "correct": 0, "total": 0, "per_family": {}, "errors": {"total": 0},
                "timings": {}}  # fmt: skip

    monkeypatch.setattr(run, "_cuda_devices", lambda: devices)
    monkeypatch.setattr(parallel, "run_parallel", fake_parallel)
    argv = ["--config", str(Path(__file__).resolve().parent.parent / "configs" / "clevr-mini-oracle.json"), "--num_samples", "2", "--report", "false",
            "--output_dir", str(tmp_path), *extra]  # fmt: skip
    assert run.main(argv) == 0
    assert calls == ([] if expected is None else [expected])


def test_training_runs_in_one_process_on_several_gpus(tmp_path, monkeypatch, capsys):
    import runners.train as train

    trained: list = []
    degraded = False

    def fake_train(runner, run_dir):  # noqa: ANN001, ANN202
        trained.append(run_dir)
        return {"accuracy": None, "correct": 0, "total": 0, "per_family": {}, "errors": {"total": 0}, "timings": {},
                "training": {"degraded": degraded, "skipped": {"error:execute:X": 9}}}  # fmt: skip

    def no_parallel(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a training run must not start workers")

    monkeypatch.setattr(run, "_cuda_devices", lambda: 2)
    monkeypatch.setattr(parallel, "run_parallel", no_parallel)
    monkeypatch.setattr(train, "train_and_evaluate", fake_train)
    argv = ["--config", str(Path(__file__).resolve().parent.parent / "configs" / "clevr-mini-oracle.json"), "--train",
            "--report", "false", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    assert run.main(argv) == 0 and len(trained) == 1  # two visible GPUs: still one process
    assert run.main([*argv, "--gpus", "0", "1"]) == 2  # asking for workers: one line, before any work
    assert capsys.readouterr().err.strip().endswith("training runs in one process: drop --workers / --gpus / --cluster "
                                                    "ray (pick the device with --device)")  # fmt: skip
    assert len(trained) == 1
    degraded = True  # many training samples failed: the run says so and exits like any degraded run
    assert run.main(argv) == DEGRADED_EXIT_CODE == 3
    assert "degraded training: many training samples failed" in capsys.readouterr().err
