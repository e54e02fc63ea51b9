"""Helpers (no tests here) for the journeys of a run against the fake OpenAI-compatible server:
a tiny synthetic CLEVR world, an LLM that answers each question with the program translated
from its ground truth (so a run with the scene oracle scores 100 %), and run.py in-process."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import run
from code_generator.clevr_translator import translate_clevr
from neptune_core.config import load_config
from neptune_core.types import Sample
from runners.base import Runner
from tests.fake_openai_server import Action, FakeOpenAIServer, is_probe, last_user_text, reply

SYNTHETIC = {"num_scenes": 2, "questions_per_scene": 4, "seed": 3, "image_width": 160, "image_height": 120}


def synthetic_samples(synthetic: dict[str, Any] | None = None) -> list[Sample]:
    return Runner(load_config(None, {"synthetic": synthetic or SYNTHETIC})).load_samples()


def llm_config(server_url: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A config (as JSON data) for the synthetic world with programs from the LLM at ``server_url``."""
    data: dict[str, Any] = {
        "dataset": "clevr_synthetic",
        "synthetic": SYNTHETIC,
        "vlm_model_name": "scene_oracle",
        "od_model": "gt",
        "program_generator": "llm",
        "code_gen_provider": "vllm",
        "code_gen_base_url": server_url,
        "code_gen_model_name": "fake-model",
        "code_gen_timeout_s": 2,
        "code_gen_http_retries": 2,
        "code_gen_backoff_s": 0.001,
        "code_gen_max_backoff_s": 0.01,
        "code_gen_max_retries": 0,
        "code_gen_concurrency": 1,
        "program_cache_address": str(tmp_path / "programs.json"),
        "output_dir": str(tmp_path / "exp"),
        "report": False,
        "semantics": {"iota": "minmax"},
    }
    data.update(overrides)
    return data


def write_config(tmp_path: Path, data: dict[str, Any], name: str = "journey.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def program_reply(source: str) -> str:
    return f'Objects: ["object"]\n```python\n{source}\n```\n'


class ProgramLLM:
    """A responder answering each question with its translated ground-truth program.

    ``asked`` lists the sample ids whose program was asked for, in order; ``hook(sample_id,
    n)`` (n: how many sample requests so far) may return an action instead (a failure).
    """

    def __init__(self, samples: list[Sample], hook: Callable[[str, int], Action | None] | None = None) -> None:
        # longest question first, so a question that contains another is matched as itself
        self.by_question = sorted(((s.question, s) for s in samples), key=lambda qs: -len(qs[0]))
        self.hook = hook
        self.asked: list[str] = []

    def sample_for(self, body: dict[str, Any]) -> Sample:
        text = last_user_text(body)
        for question, sample in self.by_question:
            if question in text:
                return sample
        raise AssertionError(f"no sample question in {text[-200:]!r}")

    def __call__(self, body: dict[str, Any]) -> Action:
        assert not is_probe(body)
        sample = self.sample_for(body)
        self.asked.append(sample.id)
        if self.hook is not None:
            action = self.hook(sample.id, len(self.asked))
            if action is not None:
                return action
        return reply(program_reply(translate_clevr(sample.program)))


def run_cli(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    """run.main in-process: (exit code, stdout, stderr without progress bars)."""
    code = run.main(argv)
    out, err = capsys.readouterr()
    return code, out, strip_bars(err)


_BAR = re.compile(r".*\d+/\d+ \[.*")


def strip_bars(err: str) -> str:
    """stderr without tqdm's progress lines (they are redrawn with carriage returns)."""
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and not _BAR.match(ln)]
    return "\n".join(lines)


def rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def only_run_dir(output_dir: Path) -> Path:
    dirs = [d for d in output_dir.iterdir() if d.is_dir()] if output_dir.exists() else []
    assert len(dirs) == 1, dirs
    return dirs[0]


def sample_requests(server: FakeOpenAIServer) -> int:
    return len(server.sample_requests())
