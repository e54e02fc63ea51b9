"""The verify stage through the real run loop: VLAgent's caption verifier (image QA and
referring expressions) with a scripted LLM on the fake OpenAI server and a fake
captioner, NePTune's box verification with a fake VisionAgent, concurrency of the
captioning with program generation, and what the row, summary and report show."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from analysis.report import sample_page
from code_generator.llm_client import ChatClient, RetryPolicy
from code_generator.providers import Endpoint
from neptune_core.config import load_config
from neptune_core.types import Detection, Program, Sample
from probabilistic_tensor import ProbabilisticTensor, Semantics
from runners.base import Runner
from runners.run_ref_exp_fast import RefExpRunner
from runners.verifiers import VerifyStage
from runners.verifiers.box import BoxVerifier
from runners.verifiers.caption import CaptionVerifier, quoted_in
from tests import fake_openai_server
from tests.fake_openai_server import raw, reply
from vision_agents.base import Detector, VisionAgent
from vision_agents.captioners import Captioner

fake_openai = fake_openai_server.fake_openai
IMAGE = Image.new("RGB", (120, 60))
BOXES = [[0.0, 0.0, 30.0, 30.0], [40.0, 0.0, 70.0, 30.0], [80.0, 0.0, 110.0, 30.0]]
CAPTION = "A large red metal cube sits left of a small blue sphere."


class TableAgent(VisionAgent):
    """p(yes) from a table: question -> value (arity 0) or per-box list (arity 1)."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.asked: list[tuple[str, list]] = []

    def score(self, image, boxes, questions, arity):  # type: ignore[no-untyped-def]
        rows = []
        for q in questions:
            self.asked.append((q, boxes))
            v = self.table[q]
            if arity == 1 and not isinstance(v, list):  # a per-box callable table for verification
                rows.append(torch.tensor([float(v(b)) for b in boxes]))
            else:
                rows.append(torch.tensor(v, dtype=torch.float32))
        return torch.stack(rows)

    def answer(self, image, box, question):  # type: ignore[no-untyped-def]
        return "red"


class Boxes(Detector):
    def detect(self, image, object_names):  # type: ignore[no-untyped-def]
        return Detection([list(b) for b in BOXES], [1.0] * 3, ["object"] * 3)


class FixedProgram:
    """A program generator that returns one source (optionally waiting for an event first)."""

    def __init__(self, source: str, wait_for: threading.Event | None = None) -> None:
        self.source = source
        self.wait_for = wait_for
        self.waited: bool | None = None

    def program_for(self, sample: Sample) -> Program:
        if self.wait_for is not None:
            self.waited = self.wait_for.wait(timeout=5.0)
        return Program(self.source, origin="generated")


class FakeCaptioner(Captioner):
    """Returns scripted captions (whole image, or per box index); records the calling thread."""

    def __init__(self, caption: str = CAPTION, per_box: dict[int, str] | None = None) -> None:
        self.text = caption
        self.per_box = per_box or {}
        self.threads: list[str] = []
        self.started = threading.Event()

    def caption_image(self, image: Image.Image) -> str:
        return self.text

    def caption(self, image, box=None, *, sample=None):  # type: ignore[no-untyped-def]
        self.started.set()
        self.threads.append(threading.current_thread().name)
        if box is None:
            return self.text
        return self.per_box[BOXES.index([float(v) for v in box])]


def client(server: fake_openai_server.FakeOpenAIServer) -> ChatClient:
    return ChatClient(Endpoint("vllm", server.base_url, "x"), "fake-model", policy=RetryPolicy(0, 0.01, 0.01))


def verdict(**obj: Any) -> fake_openai_server.Action:
    return reply("Here is my verdict: " + json.dumps(obj))


