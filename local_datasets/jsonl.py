"""Bring your own data: one JSON object per line (``dataset: "jsonl"``).

``data_path`` (relative to ``data_root``) is the .jsonl file. Each line::

    {"image": "imgs/0001.png", "question": "Is the cup left of the plate?", "answer": "yes"}
    {"image": "imgs/0002.png", "question": "the dog on the left", "box": [10, 20, 110, 140]}
    {"image": "imgs/0003.png", "question": "Is there a star?", "answer": "yes",
     "program": "def execute(score, query, n):\n    return score('Is this a star?', 1).exists()\n"}

Keys: ``image`` (or ``image_path``; relative to ``image_dir`` if set, else to the
file's folder) and ``question``; a gold ``answer`` (a string or number: VQA) or
``box`` (xyxy pixels: grounding; ``box_format: "xywh"`` on the line or in the config
converts), or neither (predictions only). Optional: ``id`` (default: the line
number), ``task`` (the prompt family for LLM programs: ``vqa``, ``grounding``,
``clevr``, ...; default by the gold answer, see code_generator/prompting.py),
``program`` (Python source defining ``execute(score, query, n)``, a CLEVR node list
or a LEFT logic string; run by ``program_generator: "given"``), ``objects`` (what the
detector should look for with a given program), ``boxes`` (pre-detected xyxy boxes,
for ``od_model: gt``), ``family`` (a label the summary groups accuracy by). Blank
lines are skipped.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from code_generator.prompting import check_task
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


def _objects(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f'{where}: \'objects\' must be a list of names, e.g. ["cup", "table"]')
    return list(value)


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
        fmt = str(rec.get("box_format", config.box_format))
        answer: Any = None
        if rec.get("box") is not None:
            answer = _box(rec["box"], fmt, where)
        elif rec.get("answer") is not None:
            answer = str(rec["answer"])
        meta: dict[str, Any] = {"family": str(rec.get("family", "box" if "box" in rec else "answer")), "line": lineno}
        if rec.get("task") is not None:
            meta["task"] = check_task(str(rec["task"]), f"{where}: ")
        if rec.get("objects") is not None:
            meta["objects"] = _objects(rec["objects"], where)
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
                meta=meta,
            )
        )
        if 0 < config.num_samples <= len(samples):
            break
    return samples
