"""End to end on the synthetic CLEVR world: >= 1000 generated questions, each program
translated, run in the Executor against the scene oracle with the default semantics
(iota="minmax"), must all give the reference answer, and cover all 35 functions."""

from __future__ import annotations

import collections

import pytest
import torch

from code_generator.clevr_translator import CLEVR_FUNCTIONS, normalise_node
from code_generator.symbolic import SymbolicClevrGenerator
from local_datasets import load_samples
from neptune_core.config import RunConfig, SyntheticConfig
from probabilistic_tensor import Semantics, ops
from vision_agents.base import MemoizedAgent
from vision_agents.oracle import GroundTruthDetector, SceneOracleAgent


def run_all(samples, semantics: Semantics, isolation: str = "process") -> list[tuple[str, str, str]]:
    """(sample id, gold, predicted) for every sample whose prediction is wrong."""
    from neptune_core.executor import Executor, to_answer

    config = RunConfig(semantics=semantics)
    gen = SymbolicClevrGenerator.from_config(config)
    agent, detector = MemoizedAgent(SceneOracleAgent.from_config(config)), GroundTruthDetector.from_config(config)
    executor = Executor(config.executor, semantics, isolation=isolation)
    wrong = []
    for s in samples:
        agent.begin_sample(s)
        detector.begin_sample(s)
        image = s.load_image()
        boxes = detector.detect(image, []).boxes
        out = executor.run(gen.program_for(s).source, agent, image, boxes)
        got = f"error {out.error}" if out.error is not None else str(to_answer(out.value))
        if got != str(s.answer):
            wrong.append((s.id, str(s.answer), got))
    executor.close()
    return wrong


@pytest.fixture(scope="module")
def samples():
    synth = SyntheticConfig(num_scenes=110, questions_per_scene=10, seed=3, image_width=96, image_height=64)
    return load_samples(RunConfig(dataset="clevr_synthetic", synthetic=synth))


@pytest.mark.slow
@pytest.mark.parametrize("tnorm", ["minmax", "product"])
def test_every_synthetic_question_is_answered_exactly(samples, tnorm: str) -> None:
    assert len(samples) >= 1000
    used = collections.Counter(normalise_node(n, i)[0] for s in samples for i, n in enumerate(s.program))
    assert set(used) == set(CLEVR_FUNCTIONS), sorted(set(CLEVR_FUNCTIONS) - set(used))
    # minmax through the sandbox process, product in-process: both isolation modes must be exact
    isolation = "process" if tnorm == "minmax" else "in_process"
    wrong = run_all(samples, Semantics(iota="minmax", tnorm=tnorm, quantifier=tnorm), isolation)
    assert wrong == []


def test_default_and_softmax_iota_are_both_exact(samples, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config that says nothing about semantics is exact with perfect perception, and so is the
    paper's softmax iota (over logits); a softmax over probabilities (nearly flat) is not."""
    relational = [s for s in samples if any(n["function"].startswith(("relate", "same_")) for n in s.program)][:60]
    assert len(relational) == 60
    assert RunConfig().semantics.iota == "minmax"
    assert run_all(relational, RunConfig().semantics) == []
    assert run_all(relational, Semantics(iota="softmax")) == []
    monkeypatch.setitem(ops.IOTAS, "softmax", lambda data, dim, t: torch.softmax(data / t, dim))
    assert len(run_all(relational, Semantics(iota="softmax"), "in_process")) > 0  # the patch is in this process
