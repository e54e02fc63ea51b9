"""MME (Fu et al. 2023): two yes/no questions per image, in perception and cognition subsets
(``dataset: "mme"``; VLAgent uses existence, position and color: ``sampler.families``).

Official layout (``data_path``, default ``MME_Benchmark_release_version``, relative to data_root):
one folder per subset, in either of the release's two forms::

    <data_path>/existence/000000006040.jpg  + existence/000000006040.txt
    <data_path>/artwork/images/10002.jpg    + artwork/questions_answers_YN/10002.txt

each ``.txt`` holding one "question<TAB>answer" line per question (answer "Yes" or "No").

A Hugging Face copy in lmms-lab/MME's layout (``hf_path``, ``hf_split: "test"``): columns
question_id (the image, e.g. "existence/000000006040.jpg"), image, question, answer, category.

One Sample per question, id ``<subset>/<image file>#<k>`` (k = 0, 1: the question's place among
its image's questions); ``meta``: ``family`` = ``question_type`` = the subset, ``mme_image``
(``<subset>/<image file>``: acc+ needs both questions of an image right, analysis/benchmarks.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from local_datasets.layout import data_folder, limit
from neptune_core.errors import UserError
from neptune_core.types import Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _question_files(subset: Path) -> list[tuple[Path, Path]]:
    """(image, questions .txt) pairs of one subset folder, in image-name order."""
    if (subset / "questions_answers_YN").is_dir():
        pairs = []
        for txt in sorted((subset / "questions_answers_YN").glob("*.txt")):
            image = next((subset / "images" / f"{txt.stem}{s}" for s in IMAGE_SUFFIXES
                          if (subset / "images" / f"{txt.stem}{s}").is_file()), None)  # fmt: skip
            if image is None:
                raise UserError(f"MME: {txt} has no image {txt.stem}.jpg/.png in {subset / 'images'}")
            pairs.append((image, txt))
        return pairs
    return [
        (image, image.with_suffix(".txt"))
        for image in sorted(p for p in subset.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if image.with_suffix(".txt").is_file()
    ]


def _answer(text: str, where: str) -> str:
    answer = text.strip()
    if answer.lower() not in ("yes", "no"):
        raise UserError(f"{where}: an MME answer is Yes or No, got {answer!r:.40}")
    return answer.capitalize()


def _sample(subset: str, image_name: str, k: int, question: str, answer: str, **kwargs) -> Sample:
    key = f"{subset}/{image_name}"
    meta = {"family": subset, "question_type": subset, "mme_image": key}
    return kwargs.pop("cls", Sample)(id=f"{key}#{k}", question=question, answer=answer, meta=meta, **kwargs)


def load_mme(config: RunConfig) -> list[Sample]:
    """One Sample per question of every subset found (official layout, or lmms-lab's copy with ``hf_path``)."""
    if config.hf_path:
        return _load_copy(config)
    root = data_folder(config, "MME_Benchmark_release_version", "MME", "one folder per subset (existence/, ...)")
    samples: list[Sample] = []
    for subset in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for image, txt in _question_files(subset):
            lines = [ln for ln in txt.read_text(encoding="utf-8").splitlines() if ln.strip()]
            for k, line in enumerate(lines):
                if "\t" not in line:
                    raise UserError(f"MME: {txt} line {k + 1} is not 'question<TAB>answer'")
                question, answer = line.rsplit("\t", 1)
                ans = _answer(answer, f"{txt} line {k + 1}")
                samples.append(_sample(subset.name, image.name, k, question.strip(), ans, image_path=str(image)))
    if not samples:
        raise UserError(f"MME data not found: no subset folder in {root} holds images with question .txt files")
    return limit(samples, config)


def _load_copy(config: RunConfig) -> list[Sample]:
    from local_datasets.hf import HFSample, read_copy

    columns = {"id": "question_id", "question": "question", "answer": "answer", "category": "category",
               "image": "image"}  # fmt: skip
    copy = read_copy(config, columns)
    seen: Counter[str] = Counter()
    samples = []
    for i, row in enumerate(copy.rows):
        subset, image_name = str(row["category"]), str(row["id"]).rsplit("/", 1)[-1]
        k = seen[f"{subset}/{image_name}"]
        seen[f"{subset}/{image_name}"] += 1
        answer = _answer(str(row["answer"]), f"{config.hf_path} row {i}")
        samples.append(_sample(subset, image_name, k, str(row["question"]), answer, cls=HFSample,
                               **copy.sample_kwargs(i)))  # fmt: skip
    return limit(samples, config)