def run_one(
    tmp_path: Path,
    *,
    program: str,
    table: dict[str, Any],
    verifiers: list[Any],
    gold: Any,
    question: str = "Is there a red cube?",
    runner_cls: type[Runner] = Runner,
    generator: Any = None,
    dataset: str = "clevr_synthetic",
) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = load_config(None, {"dataset": dataset, "output_dir": str(tmp_path), "report": "false"})
    sample = Sample(id="s1", question=question, answer=gold, image=IMAGE)
    runner = runner_cls(
        cfg,
        agent=TableAgent(table),
        detector=Boxes(),
        generator=generator or FixedProgram(program),
        verify=VerifyStage(verifiers, dataset=dataset),
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = runner.run(run_dir, [sample])
    (row,) = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return row, summary


EXIST = 'def execute(score, query, n):\n    return score("Is there a red cube?", 0)\n'


def caption_verifier(
    server: fake_openai_server.FakeOpenAIServer, captioner: Captioner | None = None, **cfg: Any
) -> CaptionVerifier:
    c = load_config(None, {"verify": {"caption": {"concurrent": False, **cfg}}}).verify.caption
    return CaptionVerifier(captioner or FakeCaptioner(), client(server), c)


# ---- image QA: VLAgent's keep / replace rule -----------------------------------------------
def test_a_right_answer_is_kept(tmp_path: Path, fake_openai: Any) -> None:
    fake_openai.script(verdict(settles=True, answer="Yes.", reason="the caption names a red cube"))
    row, _ = run_one(
        tmp_path,
        program=EXIST,
        table={"Is there a red cube?": 0.6},
        verifiers=[caption_verifier(fake_openai)],
        gold="yes",
    )
    rec = row["verify"]["caption"]
    assert row["pred"] == "yes" and row["correct"] is True and row["verify"]["changed"] is False
    assert rec["status"] == "kept" and rec["reason"] == "the caption agrees with the answer"
    assert rec["caption"] == CAPTION and rec["verdict"]["answer"] == "Yes." and rec["confidence"] == pytest.approx(0.6)
    assert fake_openai.request_count == 1  # agreement needs no second question


def test_a_wrong_low_confidence_answer_is_replaced_on_an_explicit_clue(tmp_path: Path, fake_openai: Any) -> None:
    fake_openai.script(
        verdict(settles=True, answer="yes", reason="red cube mentioned"),
        verdict(explicit=True, clue="a large red metal cube", reason="stated outright"),
    )
    row, summary = run_one(
        tmp_path,
        program=EXIST,
        table={"Is there a red cube?": 0.4},
        verifiers=[caption_verifier(fake_openai)],
        gold="yes",
    )
    rec = row["verify"]["caption"]
    assert row["verify"]["pred_before"] == "no" and row["verify"]["correct_before"] is False
    assert row["pred"] == "yes" and row["correct"] is True and row["verify"]["changed"] is True
    assert rec["status"] == "replaced" and rec["answer_before"] == "no" and rec["answer_after"] == "yes"
    assert rec["clue"]["clue"] == "a large red metal cube"
    v = summary["verification"]
    assert (
        v["changed"] == 1
        and v["changed_to_correct"] == 1
        and (v["accuracy_before"], v["accuracy_after"]) == (0.0, 100.0)
    )


@pytest.mark.parametrize(
    ("clue", "reason"),
    [
        ({"explicit": False, "clue": "", "reason": "only implied"}, "no explicit clue"),
        (
            {"explicit": True, "clue": "a shiny red block", "reason": "made up"},
            "not in the caption",
        ),  # hallucinated quote
    ],
)
def test_without_an_explicit_quoted_clue_the_answer_stays(
    tmp_path: Path, fake_openai: Any, clue: dict, reason: str
) -> None:
    fake_openai.script(verdict(settles=True, answer="yes"), verdict(**clue))
    row, _ = run_one(
        tmp_path,
        program=EXIST,
        table={"Is there a red cube?": 0.4},
        verifiers=[caption_verifier(fake_openai)],
        gold="yes",
    )
    assert row["pred"] == "no" and row["verify"]["changed"] is False
    assert row["verify"]["caption"]["status"] == "kept" and reason in row["verify"]["caption"]["reason"]


def test_a_caption_with_no_clue_changes_nothing(tmp_path: Path, fake_openai: Any) -> None:
    cap = FakeCaptioner("Some objects on a grey floor.")
    fake_openai.script(verdict(settles=False, answer="", reason="colours are not mentioned"))
    row, _ = run_one(
        tmp_path,
        program=EXIST,
        table={"Is there a red cube?": 0.4},
        verifiers=[caption_verifier(fake_openai, cap)],
        gold="yes",
    )
    rec = row["verify"]["caption"]
    assert (
        row["pred"] == "no" and rec["status"] == "kept" and rec["reason"] == "the caption does not settle the question"
    )
    assert fake_openai.request_count == 1


def test_confident_answers_are_not_verified_and_junk_verdicts_keep_the_answer(tmp_path: Path, fake_openai: Any) -> None:
    row, _ = run_one(
        tmp_path,
        program=EXIST,
        table={"Is there a red cube?": 0.95},
        verifiers=[caption_verifier(fake_openai)],
        gold="yes",
    )
    assert (
        row["verify"]["caption"]["status"] == "skipped"
        and "confident (0.950 >= 0.8)" in row["verify"]["caption"]["reason"]
    )
    assert fake_openai.request_count == 0
    fake_openai.script(raw('{"choices": [{"message": {"content": "I think so"}}]}'))
    row, _ = run_one(
        tmp_path / "b",
        program=EXIST,
        table={"Is there a red cube?": 0.4},
        verifiers=[caption_verifier(fake_openai)],
        gold="yes",
    )
    assert row["verify"]["caption"]["status"] == "kept" and "unusable LLM verdict" in row["verify"]["caption"]["reason"]


def test_captioning_runs_concurrently_with_program_generation(tmp_path: Path, fake_openai: Any) -> None:
    cap = FakeCaptioner()
    fake_openai.script(verdict(settles=True, answer="no"))
    gen = FixedProgram(EXIST, wait_for=cap.started)  # the program only comes once captioning has begun
    verifier = caption_verifier(fake_openai, cap, concurrent=True)
    row, _ = run_one(
        tmp_path, program=EXIST, table={"Is there a red cube?": 0.4}, verifiers=[verifier], gold="no", generator=gen
    )
    assert gen.waited is True  # captioning started before the program existed
    assert cap.threads and all(t.startswith("verify") for t in cap.threads)
    assert row["verify"]["caption"]["concurrent"] is True and row["verify"]["caption"]["status"] == "kept"


# ---- referring expressions --------------------------------------------------------------------
REF = 'def execute(score, query, n):\n    return score("Is the object in the red box the red cube?", 1).iota()\n'
REF_TABLE = {"Is the object in the red box the red cube?": [0.5, 0.3, 0.2]}  # top box 0 is wrong; gold is box 1


def test_caption_verifier_moves_a_refexp_prediction_only_when_clearly_worse(tmp_path: Path, fake_openai: Any) -> None:
    captions = {0: "A small blue sphere.", 1: "A large red metal cube.", 2: "A green cylinder."}
    fake_openai.script(verdict(best=1, reason="candidate 1 is the red cube"), verdict(a=2, b=9, reason="A is a sphere"))
    verifier = caption_verifier(fake_openai, FakeCaptioner(per_box=captions), max_candidates=3)
    row, _ = run_one(
        tmp_path,
        program=REF,
        table=REF_TABLE,
        verifiers=[verifier],
        gold=BOXES[1],
        question="the red cube",
        runner_cls=RefExpRunner,
        dataset="refadv",
    )
    rec = row["verify"]["caption"]
    assert row["verify"]["pred_before"] == BOXES[0] and row["pred"] == BOXES[1] and row["correct"] is True
    assert rec["status"] == "moved" and rec["from"] == 0 and rec["to"] == 1 and rec["overlap"] == 0.0
    assert rec["captions"] == {str(i): c for i, c in captions.items()} and rec["comparison"]["candidate"] == 9.0
    # a small gap keeps the prediction; a match that overlaps the prediction keeps it without comparing
    fake_openai.script(verdict(best=1), verdict(a=6, b=7))
    row, _ = run_one(
        tmp_path / "b",
        program=REF,
        table=REF_TABLE,
        verifiers=[verifier],
        gold=BOXES[1],
        question="the red cube",
        runner_cls=RefExpRunner,
        dataset="refadv",
    )
    assert row["verify"]["caption"]["status"] == "kept" and row["pred"] == BOXES[0]
    fake_openai.script(verdict(best=0))
    row, _ = run_one(
        tmp_path / "c",
        program=REF,
        table=REF_TABLE,
        verifiers=[verifier],
        gold=BOXES[1],
        question="the red cube",
        runner_cls=RefExpRunner,
        dataset="refadv",
    )
    assert row["verify"]["caption"]["status"] == "kept" and "overlaps" in row["verify"]["caption"]["reason"]
    fake_openai.script(verdict(best=None))
    row, _ = run_one(
        tmp_path / "d",
        program=REF,
        table=REF_TABLE,
        verifiers=[verifier],
        gold=BOXES[1],
        question="the red cube",
        runner_cls=RefExpRunner,
        dataset="refadv",
    )
    assert row["verify"]["caption"]["status"] == "skipped" and row["pred"] == BOXES[0]


def test_box_verification_moves_to_the_next_candidate_when_the_vlm_rejects(tmp_path: Path) -> None:
    question = "Is the object in the red box the red cube?"
    # the verification question (box marked alone) is answered by the VLM: box 0 no, box 1 yes
    table = {question: lambda box: {0.0: 0.1, 40.0: 0.9, 80.0: 0.2}[box[0]]}
    source = 'def execute(score, query, n):\n    return score("Is it the red cube?", 1).iota()\n'
    table["Is it the red cube?"] = [0.5, 0.3, 0.2]
    row, summary = run_one(
        tmp_path,
        program=source,
        table=table,
        verifiers=[BoxVerifier()],
        gold=BOXES[1],
        question="the red cube.",
        runner_cls=RefExpRunner,
        dataset="refadv",
    )
    rec = row["verify"]["box"]
    assert row["verify"]["pred_before"] == BOXES[0] and row["verify"]["correct_before"] is False
    assert row["pred"] == BOXES[1] and row["correct"] is True
    assert rec["status"] == "moved" and rec["from"] == 0 and rec["chosen"] == 1 and rec["question"] == question
    assert [(s["candidate"], s["accepted"]) for s in rec["steps"]] == [(0, False), (1, True)]
    # the program's distribution over the boxes, under the default semantics
    iota = ProbabilisticTensor(torch.tensor([0.5, 0.3, 0.2]), vars=("x",), semantics=Semantics()).iota().data
    assert rec["steps"][0]["program_p"] == pytest.approx(float(iota[0]), abs=1e-4)
    assert rec["steps"][1]["program_p"] == pytest.approx(float(iota[1]), abs=1e-4)
    assert rec["steps"][1]["p_yes"] == pytest.approx(0.9)
    assert summary["verification"]["by_verifier"] == {"box": {"moved": 1}}
    # the HTML page shows each step
    page = sample_page(row, IMAGE)
    assert "Verification" in page and "moved" in page and "p(yes)" in page

    table[question] = lambda box: 0.1  # nobody accepted: the program's choice stands, said so
    row, _ = run_one(
        tmp_path / "b",
        program=source,
        table=table,
        verifiers=[BoxVerifier(max_candidates=2)],
        gold=BOXES[1],
        question="the red cube",
        runner_cls=RefExpRunner,
        dataset="refadv",
    )
    assert (
        row["verify"]["box"]["status"] == "none_accepted"
        and row["pred"] == BOXES[0]
        and len(row["verify"]["box"]["steps"]) == 2
    )


def test_box_verifier_leaves_image_questions_alone(tmp_path: Path) -> None:
    row, _ = run_one(tmp_path, program=EXIST, table={"Is there a red cube?": 0.4}, verifiers=[BoxVerifier()], gold="no")
    assert row["verify"]["box"]["status"] == "not_applicable" and row["pred"] == "no"


def test_quoted_in() -> None:
    assert quoted_in("large red  metal cube", CAPTION) and quoted_in("A large red metal CUBE.", CAPTION)
    assert not quoted_in("red cube", CAPTION) and not quoted_in("", CAPTION)
