"""GQA (Hudson & Manning 2019): balanced questions about real images (``dataset: "gqa"``).

Official layout (``data_path``, default ``gqa``, relative to data_root)::

    <data_path>/testdev_balanced_questions.json   {question id: {"imageId", "question", "answer",
                                                   "fullAnswer", "types": {"structural", "semantic",
                                                   "detailed"}, ...}}
    <data_path>/images/<imageId>.jpg               (or image_dir)

``split`` picks the file: ``testdev`` -> ``testdev_balanced_questions.json``; a split with an
underscore names it whole (``testdev_all`` -> ``testdev_all_questions.json``); the file may
also sit in ``<data_path>/questions/``.

A Hugging Face copy in lmms-lab's layout (``hf_path``: a local copy of lmms-lab/GQA, or the hub
id): ``<hf_path>/<split>_balanced_instructions/*.parquet`` (id, imageId, question, answer,
types) and ``<hf_path>/<split>_balanced_images/*.parquet`` (id, image), joined on the image id.

One Sample per question: the answer is the gold word; ``meta``: ``family`` = the structural
type (verify, query, choose, logical, compare), ``question_type`` = the detailed type (what
VLAgent's "20 questions per type" samples by: ``sampler.per_type``), ``semantic`` type and
image id. Scoring: exact match after the official VQA answer normalisation
(analysis/benchmarks.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from local_datasets.layout import data_folder, find_file, image_folder, limit, read_json
from neptune_core.errors import UserError
from neptune_core.types import Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


def question_file_name(split: str) -> str:
    return f"{split}_questions.json" if "_" in split else f"{split}_balanced_questions.json"


def _meta(types: Any, image_id: str, split: str) -> dict[str, Any]:
    types = types if isinstance(types, dict) else {}
    return {
        "family": str(types.get("structural") or "unknown"),
        "question_type": str(types.get("detailed") or types.get("structural") or "unknown"),
        "semantic": str(types.get("semantic") or ""),
        "image_id": image_id,
        "split": split,
    }


def load_gqa(config: RunConfig) -> list[Sample]:
    """One Sample per question of ``split`` (official layout, or lmms-lab's copy with ``hf_path``)."""
    if config.hf_path:
        return _load_copy(config)
    expected = f"{question_file_name(config.split)} and images/"
    root = data_folder(config, "gqa", "GQA", expected)
    path = find_file([root, root / "questions"], [question_file_name(config.split)], f"GQA {config.split} questions")
    questions = read_json(path)
    if not isinstance(questions, dict):
        raise UserError(f"{path} must hold an object {{question id: question}}")
    images = image_folder(config, root / "images", "GQA", " (the GQA images, <imageId>.jpg)")
    samples = []
    for qid, q in questions.items():
        if not isinstance(q, dict) or not isinstance(q.get("question"), str) or "imageId" not in q:
            raise UserError(f"{path}: question {qid} needs 'question' and 'imageId'")
        samples.append(
            Sample(
                id=str(qid),
                question=q["question"],
                answer=None if q.get("answer") is None else str(q["answer"]),
                image_path=str(images / f"{q['imageId']}.jpg"),
                meta=_meta(q.get("types"), str(q["imageId"]), config.split),
            )
        )
    return limit(samples, config)


def _load_copy(config: RunConfig) -> list[Sample]:
    import datasets

    from local_datasets.hf import HFSample, undecoded_images

    name = config.split if "_" in config.split else f"{config.split}_balanced"
    local = config.resolve_path(config.hf_path)
    try:
        if local.is_dir():
            parts = {}
            for kind in ("instructions", "images"):
                folder = local / f"{name}_{kind}"
                if not any(folder.glob("*.parquet")):
                    raise UserError(f"GQA copy {local}: no {name}_{kind}/*.parquet (lmms-lab/GQA's layout)")
                parts[kind] = datasets.load_dataset("parquet", data_files=str(folder / "*.parquet"), split="train")
        else:
            split = config.hf_split or config.split.split("_")[0]
            parts = {
                k: datasets.load_dataset(config.hf_path, f"{name}_{k}", split=split) for k in ("instructions", "images")
            }
    except UserError:
        raise
    except Exception as e:  # datasets raises many types; the user needs one line
        raise UserError(f"could not read the GQA copy {config.hf_path}: {type(e).__name__}: {str(e)[:300]}") from None
    questions, pictures = parts["instructions"], parts["images"]
    for table, cols in ((questions, ("id", "imageId", "question", "answer")), (pictures, ("id", "image"))):
        missing = [c for c in cols if c not in table.column_names]
        if missing:
            raise UserError(f"GQA copy {config.hf_path}: no column(s) {', '.join(missing)} in {table.column_names}")
    pictures = undecoded_images(pictures, ["image"])
    row_of = {str(iid): k for k, iid in enumerate(parts["images"]["id"])}
    keep = [c for c in ("id", "imageId", "question", "answer", "types") if c in questions.column_names]
    samples = []
    for rec in questions.select_columns(keep).to_list():
        image_id = str(rec["imageId"])
        if image_id not in row_of:
            raise UserError(
                f"GQA copy {config.hf_path}: image {image_id} of question {rec['id']} is not in {name}_images"
            )
        samples.append(
            HFSample(
                id=str(rec["id"]),
                question=rec["question"],
                answer=None if rec.get("answer") is None else str(rec["answer"]),
                meta=_meta(rec.get("types"), image_id, config.split),
                source=pictures,
                row=row_of[image_id],
                image_column="image",
                base_dir=local if local.is_dir() else None,
            )
        )
    return limit(samples, config)
