"""Loaders for the official CLEVR_v1.0 layout, CLEVR-Humans, and the on-the-fly synthetic world.

CLEVR_v1.0 (``data_path``)::

    questions/CLEVR_<split>_questions.json   {"questions": [{question_index, image_filename, question,
                                              answer, question_family_index, program: [...]}, ...]}
    scenes/CLEVR_<split>_scenes.json         optional (the test split has none)
    images/<split>/<image_filename>

CLEVR-Humans (``data_path``): ``CLEVR-Humans-<split>.json`` (in ``data_path`` or
``data_path/questions``), same question layout without programs; images and
optional scenes are found as for CLEVR, under the split named in the image file name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from local_datasets.synthetic.reference_executor import family_of
from neptune_core.config import RunConfig
from neptune_core.errors import UserError
from neptune_core.types import Box, Sample

CLEVR_IMAGE_WIDTH = 480  # official CLEVR renders; used for approximate boxes
_CLEVR_FOCAL = (CLEVR_IMAGE_WIDTH / 2) / math.tan(math.radians(49.13) / 2)
_SIZE_RADIUS = {"large": 0.7, "small": 0.35}


def canonical_program(program: Any, where: str) -> list[dict] | None:
    """A CLEVR program as ``{"function", "inputs", "value_inputs"}`` nodes, from any accepted form.

    The CLEVR v1.0 form passes unchanged; the generator's raw form (``type``, ``side_inputs``)
    and the bracket form (``filter_color[red]``) are rewritten. A malformed program is a
    one-line UserError naming ``where`` (the file and question)."""
    from code_generator.clevr_translator import ClevrTranslationError, normalise_node

    if program is None or program == []:
        return None
    if not isinstance(program, list):
        raise UserError(f"{where}: a CLEVR program must be a list of nodes, got {type(program).__name__}")
    try:
        nodes = [normalise_node(node, i) for i, node in enumerate(program)]
        canonical = [{"function": fn, "inputs": inputs, "value_inputs": values} for fn, inputs, values in nodes]
        family_of(canonical)
    except (ClevrTranslationError, ValueError) as e:
        raise UserError(f"{where}: malformed CLEVR program: {' '.join(str(e).split())[:300]}") from None
    return canonical


def program_meta(program: Sequence[dict] | None, family_index: int | None, split: str) -> dict[str, Any]:
    """meta for a Sample: family (from the last function, "humans" without a program), functions, ..."""
    if program:
        family = family_of(program)
        functions = sorted({node["function"] for node in program})
    else:
        family, functions = "humans", []
    return {"family": family, "functions": functions, "question_family_index": family_index, "split": split}


def approx_box(obj: dict, width: int = CLEVR_IMAGE_WIDTH, height: int = 320) -> Box:
    """Box from ``pixel_coords`` [x, y, depth] and size: CLEVR's camera, radius r at that depth."""
    x, y, depth = obj["pixel_coords"]
    r_px = _CLEVR_FOCAL * (width / CLEVR_IMAGE_WIDTH) * _SIZE_RADIUS[obj["size"]] / max(float(depth), 1e-3)
    return [max(0.0, x - r_px), max(0.0, y - r_px), min(float(width), x + r_px), min(float(height), y + r_px)]


def scene_boxes(scene: dict | None) -> list[Box] | None:
    """One box per object: its "bbox" when present, else :func:`approx_box`."""
    if scene is None:
        return None
    return [[float(c) for c in o["bbox"]] if "bbox" in o else approx_box(o) for o in scene["objects"]]


def _read_json(path: Path, key: str) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise UserError(f'{path} must hold a JSON object with a "{key}" list')
    return data[key]


def _data_dir(config: RunConfig, expected: str) -> Path:
    if not config.data_path:
        raise UserError(f"dataset '{config.dataset}' needs data_path: a directory with {expected}")
    root = config.resolve_path(config.data_path)
    if not root.is_dir():
        raise UserError(f"data path {root} does not exist: expected a directory with {expected}")
    return root


def _scenes_by_filename(root: Path, split: str) -> dict[str, dict]:
    path = root / "scenes" / f"CLEVR_{split}_scenes.json"
    if not path.is_file():
        return {}
    return {s["image_filename"]: s for s in _read_json(path, "scenes")}


def _question_sample(q: dict, split: str, root: Path, scenes: dict[str, dict], prefix: str = "") -> Sample:
    where = f"{prefix}{split} question {q.get('question_index')}"
    if not isinstance(q.get("image_filename"), str) or not isinstance(q.get("question"), str):
        raise UserError(f"{where}: needs 'image_filename' and 'question' (strings)")
    fname = q["image_filename"]
    m = re.match(r"CLEVR_([a-z]+)_\d+\.png$", fname)
    img_split = m.group(1) if m else split
    scene = scenes.get(fname)
    program = canonical_program(q.get("program"), where)
    return Sample(
        id=f"{prefix}{split}_{int(q['question_index']):06d}",
        question=q["question"],
        answer=q.get("answer"),
        image_path=str(root / "images" / img_split / fname),
        boxes=scene_boxes(scene),
        program=program,
        scene=scene,
        meta=program_meta(program, q.get("question_family_index"), split),
    )


def load_clevr(config: RunConfig) -> Iterator[Sample]:
    """CLEVR_v1.0 questions of ``config.split`` under ``data_path``."""
    split = config.split
    expected = f"CLEVR_v1.0 (questions/CLEVR_{split}_questions.json, images/{split}/)"
    root = _data_dir(config, expected)
    qpath = root / "questions" / f"CLEVR_{split}_questions.json"
    if not qpath.is_file():
        raise UserError(f"no {qpath}: data_path should be a CLEVR_v1.0 directory with {expected}")
    questions = _read_json(qpath, "questions")
    scenes = _scenes_by_filename(root, split)
    for i, q in enumerate(questions):
        q.setdefault("question_index", i)
    return (_question_sample(q, split, root, scenes) for q in questions)


def load_clevr_humans(config: RunConfig) -> Iterator[Sample]:
    """CLEVR-Humans questions (no programs; meta family "humans")."""
    split = config.split
    name = f"CLEVR-Humans-{split}.json"
    root = _data_dir(config, f"{name} and CLEVR images/")
    qpath = next((p for p in (root / name, root / "questions" / name) if p.is_file()), None)
    if qpath is None:
        raise UserError(f"no {name} in {root} or {root / 'questions'}: expected CLEVR-Humans questions there")
    return _iter_humans(_read_json(qpath, "questions"), split, root)


def _iter_humans(questions: list[dict], split: str, root: Path) -> Iterator[Sample]:
    scene_cache: dict[str, dict[str, dict]] = {}
    for i, q in enumerate(questions):
        q.setdefault("question_index", i)
        m = re.match(r"CLEVR_([a-z]+)_\d+\.png$", q["image_filename"])
        img_split = m.group(1) if m else split
        if img_split not in scene_cache:
            scene_cache[img_split] = _scenes_by_filename(root, img_split)
        yield _question_sample(q, split, root, scene_cache[img_split], prefix="humans_")


def load_clevr_synthetic(config: RunConfig) -> Iterator[Sample]:
    """The synthetic world generated on the fly from ``config.synthetic`` (PIL images, no files)."""
    from local_datasets.synthetic.world import iter_samples

    return iter_samples(config.synthetic, config.split)
