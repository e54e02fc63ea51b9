"""NExT-QA (Xiao et al., CVPR 2021), multiple-choice video QA, in its release layout (dataset ``nextqa``).

Layout (github.com/doc-doc/NExT-QA, ``dataset/nextqa/``; the videos, NExTVideo, are downloaded apart)::

    <data_path>/train.csv | val.csv | test.csv   video,frame_count,width,height,question,answer,qid,type,a0..a4
    <data_path>/map_vid_vidorID.json             video id -> "<folder>/<video id>"
    <image_dir>/<folder>/<video id>.mp4           image_dir defaults to <data_path>/NExTVideo

``answer`` is the index (0-4) of the right option among ``a0``..``a4``; ``type`` is the question
type: CW / CH (causal: why, how), TN / TC / TP (temporal: next, current, previous), DC / DL / DO
(descriptive: count, location, other). A sample's id is ``<video>_<qid>`` (the official
evaluation's key), its ``family`` the type, and ``meta["group"]`` the type's first letter.

VLAgent's sample (200 random questions of each type on the test split: 1,493, TP has only 93)
is the shared seeded sampler's ``sampler.per_type: 200`` (local_datasets/sampling.py; it counts
by the family, here the type, and writes its choice to selection.json). Videos are only opened
when their sample runs (a missing file is that sample's error).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_datasets.multiple_choice import mc_meta, with_options
from neptune_core.errors import UserError
from neptune_core.types import Sample
from neptune_core.video import VideoRef

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

COLUMNS = ("video", "frame_count", "width", "height", "question", "answer", "qid", "type")
OPTION_COLUMNS = ("a0", "a1", "a2", "a3", "a4")
MAP_FILE = "map_vid_vidorID.json"
TYPES = ("CW", "CH", "TN", "TC", "TP", "DC", "DL", "DO")
GROUPS = {"C": "causal", "T": "temporal", "D": "descriptive"}


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    """The rows of a NExT-QA CSV; a UserError naming the missing columns when it is not one."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (*COLUMNS, *OPTION_COLUMNS) if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{csv_path} is not a NExT-QA annotation file: no column(s) {', '.join(missing)}")
        return list(reader)


def _sample(row: dict[str, str], video_path: Path, split: str) -> Sample:
    options = [row[c].strip() for c in OPTION_COLUMNS]
    try:
        answer = int(row["answer"])
    except ValueError:
        answer = None
    qtype = row["type"].strip()
    question = row["question"].strip()
    if question and not question.endswith("?"):
        question += "?"
    meta: dict[str, Any] = mc_meta(
        question,
        options,
        answer,
        family=qtype,
        qtype=qtype,
        group=GROUPS.get(qtype[:1], "other"),
        split=split,
        video_id=row["video"],
    )
    return Sample(
        id=f"{row['video']}_{row['qid']}",
        question=with_options(question, options),
        answer=None if answer is None else options[answer],
        video=VideoRef(
            str(video_path),
            num_frames=int(row["frame_count"]) if row.get("frame_count", "").isdigit() else None,
            width=int(row["width"]) if row.get("width", "").isdigit() else None,
            height=int(row["height"]) if row.get("height", "").isdigit() else None,
        ),
        meta=meta,
    )


def load_nextqa(config: RunConfig) -> Iterator[Sample]:
    """NExT-QA samples of ``config.split`` (see the module docstring)."""
    if not config.data_path:
        raise UserError("dataset 'nextqa' needs data_path: the folder with train.csv / val.csv / test.csv")
    root = config.resolve_path(config.data_path)
    csv_path = root / f"{config.split}.csv"
    if not csv_path.is_file():
        raise UserError(
            f"NExT-QA annotations not found: {csv_path} (data_path holds {config.split}.csv and {MAP_FILE}, "
            "as github.com/doc-doc/NExT-QA's dataset/nextqa/)"
        )
    map_path = root / MAP_FILE
    if not map_path.is_file():
        raise UserError(f"NExT-QA video map not found: {map_path} (it maps each video id to <folder>/<video id>)")
    video_map: dict[str, str] = json.loads(map_path.read_text())
    video_dir = config.resolve_path(config.image_dir) if config.image_dir else root / "NExTVideo"
    if not video_dir.is_dir():
        raise UserError(
            f"NExT-QA videos not found: {video_dir} (set image_dir to the NExTVideo folder: <folder>/<video>.mp4)"
        )
    for row in read_rows(csv_path):
        rel = video_map.get(row["video"], row["video"])
        yield _sample(row, video_dir / f"{rel}.mp4", config.split)


__all__ = ["GROUPS", "TYPES", "load_nextqa", "read_rows"]
