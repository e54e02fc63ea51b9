"""Rendered prompts: snapshots per task family, generated API section, runnable worked examples.

After an intended change to a template or to a primitive/algebra docstring, refresh the
snapshots with ``NEPTUNE_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_prompts.py`` and
review the diff of tests/snapshots/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from code_generator.checks import check_program
from code_generator.extraction import extract
from code_generator.prompting import BOX_TASKS, TASKS, PromptBuilder, api_section, task_for_dataset, task_for_sample
from neptune_core.config import ExecutorConfig
from neptune_core.errors import UserError
from neptune_core.executor import Executor, to_answer
from probabilistic_tensor import PROGRAM_API, PROGRAM_METHODS, ProbabilisticTensor, Semantics
from vision_agents.base import VisionAgent

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
QUESTION = {
    "clevr": "Are there more large spheres than red things?",
    "clevr_humans": "Which shape appears most often?",
    "clevr_transfer": "the cylinder that is behind the small cube",
    "refexp": "the dog sleeping on the left sofa",
    "vqa": "What is the girl in the blue coat holding?",
    "grounding": "the second bicycle from the left",
    "gqa": "What is the color of the bag to the left of the woman?",
    "vqav2": "What is the man holding?",
    "mme": "Is there a bicycle in this image? Please answer yes or no.",
    "nlvr2": "The right image shows exactly three dogs lying on grass.",
    "hc_refloco": "A young man in a black hoodie and jeans, carrying a skateboard under his left arm.",
}


@pytest.mark.parametrize("task", TASKS)
def test_rendered_prompt_matches_snapshot(task):
    rendered = PromptBuilder().render(task, QUESTION[task]).text
    path = SNAPSHOTS / f"prompt_{task}.txt"
    if os.environ.get("NEPTUNE_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
        if os.environ.get("NEPTUNE_UPDATE_SNAPSHOTS") != "1":
            pytest.fail(f"snapshot {path.name} was missing and has been written; review it and rerun")
    assert rendered == path.read_text(encoding="utf-8"), f"prompt changed; see the docstring of {__name__}"


def test_api_section_is_generated_from_every_docstring():
    api = api_section()
    for name, fn in PROGRAM_API.items():
        assert f"{name}(" in api and fn.__doc__.splitlines()[0].strip() in api
    for name in PROGRAM_METHODS:
        assert f"t.{name}(" in api and getattr(ProbabilisticTensor, name).__doc__.splitlines()[0].strip() in api
    assert "score(question: str, num_objects: int = 1" in api and "query(question: str" in api


def test_changing_a_primitive_docstring_changes_the_prompt(monkeypatch):
    import dataclasses

    from neptune_core import primitives

    before = PromptBuilder().render("clevr", "How many cubes?").text
    changed = dataclasses.replace(primitives.get_primitive("score"), doc="Returns p(yes) for a question. CHANGED.")
    monkeypatch.setitem(primitives._loaded, "score", changed)
    after = PromptBuilder().render("clevr", "How many cubes?").text
    assert after != before and "Returns p(yes) for a question. CHANGED." in after


def test_changing_an_algebra_docstring_changes_the_prompt(monkeypatch):
    before = PromptBuilder().render("refexp", "the red cup").text
    monkeypatch.setattr(ProbabilisticTensor.contract, "__doc__", "Joins two tensors. CHANGED.")
    after = PromptBuilder().render("refexp", "the red cup").text
    assert after != before and "Joins two tensors. CHANGED." in after


def test_question_goes_in_user_message_only():
    rendered = PromptBuilder().render("clevr", "  What   size is\nthe cube? ")
    assert rendered.messages[-1] == {"role": "user", "content": "Question: What size is the cube?\n"}
    assert "What size is the cube" not in rendered.system
    assert "{{" not in rendered.text


def test_unknown_task_and_dataset_are_user_errors():
    with pytest.raises(UserError, match="known: clevr"):
        PromptBuilder().render("gqa2", "q")
    with pytest.raises(UserError, match="no program prompt for dataset 'gqa2'"):
        task_for_dataset("gqa2")
    assert task_for_dataset("clevr_synthetic") == "clevr" and task_for_dataset("refgta") == "refexp"
    assert task_for_dataset("nlvr2") == "nlvr2" and task_for_dataset("hc_refloco") == "hc_refloco"


def test_task_for_sample_uses_its_own_task_then_the_dataset_then_its_answer():
    from neptune_core.types import Sample

    assert task_for_sample(Sample("a", "Is it red?", answer="yes")) == "vqa"
    assert task_for_sample(Sample("b", "the red cup", answer=[1.0, 2.0, 30.0, 40.0])) == "grounding"
    assert task_for_sample(Sample("c", "the red cup")) == "vqa"  # no gold: a question
    assert task_for_sample(Sample("d", "the cup", meta={"task": "refexp"})) == "refexp"
    assert task_for_sample(Sample("e", "How many?", answer="2"), "clevr") == "clevr"
    with pytest.raises(UserError, match="unknown task 'vqa2'.*known prompt families: clevr"):
        task_for_sample(Sample("f", "q", meta={"task": "vqa2"}))


@pytest.mark.parametrize("task", ["vqa", "grounding", "gqa", "vqav2", "mme", "nlvr2", "hc_refloco"])
def test_general_families_show_everyday_scenes_not_clevr(task):
    system = PromptBuilder().render(task, "q").system
    examples = system.split("## Examples", 1)[1]
    for clevr_word in ("cube", "sphere", "cylinder", "metal", "rubber"):
        assert clevr_word not in examples, (task, clevr_word)
    assert "## API" in system and "score(question: str, num_objects: int = 1" in system


def _examples(task: str) -> list[tuple[str, str, list[str] | None]]:
    system = PromptBuilder().render(task, "q").system
    blocks = re.split(r"\n(?=Question: )", system.split("## Examples", 1)[1])
    out = []
    for block in blocks:
        if block.startswith("Question: "):
            got = extract(block)
            out.append((block.splitlines()[0], got.source, got.object_names))
    return out


class _RandomAgent(VisionAgent):
    """Seeded random probabilities and a fixed answer: enough to run any program end to end."""

    def __init__(self) -> None:
        self.gen = torch.Generator().manual_seed(0)

    def score(self, image, boxes, questions, arity):
        return torch.rand((len(questions),) + (len(boxes),) * arity, generator=self.gen)

    def answer(self, image, box, question):
        return "red"


@pytest.mark.parametrize("task", TASKS)
def test_worked_examples_pass_the_checks_and_run(task):
    examples = _examples(task)
    assert len(examples) >= 4
    executor = Executor(ExecutorConfig(), Semantics())
    image = Image.new("RGB", (64, 48))
    boxes = [[0, 0, 10, 10], [20, 5, 30, 25], [40, 10, 60, 40], [5, 30, 15, 45]]
    # the image-pair family's examples address image=1: they run on a pair (3 boxes on the right image)
    more = [(Image.new("RGB", (64, 48)), boxes[:3])] if task == "nlvr2" else []
    for question, source, names in examples:
        assert names is not None, question
        assert check_program(source) == [], (question, check_program(source))
        outcome = executor.run(source, _RandomAgent(), image, boxes, more_images=more)
        assert outcome.error is None, (question, outcome.error)
        answer = to_answer(outcome.value)
        if task in BOX_TASKS or question.startswith("Question: the "):
            assert isinstance(answer, int) and 0 <= answer < len(boxes), (question, answer)
        elif task in ("mme", "nlvr2"):
            assert answer in ("yes", "no"), (question, answer)
        else:
            assert isinstance(answer, str) and answer, (question, answer)
