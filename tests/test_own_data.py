"""A researcher's own images and questions, end to end through run.py with the offline backends:
JSONL with LLM programs from a local OpenAI-compatible server (the general vqa and grounding
prompt families, cached), JSONL with hand-written programs on drawings CLEVR has no words for
(accuracy and unknown concepts in the summary), and the setups that must fail before any sample."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import run
from runners.results import read_results
from tests import fake_openai_server
from tests.fake_openai_server import Action, FakeOpenAIServer, reply
from tests.fixtures.own_data import (
    GROUNDING,
    QUESTIONS,
    UNKNOWN_QUESTION_IDS,
    VQA,
    build_given_programs,
    build_mixed_for_llm,
    write_images,
    write_jsonl,
)

fake_openai = fake_openai_server.fake_openai  # the fixture

GROUNDING_HEADER = "Instead of a question you get a phrase, a referring expression or an instruction"
VQA_HEADER = "A question asks about one thing (its color, kind, action or position)"


def _run(tmp_path: Path, config: dict[str, Any], out: str, *extra: str) -> int:
    cfg = tmp_path / f"{out}.json"
    cfg.write_text(json.dumps(config))
    argv = ["--config", str(cfg), "--data_root", str(tmp_path / "data"), "--output_dir", str(tmp_path / out), *extra]
    return run.main(argv)


def _results(tmp_path: Path, out: str) -> tuple[dict[str, dict], dict[str, Any]]:
    (run_dir,) = (tmp_path / out).iterdir()
    rows, dropped = read_results(run_dir / "results.jsonl")
    assert dropped == 0
    return {r["id"]: r for r in rows}, json.loads((run_dir / "summary.json").read_text())


OFFLINE = {"dataset": "jsonl", "vlm_model_name": "classic", "od_model": "classic"}


# ---- LLM programs from a local server ---------------------------------------------------------
LLM_PROGRAMS = {  # question -> the program the "LLM" writes
    "the orange triangle": '(score("Is this a triangle?", 1) & score("Is this object orange?", 1)).iota()',
    "find the pink star": '(score("Is this a star?", 1) & score("Is this object pink?", 1)).iota()',
    "the black star in the corner": '(score("Is this a star?", 1) & score("Is this object black?", 1)).iota()',
    "Where is the white square?": '(score("Is this a square?", 1) & score("Is this object white?", 1)).iota()',
    "Is there a triangle?": 'score("Is this a triangle?", 1).exists()',
    "What color is the star?": 'query("What color is this object?", score("Is this a star?", 1).iota())',
}


def _llm(body: dict[str, Any]) -> Action:
    question = re.search(r"Question: (.*)", body["messages"][-1]["content"]).group(1)  # type: ignore[union-attr]
    return reply(
        f'Objects: ["shape"]\n```python\ndef execute(score, query, n):\n    return {LLM_PROGRAMS[question]}\n```\n'
    )


def test_jsonl_with_llm_programs_generated_cached_and_run(
    fake_openai: FakeOpenAIServer, tmp_path: Path, capsys
) -> None:
    build_mixed_for_llm(tmp_path / "data")
    fake_openai.responder = _llm
    fake_openai.models = ["local-model"]  # what the server serves
    config = {
        **OFFLINE,
        "data_path": "mixed.jsonl",
        "program_generator": "llm",
        "code_gen_provider": "vllm",
        "code_gen_base_url": fake_openai.base_url,
        "code_gen_model_name": "local-model",
        "program_cache_address": str(tmp_path / "programs.json"),
    }
    assert _run(tmp_path, config, "first") == 0
    rows, summary = _results(tmp_path, "first")
    assert len(fake_openai.sample_requests()) == len(GROUNDING) + len(VQA)
    families = {}
    for body in fake_openai.sample_requests():
        question = re.search(r"Question: (.*)", body["messages"][-1]["content"]).group(1)  # type: ignore[union-attr]
        system = body["messages"][0]["content"]
        families[question] = "grounding" if GROUNDING_HEADER in system else "vqa" if VQA_HEADER in system else "?"
        assert "## API" in system and "cube" not in system.split("## Examples", 1)[1]
    assert families == {text: "grounding" for _, _, text, _ in GROUNDING} | {q: "vqa" for _, _, q, _ in VQA}
    assert {r["program_origin"] for r in rows.values()} == {"generated"}
    assert all(r["error"] is None for r in rows.values()), [r["error"] for r in rows.values()]
    for gid, *_ in GROUNDING:  # the chosen box overlaps the drawn figure (IoU >= 0.5)
        assert rows[gid]["correct"] is True and len(rows[gid]["pred"]) == 4, rows[gid]
    assert rows["v_triangle"]["pred"] == "yes" and rows["v_star_colour"]["pred"] == "black"
    assert summary["accuracy"] == 100.0 and summary["total"] == 6
    cache = json.loads((tmp_path / "programs.json").read_text())
    assert len(cache["entries"]) == 6 and {e["task"] for e in cache["entries"].values()} == {"vqa", "grounding"}

    # a second, fresh run (new output directory) takes every program from the cache: no request
    assert _run(tmp_path, config, "second") == 0
    rows2, summary2 = _results(tmp_path, "second")
    assert len(fake_openai.sample_requests()) == 6
    assert {r["program_origin"] for r in rows2.values()} == {"cache"}
    assert {k: r["pred"] for k, r in rows2.items()} == {k: r["pred"] for k, r in rows.items()}
    assert summary2["accuracy"] == 100.0
    assert "accuracy: 100.0% (6/6)" in capsys.readouterr().out


# ---- hand-written programs on drawings CLEVR has no words for -----------------------------------
def test_jsonl_with_given_python_programs_counts_unknown_concepts(tmp_path: Path, capsys) -> None:
    build_given_programs(tmp_path / "data")
    config = {**OFFLINE, "data_path": "given.jsonl", "program_generator": "given"}
    # 2 of the 18 lines are broken on purpose (no program, a bad program): above max_failure_rate,
    # so the run says it is degraded (exit 3) and still writes every row
    assert _run(tmp_path, config, "given") == 3
    rows, summary = _results(tmp_path, "given")
    out = capsys.readouterr().out

    known = [qid for qid, *_, src in QUESTIONS if src and "import" not in src and qid not in UNKNOWN_QUESTION_IDS]
    assert len(known) == 12
    for qid in known:  # every question inside the vocabulary is answered right, from pixels
        assert rows[qid]["correct"] is True, (qid, rows[qid]["pred"], rows[qid]["gold"], rows[qid]["error"])
        assert rows[qid]["program_origin"] == "given"
        assert not any("info" in e for e in rows[qid]["trace"]), rows[qid]["trace"]
    for qid in UNKNOWN_QUESTION_IDS:  # outside it: p = 0.5, recorded on the trace entry
        infos = [e["info"] for e in rows[qid]["trace"] if "info" in e]
        assert infos and all("unknown_concepts" in i for i in infos), rows[qid]["trace"]
    assert rows["hexagon_yes"]["correct"] is False  # a hexagon is there, but the agent cannot know
    assert rows["no_program"]["error"]["type"] == "MissingProgramError"
    assert "has no program" in rows["no_program"]["error"]["message"]
    bad = rows["bad_program"]["error"]
    assert bad["type"] == "GivenProgramError" and "import" in bad["message"] and "undefined_thing" in bad["message"]

    # 12 known right, 3 of the 4 unknown right by chance (all "no"), 2 errors: 15 / 18
    assert (summary["correct"], summary["total"], summary["accuracy"]) == (15, 18, 83.33)
    unknown = summary["unknown_concepts"]
    assert unknown["by_concept"] == {"hexagon": 2, "heart": 1, "metal": 1}
    assert (unknown["calls"], unknown["samples"], unknown["samples_correct"]) == (4, 4, 3)
    assert unknown["perception_calls"] > 15
    assert "warning: 4 of" in out and "hexagon (2)" in out
    assert summary["errors"]["by_type"] == {"MissingProgramError": 1, "GivenProgramError": 1}


def test_given_runs_clevr_nodes_and_left_logic_too(tmp_path: Path) -> None:
    from code_generator.given import GivenProgramGenerator
    from neptune_core.types import Sample

    gen = GivenProgramGenerator()
    clevr = [{"function": "scene", "inputs": [], "value_inputs": []}, {"function": "count", "inputs": [0]}]
    assert gen.program_for(Sample("c", "How many?", program=clevr)).origin == "symbolic"
    left = gen.program_for(Sample("l", "a cube?", program="exists(Object, lambda x: cube(x))"))
    assert left.origin == "symbolic" and "score(" in left.source
    python = gen.program_for(Sample("p", "q", program="def execute(score, query, n):\n    return n\n"))
    assert python.origin == "given" and python.source.startswith("def execute")


@pytest.mark.parametrize("generator", ["given", "symbolic_clevr"])
def test_no_program_and_no_llm_fails_before_the_first_sample(tmp_path: Path, capsys, generator: str) -> None:
    write_images(tmp_path / "data")
    write_jsonl(
        tmp_path / "data" / "plain.jsonl",
        [{"image": "imgs/paper.png", "question": "Is there a star?", "answer": "yes"}] * 1
        + [{"id": "b", "image": "imgs/sky.png", "question": "Is there a star?", "answer": "no"}],
    )
    config = {**OFFLINE, "data_path": "plain.jsonl", "program_generator": generator}
    assert _run(tmp_path, config, "none") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none of the 2 samples has a program" in err and "'llm'" in err
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())  # no stub run folder


def test_python_programs_with_a_translator_fail_before_the_first_sample(tmp_path: Path, capsys) -> None:
    build_given_programs(tmp_path / "data")
    config = {**OFFLINE, "data_path": "given.jsonl", "program_generator": "symbolic_clevr"}
    assert _run(tmp_path, config, "translator") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "(CLEVR functional programs); 17 carry other programs" in err
    assert "program_generator 'given' runs them" in err


def test_jsonl_task_is_checked_and_unlabelled_lines_load(tmp_path: Path) -> None:
    from local_datasets import load_samples
    from neptune_core.config import load_config
    from neptune_core.errors import UserError

    write_images(tmp_path)
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"image": "imgs/paper.png", "question": "the star", "task": "grounding"},
            {"image": "imgs/paper.png", "question": "Is it?", "box": [1, 2, 3, 4], "box_format": "xywh"},
        ],
    )
    samples = load_samples(load_config(None, {"dataset": "jsonl", "data_path": str(path)}))
    assert samples[0].answer is None and samples[0].meta["task"] == "grounding"
    assert samples[1].answer == [1.0, 2.0, 4.0, 6.0] and "task" not in samples[1].meta
    write_jsonl(path, [{"image": "imgs/paper.png", "question": "q", "task": "gqa2"}])
    with pytest.raises(UserError, match=r"t.jsonl line 1: unknown task 'gqa2'; known prompt families: clevr"):
        load_samples(load_config(None, {"dataset": "jsonl", "data_path": str(path)}))
