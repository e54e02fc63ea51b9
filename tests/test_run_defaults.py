"""run.py's default worker layout: several visible GPUs -> one worker each, else one process."""

from __future__ import annotations

from pathlib import Path

import pytest

import run
import runners.run_vqa_parallel as parallel


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
