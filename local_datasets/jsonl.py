"""Bring your own data: one JSON object per line (``dataset: "jsonl"``).

``data_path`` (relative to ``data_root``) is the .jsonl file. Each line::

    {"image": "imgs/0001.png", "question": "Is the cup left of the plate?", "answer": "yes"}
    {"image": "imgs/0002.png", "question": "the dog on the left", "box": [10, 20, 110, 140]}

Keys: ``image`` (or ``image_path``; relative to ``image_dir`` if set, else to the
file's folder), ``question``, and either ``answer`` (a string or number: VQA) or
``box`` (xyxy pixels: a referring expression; ``box_format: "xywh"`` converts).
Optional: ``id`` (default: the line number), ``boxes`` (pre-detected xyxy boxes, for
``od_model: gt``), ``family``, ``program``. Blank lines are skipped.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from neptune_core.errors import UserError
from neptune_core.types import Box, Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


def _box(value: Any, fmt: str, where: str) -> Box:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise UserError(f"{where}: a box must be 4 numbers [x1, y1, x2, y2], got {value!r:.80}")
    box = [float(v) for v in value]
    if fmt == "xywh":
        box = [box[0], box[1], box[0] + box[2], box[1] + box[3]]
    elif fmt != "xyxy":
        raise UserError(f"{where}: box_format must be 'xyxy' or 'xywh', got {fmt!r}")
    if box[2] < box[0] or box[3] < box[1]:
        raise UserError(f"{where}: box {box} has x2 < x1 or y2 < y1 (is it xywh? set box_format)")
    return box


def load_jsonl(config: RunConfig) -> list[Sample]:
    """One Sample per non-blank line of the JSONL file ``data_path``."""
    if not config.data_path:
        raise UserError("dataset 'jsonl' needs data_path: a .jsonl file with one question per line")
    path = config.resolve_path(config.data_path)
    if not path.is_file():
        raise UserError(f"JSONL file not found: {path}")
    image_dir = config.resolve_path(config.image_dir) if config.image_dir else path.parent
    samples: list[Sample] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where} is not valid JSON: {e.msg}") from None
        if not isinstance(rec, dict):
            raise UserError(f"{where} must be a JSON object")
        image = rec.get("image", rec.get("image_path"))
        if not isinstance(image, str) or not isinstance(rec.get("question"), str):
            raise UserError(f"{where} needs 'image' (a path) and 'question' (a string)")
        fmt = str(rec.get("box_format", "xyxy"))
        if "box" in rec:
            answer: Any = _box(rec["box"], fmt, where)
        elif "answer" in rec:
            answer = str(rec["answer"])
        else:
            raise UserError(f"{where} needs 'answer' (VQA) or 'box' (referring expression)")
        sid = str(rec.get("id", lineno))
        if sid in seen:
            raise UserError(f"{where}: duplicate id {sid!r}")
        seen.add(sid)
        boxes = [_box(b, fmt, where) for b in rec["boxes"]] if rec.get("boxes") is not None else None
        samples.append(
            Sample(
                id=sid,
                question=rec["question"],
                answer=answer,
                image_path=str(image_dir / image),
                boxes=boxes,
                program=rec.get("program"),
                meta={
                    "family": str(rec.get("family", "box" if "box" in rec else "answer")),
                    "task": str(rec.get("task", "refexp" if "box" in rec else "clevr_humans")),
                    "line": lineno,
                },
            )
        )
        if 0 < config.num_samples <= len(samples):
            break
    return samples
