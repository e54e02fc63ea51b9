"""CLEVR-Transfer (LEFT, Hsu et al. 2023) in LEFT's own layout: referring expressions,
puzzles and RPM-style questions over the CLEVR-mini scenes.

Layout (paths relative to ``data_root``)::

    <data_path>/scenes.json        {"scenes": [{"image_filename", "objects": [...], "relationships"}]}
    <data_path>/images/<image_filename>            (or ``image_dir``)
    <questions_file>               refexps-*.json {"refexps": [...]}, puzzle-*.json {"puzzles": [...]},
                                   rpm-*.json {"rpms": [...]}; default: <kind>-*.json next to the scenes
                                   or in a sibling ``clevr-transfer/`` folder (LEFT's data/ layout)

A question entry has ``question``, ``program`` (LEFT first-order logic, a string),
``answer`` (an object index for refexps, true/false otherwise) and ``scene_index``
(puzzles: ``image_index``) into ``scenes``. Object boxes come from each scene object's
``mask`` (COCO RLE, as in LEFT's CLEVR-mini), else its ``bbox`` (xyxy pixels, the
synthetic world's convention), else its ``pixel_coords`` (approximate, as the CLEVR loader).

Samples: refexps have the gold object's box as ``answer`` and its index in
``meta["answer_index"]``; puzzles and RPMs have "yes"/"no". ``boxes`` are the scene's
boxes in object order and ``scene`` the scene dict (for the scene oracle).
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neptune_core.errors import UserError
from neptune_core.types import Box, Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

# dataset name -> (file prefix, top-level list key) as in LEFT's clevr_custom_transfer.py
KINDS: dict[str, tuple[str, str]] = {
    "clevr_refexps": ("refexps", "refexps"),
    "clevr_puzzle": ("puzzle", "puzzles"),
    "clevr_rpm": ("rpm", "rpms"),
}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """A COCO RLE mask (``{"size": [h, w], "counts": str | list}``) as an (h, w) bool array."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        counts = _rle_string_counts(counts.decode() if isinstance(counts, bytes) else counts)
    flat = np.zeros(h * w, dtype=bool)
    pos, value = 0, False
    for c in counts:
        if value:
            flat[pos : pos + c] = True
        pos += c
        value = not value
    if pos != h * w:
        raise ValueError(f"RLE counts cover {pos} pixels, the mask has {h * w}")
    return flat.reshape((w, h)).T  # COCO RLE runs are column-major


def _rle_string_counts(s: str) -> list[int]:
    """COCO's compressed RLE string -> run lengths (the inverse of pycocotools' rleToString)."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def object_box(obj: dict[str, Any]) -> Box:
    """The xyxy pixel box of a scene object, from its RLE ``mask`` or its xyxy ``bbox``."""
    if "mask" in obj:
        mask = rle_decode(obj["mask"])
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return [0.0, 0.0, 0.0, 0.0]
        return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    if "bbox" in obj:
        return [float(v) for v in obj["bbox"]]
    if "pixel_coords" in obj and "size" in obj:
        from local_datasets.clevr import approx_box

        return approx_box(obj)
    raise UserError("a scene object has no 'mask' (COCO RLE), 'bbox' or 'pixel_coords'; cannot place its box")


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise UserError(f"{what} not found: {path} (check data_root / data_path / questions_file)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {path} is not valid JSON: {e.msg} at line {e.lineno}") from None


def question_files(config: RunConfig, prefix: str, scenes_dir: Path) -> list[Path]:
    """The questions files: ``questions_file`` (a path or glob) or LEFT's default places."""
    if config.questions_file:
        pattern = str(config.resolve_path(config.questions_file))
        found = sorted(Path(p) for p in glob.glob(pattern))
        if not found:
            raise UserError(f"questions_file matches nothing: {pattern}")
        return found
    places = [scenes_dir, scenes_dir.parent / "clevr-transfer"]
    for place in places:
        found = sorted(place.glob(f"{prefix}-*.json"))
        if found:
            return found
    raise UserError(
        f"no {prefix}-*.json found in {' or '.join(str(p) for p in places)}; set questions_file to LEFT's {prefix} file"
    )


