"""VQAv2 (Goyal et al. 2017): open questions about COCO images with ten human answers each
(``dataset: "vqav2"``).

Official layout (``data_path``, default ``vqav2``, relative to data_root; ``split``: ``val2014``)::

    <data_path>/v2_OpenEnded_mscoco_val2014_questions.json   {"questions": [{"image_id", "question",
                                                              "question_id"}, ...]}
    <data_path>/v2_mscoco_val2014_annotations.json           {"annotations": [{"question_id",
                                                              "question_type", "answer_type",
                                                              "multiple_choice_answer", "answers":
                                                              [{"answer", "answer_confidence",
                                                              "answer_id"}] x 10}, ...]}
    <data_path>/val2014/COCO_val2014_<image_id, 12 digits>.jpg   (or image_dir)

(The two JSON files may also sit in ``<data_path>/Questions`` and ``<data_path>/Annotations``.)

A Hugging Face copy in lmms-lab/VQAv2's layout (``hf_path``, ``hf_split: "validation"``):
columns question_id, question, image, answers, multiple_choice_answer, question_type, answer_type.

One Sample per question: the gold answer is ``multiple_choice_answer``; ``meta``: ``answers``
(the ten human answers, in annotator order: the official accuracy, analysis/benchmarks.py),
``family`` = the answer type (yes/no, number, other), ``question_type`` (65 types; VLAgent's
"20 per type": ``sampler.per_type``), image id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from local_datasets.layout import data_folder, find_file, image_folder, limit, read_json
from neptune_core.errors import UserError
from neptune_core.types import Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


def file_names(split: str) -> tuple[str, str]:
    """(questions, annotations) file names of a split (``val2014``)."""
    return f"v2_OpenEnded_mscoco_{split}_questions.json", f"v2_mscoco_{split}_annotations.json"


def image_name(split: str, image_id: int | str) -> str:
    return f"COCO_{split}_{int(image_id):012d}.jpg"


def human_answers(answers: Any, where: str) -> list[str]:
    """The human answers of one question, in annotator (answer_id) order."""
    if not isinstance(answers, list) or not answers:
        raise UserError(f"{where}: 'answers' must be the list of human answers")
    if all(isinstance(a, dict) for a in answers):
        ordered = sorted(answers, key=lambda a: a.get("answer_id", 0))
        return [str(a.get("answer", "")) for a in ordered]
    return [str(a) for a in answers]


def _meta(ann: dict[str, Any], answers: list[str], split: str) -> dict[str, Any]:
    return {
        "answers": answers,
        "family": str(ann.get("answer_type") or "unknown"),
        "question_type": str(ann.get("question_type") or "unknown"),
        "image_id": ann.get("image_id"),
        "split": split,
    }


def load_vqav2(config: RunConfig) -> list[Sample]:
    """One Sample per question of ``split`` that has an annotation (official layout, or ``hf_path``)."""
    if config.hf_path:
        return _load_copy(config)
    q_name, a_name = file_names(config.split)
    root = data_folder(config, "vqav2", "VQAv2", f"{q_name}, {a_name} and {config.split}/")
    q_path = find_file([root, root / "Questions"], [q_name], f"VQAv2 {config.split} questions")
    a_path = find_file([root, root / "Annotations"], [a_name], f"VQAv2 {config.split} annotations")
    questions, annotations = read_json(q_path), read_json(a_path)
    if not isinstance(questions, dict) or not isinstance(questions.get("questions"), list):
        raise UserError(f"{q_path} must hold {{'questions': [...]}}")
    if not isinstance(annotations, dict) or not isinstance(annotations.get("annotations"), list):
        raise UserError(f"{a_path} must hold {{'annotations': [...]}}")
    by_qid = {a["question_id"]: a for a in annotations["annotations"] if isinstance(a, dict) and "question_id" in a}
    images = image_folder(config, root / config.split, "VQAv2", f" (COCO {config.split} images)")
    samples = []
    for q in questions["questions"]:
        ann = by_qid.get(q.get("question_id"))
        if ann is None:  # a test split: questions without answers are not scored
            continue
        where = f"{a_path.name} question {q['question_id']}"
        answers = human_answers(ann.get("answers"), where)
        samples.append(
            Sample(
                id=str(q["question_id"]),
                question=str(q["question"]),
                answer=str(ann.get("multiple_choice_answer") or answers[0]),
                image_path=str(images / image_name(config.split, q["image_id"])),
                meta=_meta(ann, answers, config.split),
            )
        )
    if not samples:
        raise UserError(f"no question of {q_path.name} has an annotation in {a_path.name}")
    return limit(samples, config)


def _load_copy(config: RunConfig) -> list[Sample]:
    from local_datasets.hf import HFSample, read_copy

    columns = {"id": "question_id", "question": "question", "answer": "multiple_choice_answer", "answers": "answers",
               "question_type": "question_type", "answer_type": "answer_type", "image": "image"}  # fmt: skip
    copy = read_copy(config, columns)
    samples = []
    for i, row in enumerate(copy.rows):
        answers = human_answers(row["answers"], f"{config.hf_path} row {i}")
        ann = {"answer_type": row["answer_type"], "question_type": row["question_type"]}
        samples.append(
            HFSample(
                id=str(row["id"]),
                question=str(row["question"]),
                answer=str(row["answer"] or answers[0]),
                meta=_meta(ann, answers, config.hf_split or config.split),
                **copy.sample_kwargs(i),
            )
        )
    return limit(samples, config)
