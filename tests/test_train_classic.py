"""Fine-tuning the classic agent's heads through programs, the program losses, and resuming a killed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from local_datasets.synthetic.world import iter_samples
from neptune_core.config import ExecutorConfig, RunConfig, SyntheticConfig, TrainConfig, load_config
from neptune_core.errors import ConfigError, UserError
from neptune_core.executor import Executor
from probabilistic_tensor import ProbabilisticTensor, Semantics
from runners.base import Runner
from runners.train import ProgramTrainer, training_config
from runners.train_losses import AnswerRecord, AnswerTape, program_loss
from vision_agents.base import MemoizedAgent
from vision_agents.classic_agent import ClassicAgent
from vision_agents.classic_heads import ClassicHeads, load_params
from vision_agents.tuning import tuner_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one torch thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scene_samples():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(iter_samples(SyntheticConfig(num_scenes=2, questions_per_scene=10, seed=3), "train"))


def test_heads_round_trip_through_json(tmp_path, scene_samples):
    fitted = load_params("fitted")
    heads = ClassicHeads.load("fitted")
    params = heads.to_params()
    for attr in ("color", "shape", "material", "size"):
        assert params[attr]["weights"] == fitted[attr]["weights"] and params[attr]["values"] == fitted[attr]["values"]
    path = heads.save(tmp_path / "heads.json")
    sample = scene_samples[0]
    image, boxes = sample.load_image(), sample.boxes
    questions = [
        "Is the object in the red box red?",
        "Is the object in the red box left of the object in the green box?",
    ]
    a, b = ClassicAgent(heads), ClassicAgent(ClassicHeads.load(str(path)))
    assert torch.equal(a.score(image, boxes, questions[:1], 1), b.score(image, boxes, questions[:1], 1))
    assert torch.equal(a.score(image, boxes, questions[1:], 2), b.score(image, boxes, questions[1:], 2))
    cfg = RunConfig(vlm_model_name="classic", vlm_adapter=str(path), classic_params="weak")
    assert ClassicAgent.from_config(cfg).heads.to_params()["color"] == params["color"]  # the adapter wins
    with pytest.raises(UserError, match="not found"):
        ClassicHeads.load(str(tmp_path / "missing.json"))


def test_program_gradients_reach_exactly_the_heads_the_program_uses(scene_samples):
    sample = scene_samples[0]
    program = (
        "def execute(score, query, n):\n"
        '    cube = score("Is the object in the red box a cube?", 1)\n'
        '    left = score("Is the object in the red box left of the object in the green box?", 2)\n'
        '    return left.contract(cube.iota()("y")).count()\n'
    )
    agent = ClassicAgent(ClassicHeads.load("weak"))
    executor = Executor(ExecutorConfig(), Semantics(), isolation="in_process")  # gradients need in-process
    out = executor.run(program, MemoizedAgent(agent), sample.load_image(), sample.boxes)
    assert out.error is None, out.error
    out.value.data.backward()
    heads = agent.heads
    assert float(heads.relations.weight.grad.abs().sum()) > 0
    assert float(heads.attributes["shape"].weight.grad.abs().sum()) > 0
    assert heads.attributes["color"].weight.grad is None  # the program never asks about colour


def test_vocabulary_beyond_the_heads_is_fixed_and_reported_while_training(scene_samples):
    """CLEVR words on a CLEVR floor (also "square" = cube) train the heads; words the heads do not model
    (an extra colour, a flat figure) are constants; an unknown word is p = 0.5, on the trace, no gradient."""
    from tests.fixtures.own_data import IMAGES, draw
    from vision_agents.classic_detector import ClassicDetector

    sample = scene_samples[0]
    image, boxes = sample.load_image(), sample.boxes
    agent = ClassicAgent(ClassicHeads.load("weak"))
    questions = ["Is this a square?", "Is this object orange?", "Is this a triangle?", "Is this a hexagon?"]
    p, infos = agent.score_with_info(image, boxes, questions, 1)
    assert infos == [{}, {}, {}, {"unknown_concepts": ["hexagon"]}] and (p[3] == 0.5).all()
    cube = agent.score(image, boxes, ["Is the object in the red box a cube?"], 1)[0]
    assert torch.equal(p[0], cube)  # "square" on a CLEVR floor is the cube head
    p[0].sum().backward()
    assert float(agent.heads.attributes["shape"].weight.grad.abs().sum()) > 0
    assert not agent.score(image, boxes, questions[1:], 1).requires_grad  # the rest are constants
    negated = agent.logits(image, boxes, ["Is the object in the red box not a cube?"], 1)[0]
    assert torch.equal(negated, -agent.logits(image, boxes, ["Is the object in the red box a cube?"], 1)[0])

    drawing = draw(*IMAGES["paper"])  # off a CLEVR floor: figure answers are not the heads' to learn
    box = ClassicDetector().detect(drawing, []).boxes[0]
    values, lp = agent.answer_log_probs(drawing, box, "What shape is this object?")
    assert not lp.requires_grad and agent.answer(drawing, box, "What shape is this object?") == values[int(lp.argmax())]
    assert agent.answer_log_probs(drawing, box, "What size is this object?") is None
    assert agent.answer_log_probs(image, boxes[0], "What shape is the object in the red box?")[1].requires_grad


def _pt(data, kind="prob"):
    return ProbabilisticTensor(torch.tensor(data, requires_grad=True), kind=kind)


def test_program_losses_by_answer_kind():
    boxes = [[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [40.0, 0.0, 50.0, 10.0]]
    dist = _pt([0.2, 0.5, 0.3])
    r = program_loss(dist, [21.0, 21.0, 31.0, 31.0], boxes, [])
    assert r.kind == "box" and r.detail["target"] == 1
    assert abs(r.loss.item() - (-torch.log(torch.tensor(0.5)).item())) < 1e-6
    assert program_loss(dist, [100.0, 100.0, 120.0, 120.0], boxes, []).kind == "no_matching_box"
    yes = program_loss(_pt(0.8), "yes", boxes, [])
    assert yes.kind == "yes_no" and abs(yes.loss.item() + torch.log(torch.tensor(0.8)).item()) < 1e-6
    no = program_loss(_pt(0.8), "no", boxes, [])
    assert abs(no.loss.item() + torch.log(torch.tensor(0.2)).item()) < 1e-5
    count = program_loss(_pt(2.6, "number"), "4", boxes, [])
    assert count.kind == "count" and abs(count.loss.item() - (1.4 - 0.5)) < 1e-6  # Huber beyond delta 1
    lp = torch.log_softmax(torch.tensor([1.0, 2.0, 0.5], requires_grad=True), 0)
    rec = AnswerRecord("What shape is it?", "sphere", ["cube", "sphere", "cylinder"], lp)
    attr = program_loss("sphere", "cube", boxes, [rec])
    assert attr.kind == "attribute" and abs(attr.loss.item() + lp[0].item()) < 1e-6
    assert program_loss("sphere", "cone", boxes, [rec]).kind == "gold_not_a_candidate"
    assert program_loss("sphere", "cube", boxes, [AnswerRecord("q", "sphere")]).kind == "query_not_scored"
    assert program_loss(True, "yes", boxes, []).kind == "not_differentiable"
    assert program_loss(ProbabilisticTensor(torch.tensor(0.7)), "yes", boxes, []).kind == "no_gradient"
    assert program_loss(_pt(0.7), "cube", boxes, []).kind == "answer_kind_mismatch"


def test_answer_tape_records_distributions(scene_samples):
    sample = scene_samples[0]
    agent = ClassicAgent(ClassicHeads.load("weak"))
    tape = AnswerTape(MemoizedAgent(agent), agent.answer_log_probs)
    ans = tape.answer(sample.load_image(), sample.boxes[0], "What color is the object in the red box?")
    (rec,) = tape.records
    assert rec.answer == ans and rec.candidates[int(rec.log_probs.argmax())] == ans
    assert rec.log_probs.requires_grad and abs(rec.log_probs.detach().exp().sum().item() - 1) < 1e-9


def _tune_config(tmp_path: Path, **train) -> RunConfig:
    overrides = {
        "synthetic.num_scenes": "1",
        "train.num_scenes": "3",
        "train.epochs": "2",
        "train.grad_accum": "8",
        "train.evaluate_before": "false",
        "output_dir": str(tmp_path),
        **{f"train.{k}": v for k, v in train.items()},
    }
    return load_config(ROOT / "configs" / "demo-tune.json", overrides)


def test_training_lowers_the_loss_and_checkpoints_each_epoch(tmp_path):
    config = _tune_config(tmp_path, epochs="3", keep_checkpoints="2")
    runner = Runner(config)
    trainer = ProgramTrainer(runner, tmp_path / "run")
    from local_datasets import load_samples

    history = trainer.train(load_samples(training_config(config)))
    losses = [e["loss"] for e in history["epochs"]]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert set(history["loss_kinds"]) <= {"yes_no", "count", "attribute"} and history["loss_kinds"]["yes_no"] > 0
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["epoch_002.pt", "epoch_003.pt"]
    state = torch.load(tmp_path / "run" / "checkpoints" / "epoch_003.pt", weights_only=True)
    assert {"tuner", "optimizer", "scheduler", "rng", "history"} <= set(state) and state["epoch"] == 3


def test_bad_training_setups_fail_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="train.split"):
        training_config(RunConfig(split="train", train=TrainConfig(split="train")))
    with pytest.raises(UserError, match="no trainable parameters"):
        tuner_for(MemoizedAgent(__import__("vision_agents.oracle", fromlist=["x"]).SceneOracleAgent()), TrainConfig())
    with pytest.raises(ConfigError, match="lora"):
        tuner_for(ClassicAgent(), TrainConfig(method="lora"))
    with pytest.raises(ConfigError, match="match no parameter"):
        tuner_for(ClassicAgent(), TrainConfig(method="subset", parameters=["nothing"]))
    subset = tuner_for(ClassicAgent(), TrainConfig(method="subset", parameters=[r"^relations\."]))
    assert [n for n, _ in subset.named_trainable()] == ["relations.weight"]


def _run_cmd(tmp_path: Path, name: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "run.py"),
        "--config",
        str(ROOT / "configs" / "demo-tune.json"),
        "--synthetic.num_scenes",
        "1",
        "--train.num_scenes",
        "4",
        "--train.epochs",
        "4",
        "--train.grad_accum",
        "8",
        "--train.evaluate_before",
        "false",
        "--train.torch_threads",
        "1",
        "--report",
        "false",
        "--output_dir",
        str(tmp_path),
        "--run_name",
        name,
    ]


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_final_loss(tmp_path):
    """SIGKILL after the first epoch checkpoint, rerun: the same losses and weights as an uninterrupted run."""
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _run_cmd(tmp_path, "killed"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    first = killed / "checkpoints" / "epoch_001.pt"
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the run ended or timed out before its first checkpoint"
    assert not (killed / "training.json").exists(), "the kill landed after training had finished"
    assert not (killed / "checkpoints" / "epoch_004.pt").exists()

    again = subprocess.run(_run_cmd(tmp_path, "killed"), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    whole = subprocess.run(_run_cmd(tmp_path, "whole"), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]

    a = json.loads((killed / "training.json").read_text())
    b = json.loads((tmp_path / "whole" / "training.json").read_text())
    assert len(a["history"]["steps"]) == len(b["history"]["steps"]) == 4 * 5
    assert abs(a["final_loss"] - b["final_loss"]) <= 1e-6  # the stated tolerance; in practice bit-identical
    assert [s["loss"] for s in a["history"]["steps"]] == pytest.approx(
        [s["loss"] for s in b["history"]["steps"]], abs=1e-6
    )
    wa = ClassicHeads.load(str(killed / "tuned" / "classic_params.json")).state_dict()
    wb = ClassicHeads.load(str(tmp_path / "whole" / "tuned" / "classic_params.json")).state_dict()
    assert wa.keys() == wb.keys()
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= 1e-9
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["accuracy_after"] == summary["accuracy"] and summary["accuracy_before"] is None