def load_clevr_transfer(config: RunConfig, dataset: str | None = None) -> list[Sample]:
    """Samples of one CLEVR-Transfer task (``config.dataset`` unless ``dataset`` is given)."""
    dataset = dataset or config.dataset
    if dataset not in KINDS:
        raise UserError(f"unknown CLEVR-Transfer dataset {dataset!r}; known: {', '.join(KINDS)}")
    prefix, key = KINDS[dataset]
    scenes_dir = config.resolve_path(config.data_path or "clevr-mini")
    scenes = _read_json(scenes_dir / "scenes.json", "CLEVR-mini scenes file")
    scenes = scenes["scenes"] if isinstance(scenes, dict) else scenes
    image_dir = config.resolve_path(config.image_dir) if config.image_dir else scenes_dir / "images"
    samples: list[Sample] = []
    boxes_cache: dict[int, list[Box]] = {}
    for qpath in question_files(config, prefix, scenes_dir):
        data = _read_json(qpath, f"CLEVR-Transfer {prefix} file")
        if not isinstance(data, dict) or key not in data:
            raise UserError(f"{qpath} has no top-level '{key}' list (LEFT's {prefix} layout)")
        for i, q in enumerate(data[key]):
            samples.append(_sample(q, i, qpath, prefix, scenes, image_dir, boxes_cache))
            if 0 < config.num_samples <= len(samples):
                return samples
    return samples


def _sample(
    q: dict[str, Any],
    i: int,
    qpath: Path,
    prefix: str,
    scenes: list[dict],
    image_dir: Path,
    cache: dict[int, list[Box]],
) -> Sample:
    where = f"{qpath.name} entry {i}"
    missing = [k for k in ("question", "program", "answer") if k not in q]
    idx = q.get("scene_index", q.get("image_index"))
    if missing or idx is None:
        raise UserError(f"{where} lacks {', '.join(missing + ([] if idx is not None else ['scene_index']))}")
    if not 0 <= int(idx) < len(scenes):
        raise UserError(f"{where}: scene_index {idx} is out of range ({len(scenes)} scenes in scenes.json)")
    scene = scenes[int(idx)]
    filename = scene.get("image_filename") or q.get("image_filename")
    if q.get("image_filename") and scene.get("image_filename") and q["image_filename"] != scene["image_filename"]:
        raise UserError(
            f"{where} names image {q['image_filename']} but scene {idx} is {scene['image_filename']}: wrong scenes.json?"
        )
    if int(idx) not in cache:
        cache[int(idx)] = [object_box(o) for o in scene["objects"]]
    boxes = cache[int(idx)]
    meta: dict[str, Any] = {"family": prefix, "scene_index": int(idx), "source": qpath.name}
    if prefix == "refexps":
        k = q["answer"]
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(boxes):
            raise UserError(f"{where}: answer {k!r} is not an object index of scene {idx}")
        answer: Any = boxes[k]
        meta["answer_index"] = k
    else:
        if not isinstance(q["answer"], bool):
            raise UserError(f"{where}: answer must be true or false, got {q['answer']!r}")
        answer = "yes" if q["answer"] else "no"
    return Sample(
        id=f"{qpath.stem}-{i}",
        question=str(q["question"]),
        answer=answer,
        image_path=str(image_dir / filename) if filename else None,
        boxes=boxes,
        program=str(q["program"]),
        scene=scene,
        meta=meta,
    )


def load_clevr_refexps(config: RunConfig) -> list[Sample]:
    return load_clevr_transfer(config, "clevr_refexps")


def load_clevr_puzzle(config: RunConfig) -> list[Sample]:
    return load_clevr_transfer(config, "clevr_puzzle")


def load_clevr_rpm(config: RunConfig) -> list[Sample]:
    return load_clevr_transfer(config, "clevr_rpm")
