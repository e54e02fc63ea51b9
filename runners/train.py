"""Fine-tuning through programs: the loop's program and execute stages, in-process, with gradients.

    python run.py --config configs/demo-tune.json        # or any config plus --train

A run with ``train.enabled`` (:func:`train_and_evaluate`):

1. evaluates the untrained model on the evaluation split into ``run_dir/before/``;
2. trains on ``train.split``: for each sample the runner's own generator gives the
   program (cache, LLM or translator), its detector the boxes (kept per image), and its
   executor runs the program against the agent in-process with autograd on; the
   program's soft output against the gold answer gives the loss
   (:mod:`runners.train_losses`); AdamW, warm-up and decay (``transformers.get_scheduler``),
   ``train.grad_accum`` samples per optimizer step, gradient clipping, bf16 autocast on
   CUDA, gradient checkpointing as an option;
3. after every epoch writes ``run_dir/checkpoints/epoch_NNN.pt`` (trainable state,
   optimizer, scheduler, RNG, loss history): rerunning a killed run resumes from the
   newest one and ends exactly where an uninterrupted run ends;
4. saves the trained weights in ``run_dir/tuned/`` (``vlm_adapter`` loads them back),
   evaluates them into ``run_dir/results.jsonl``, draws the loss curve
   (``run_dir/training_loss.png``) and records ``accuracy_before`` / ``accuracy_after`` (percent)
   and the training time in ``summary.json`` (details in ``run_dir/training.json``).

The model side is a :class:`vision_agents.tuning.Tuner` (the agent's ``make_tuner``): the
classic agent's heads, or LoRA adapters (peft) on a transformers VLM's language model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from local_datasets import load_samples
from neptune_core.config import RunConfig
from neptune_core.errors import ConfigError, UserError
from neptune_core.executor import Executor
from neptune_core.types import Detection, ErrorRecord, Program, Sample
from runners.base import Runner
from runners.train_losses import AnswerTape, LossResult, program_loss
from vision_agents.tuning import Tuner, tuner_for

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
DEGRADED_ERROR_SHARE = 0.1  # more failed training samples than this: the run says it is degraded
_CKPT = re.compile(r"^epoch_(\d{3,})\.pt$")


def training_config(config: RunConfig) -> RunConfig:
    """The config that loads the training split (same dataset, ``train.split``, ``train.num_samples``)."""
    tc = config.train
    if tc.split == config.split:
        raise ConfigError(
            f"train.split and split are both '{config.split}': the evaluation would see the training data; "
            "set train.split to the training split (e.g. train)"
        )
    synthetic = config.synthetic
    if tc.num_scenes > 0:
        synthetic = dataclasses.replace(synthetic, num_scenes=tc.num_scenes)
    return dataclasses.replace(config, split=tc.split, num_samples=tc.num_samples, synthetic=synthetic)


def _image_key(sample: Sample) -> str:
    return sample.image_path or f"memory:{id(sample.image)}"


class ProgramTrainer:
    """Trains the runner's vision agent through the runner's programs and executor."""

    def __init__(self, runner: Runner, run_dir: Path) -> None:
        self.runner = runner
        self.config = runner.config
        self.cfg = runner.config.train
        if self.cfg.epochs < 1 or self.cfg.grad_accum < 1 or self.cfg.lr <= 0:
            raise ConfigError("train.epochs and train.grad_accum must be >= 1 and train.lr > 0")
        self.run_dir = run_dir
        self.checkpoints = run_dir / "checkpoints"
        self.tuner: Tuner = tuner_for(runner.agent, self.cfg)
        # gradients cannot cross a process boundary: training runs its programs in-process, under the
        # same limits (the runner's own executor, process-isolated by default, evaluates before and after)
        self.executor = Executor(self.config.executor, self.config.semantics, isolation="in_process")
        self._programs: dict[str, Program] = {}
        self._detections: dict[tuple[str, tuple[str, ...], str], Detection] = {}

    # ---- one sample ---------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.bf16 and self.tuner.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sample_loss(self, sample: Sample) -> LossResult:
        """Program -> boxes -> in-process execution with gradients -> the loss (or why it was skipped)."""
        r = self.runner
        stage = "image"
        try:
            image = sample.load_image()
            r.agent.begin_sample(sample)
            r.detector.begin_sample(sample)
            r.perception.begin_sample(sample)
            stage = "program"
            program = self._programs.get(sample.id)
            if program is None:
                program = self._programs[sample.id] = r.generator.program_for(sample)
            stage = "detect"
            # one detection per image (a sample's own boxes are part of the key, for detectors that return them)
            dkey = (_image_key(sample), tuple(program.object_names), repr(sample.boxes))
            detection = self._detections.get(dkey)
            if detection is None:
                detection = self._detections[dkey] = r.detector.detect(image, program.object_names)
            boxes = [[round(float(v), 2) for v in b] for b in detection.boxes]
            stage = "execute"
            tape = AnswerTape(r.agent, self.tuner.answer_log_probs)
            with self._autocast():
                outcome = self.executor.run(program.source, tape, image, boxes, perception=r.perception)
            if outcome.error is not None:
                return LossResult(None, f"error:{stage}:{outcome.error.type}")
            stage = "loss"
            return program_loss(outcome.value, sample.answer, boxes, tape.records)
        except Exception as exc:  # a bad sample is counted and training goes on
            log.debug("training sample %s failed at %s", sample.id, stage, exc_info=True)
            return LossResult(None, f"error:{stage}:{ErrorRecord.from_exception(exc).type}")

    # ---- checkpoints ----------------------------------------------------------------------
    def _checkpoint_files(self) -> list[tuple[int, Path]]:
        if not self.checkpoints.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoints.iterdir() if (m := _CKPT.match(p.name))]
        return sorted(found)

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        path = self.checkpoints / f"epoch_{state['epoch']:03d}.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        tmp.replace(path)  # atomic: a kill leaves the previous checkpoint or this one, never half of one
        for _, old in self._checkpoint_files()[: -max(1, self.cfg.keep_checkpoints)]:
            old.unlink()
        return path

    def latest_checkpoint(self) -> dict[str, Any] | None:
        for _, path in reversed(self._checkpoint_files()):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # a damaged file: fall back to the one before
                log.warning("checkpoint %s cannot be read (%s); trying an older one", path, exc)
                continue
            if state.get("format") != CHECKPOINT_FORMAT or state.get("config_hash") != self.config.config_hash():
                raise UserError(f"{path} was written by a different config or version; pass --run_name NEW")
            return state
        return None

    # ---- the loop -----------------------------------------------------------------------
    def train(self, samples: list[Sample]) -> dict[str, Any]:
        """Train for ``train.epochs`` (resuming from the newest checkpoint); returns the training record."""
        cfg = self.cfg
        if not samples:
            raise UserError(f"the training split '{cfg.split}' has no samples (train.num_samples, train.split)")
        params = self.tuner.parameters()
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(samples) / cfg.grad_accum)
        from transformers import get_scheduler

        scheduler = get_scheduler(
            cfg.scheduler,
            optimizer,
            num_warmup_steps=cfg.warmup_steps,
            num_training_steps=steps_per_epoch * cfg.epochs,
        )
        history: dict[str, Any] = {"steps": [], "epochs": [], "skipped": {}, "loss_kinds": {}, "train_seconds": 0.0}
        start_epoch = 0
        state = self.latest_checkpoint()
        if state is not None:
            self.tuner.load_state_dict(state["tuner"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            if state.get("cuda_rng") and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            history = state["history"]
            start_epoch = int(state["epoch"])
            log.info("resuming training after epoch %d from %s", start_epoch, self.checkpoints)
        else:
            torch.manual_seed(cfg.seed)
        if cfg.gradient_checkpointing:
            self.tuner.enable_gradient_checkpointing()
        self.tuner.set_training(True)
        try:
            for epoch in range(start_epoch, cfg.epochs):
                t0 = time.perf_counter()
                epoch_losses = self._epoch(samples, epoch, optimizer, scheduler, params, history)
                history["train_seconds"] = round(history["train_seconds"] + time.perf_counter() - t0, 3)
                history["epochs"].append(
                    {
                        "epoch": epoch + 1,
                        "loss": round(sum(epoch_losses) / len(epoch_losses), 6) if epoch_losses else None,
                        "samples_with_loss": len(epoch_losses),
                        "seconds": round(time.perf_counter() - t0, 3),
                    }
                )
                log.info("epoch %d/%d: loss %s", epoch + 1, cfg.epochs, history["epochs"][-1]["loss"])
                self.save_checkpoint(
                    {
                        "format": CHECKPOINT_FORMAT,
                        "config_hash": self.config.config_hash(),
                        "epoch": epoch + 1,
                        "tuner": self.tuner.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                        "history": history,
                    }
                )
        finally:
            self.tuner.set_training(False)
        if not any(e["samples_with_loss"] for e in history["epochs"]):
            raise UserError(f"no training sample gave a loss; skipped: {history['skipped']}")
        return history

    def _epoch(
        self,
        samples: list[Sample],
        epoch: int,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        params: list[torch.nn.Parameter],
        history: dict[str, Any],
    ) -> list[float]:
        cfg = self.cfg
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        skipped, kinds = Counter(history["skipped"]), Counter(history["loss_kinds"])
        epoch_losses: list[float] = []
        for start in range(0, len(samples), cfg.grad_accum):
            losses: list[float] = []
            for idx in order[start : start + cfg.grad_accum].tolist():
                result = self.sample_loss(samples[idx])
                if result.loss is None:
                    skipped[result.kind] += 1
                    continue
                result.loss.backward()
                losses.append(float(result.loss.detach()))
                kinds[result.kind] += 1
            if losses:
                for p in params:
                    if p.grad is not None:
                        p.grad.div_(len(losses))
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()  # parameters without a gradient are left alone
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            self.runner.agent.clear()  # the weights changed: nothing memoised before this step may be served
            history["steps"].append(
                {
                    "step": len(history["steps"]) + 1,
                    "epoch": epoch + 1,
                    "loss": round(sum(losses) / len(losses), 6) if losses else None,
                    "samples": len(losses),
                    "lr": scheduler.get_last_lr()[0],
                }
            )
            epoch_losses.extend(losses)
        history["skipped"], history["loss_kinds"] = dict(skipped), dict(kinds)
        return epoch_losses


# ---- the whole run: before -> train -> after ---------------------------------------------------
def _evaluate(runner: Runner, tuner: Tuner, run_dir: Path, samples: list[Sample]) -> dict[str, Any]:
    tuner.set_training(False)
    runner.agent.clear()  # scores memoised under other weights must not be served
    run_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        return runner.run(run_dir, samples)


def train_and_evaluate(runner: Runner, run_dir: Path) -> dict[str, Any]:
    """Evaluate, fine-tune through programs, evaluate again; the summary gets the before/after accuracy."""
    from analysis.training_plot import plot_loss_curve

    config = runner.config
    t_run = time.perf_counter()
    if config.train.torch_threads > 0:  # tiny models on a busy CPU: fewer threads are much faster
        torch.set_num_threads(config.train.torch_threads)
    trainer = ProgramTrainer(runner, run_dir)  # builds the tuner: a bad agent or method fails here
    eval_samples = runner.load_samples()
    train_samples = load_samples(training_config(config))
    before = None
    if config.train.evaluate_before:
        before = _evaluate(runner, trainer.tuner, run_dir / "before", eval_samples)
    history = trainer.train(train_samples)
    adapter = trainer.tuner.save(run_dir / "tuned")
    after = _evaluate(runner, trainer.tuner, run_dir, eval_samples)
    plot = plot_loss_curve(history, run_dir / "training_loss.png")
    final = next((e["loss"] for e in reversed(history["epochs"]) if e["loss"] is not None), None)
    attempts = sum(history["loss_kinds"].values()) + sum(history["skipped"].values())
    errors = sum(n for reason, n in history["skipped"].items() if reason.startswith("error:"))
    degraded = errors > DEGRADED_ERROR_SHARE * attempts
    if degraded:
        log.warning("training degraded: %d of %d sample passes failed (%s)", errors, attempts, history["skipped"])
    record = {
        "train_split": config.train.split,
        "train_samples": len(train_samples),
        "epochs": config.train.epochs,
        "optimizer_steps": len(history["steps"]),
        "train_seconds": history["train_seconds"],
        "final_loss": final,
        "loss_kinds": history["loss_kinds"],
        "skipped": history["skipped"],
        "degraded": degraded,
        "vlm_adapter": str(adapter),
        "loss_curve": plot.name,
        **trainer.tuner.describe(),
    }
    (run_dir / "training.json").write_text(json.dumps({**record, "history": history}, indent=1) + "\n")
    summary = dict(after)
    summary["accuracy_before"] = None if before is None else before.get("accuracy")
    summary["accuracy_after"] = after.get("accuracy")
    summary["training"] = {**record, "run_seconds_this_invocation": round(time.perf_counter() - t_run, 3)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_training(summary: dict[str, Any]) -> str:
    """The console line of a training run."""
    t = summary.get("training") or {}
    before = summary.get("accuracy_before")
    warning = "DEGRADED: many training samples failed (see skipped)\n" if t.get("degraded") else ""
    return warning + (
        f"fine-tuned through programs: accuracy {before if before is not None else 'n/a'}% -> "
        f"{summary.get('accuracy_after')}% (training {t.get('train_seconds')} s over {t.get('train_samples')} "
        f"samples x {t.get('epochs')} epochs; final loss {t.get('final_loss')}; skipped {t.get('skipped')}; "
        f"loss curve {t.get('loss_curve')}; trained weights: vlm_adapter {t.get('vlm_adapter')})"
    )
