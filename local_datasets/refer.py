"""Referring-expression datasets in the REFER layout (Yu et al. 2016): Ref-Adv
(RefCOCOg-based, Akula et al. 2020) and Ref-GTA (Tanaka et al. 2019).

Layout (paths relative to ``data_root``)::

    <data_path>/refs(<split_by>).p    pickle: [{"ref_id", "ann_id", "image_id", "split",
                                               "sentences": [{"sent_id", "sent", "raw"}], ...}]
    <data_path>/instances.json         {"images": [{"id", "file_name"}], "annotations": [{"id",
                                        "image_id", "bbox": [x, y, w, h], "category_id"}], "categories"}
    <image_dir>/<file_name>            (default: <data_path>/images)

``split_by`` picks the refs file (umd, google, unc, utokyo; empty = the only refs file
present); ``split`` keeps refs of that split ("all" keeps every split). One Sample per
sentence: ``question`` is the sentence, ``answer`` the referred box as xyxy pixels
(REFER boxes are xywh), ``meta`` has ref/ann/image ids, the category (the family) and split.

The refs file is a pickle; it is read with an unpickler that only accepts plain data
(dicts, lists, strings, numbers), so a crafted file cannot run code.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neptune_core.errors import UserError
from neptune_core.types import Box, Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

DEFAULT_PATHS = {"refadv": "refadv", "refgta": "refgta"}


class _PlainDataUnpickler(pickle.Unpickler):
    """Refuses every class: REFER refs are plain dicts/lists/strings/numbers."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset", "tuple"):
            return {"set": set, "frozenset": frozenset, "tuple": tuple}[name]
        raise pickle.UnpicklingError(f"refs pickle refers to {module}.{name}; only plain data is accepted")


def read_refs(path: Path) -> list[dict[str, Any]]:
    """The refs list of a REFER pickle (Python 2 pickles included)."""
    try:
        with open(path, "rb") as f:
            refs = _PlainDataUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise UserError(f"{path} is not a REFER refs pickle: {e}") from None
    if not isinstance(refs, list):
        raise UserError(f"{path} must hold a list of refs, got {type(refs).__name__}")
    return refs


def xywh_to_xyxy(box: list[float]) -> Box:
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def refs_file(root: Path, split_by: str) -> Path:
    """``refs(<split_by>).p`` in ``root``; with no split_by, the only refs file there."""
    if split_by:
        path = root / f"refs({split_by}).p"
        if not path.is_file():
            others = sorted(p.name for p in root.glob("refs(*).p"))
            raise UserError(f"{path} not found (refs files in {root}: {', '.join(others) or 'none'})")
        return path
    found = sorted(root.glob("refs(*).p"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise UserError(f"set split_by to pick the refs file in {root} (found: {names})")
    return found[0]


def load_refer(config: RunConfig, dataset: str | None = None) -> list[Sample]:
    """One Sample per sentence of every ref in ``config.split``."""
    dataset = dataset or config.dataset
    root = config.resolve_path(config.data_path or DEFAULT_PATHS.get(dataset, dataset))
    if not root.is_dir():
        raise UserError(f"REFER directory {root} does not exist (expected refs(<split_by>).p and instances.json)")
    refs = read_refs(refs_file(root, config.split_by))
    inst_path = root / "instances.json"
    if not inst_path.is_file():
        raise UserError(f"{inst_path} not found (REFER layout: instances.json next to the refs pickle)")
    try:
        instances = json.loads(inst_path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{inst_path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    anns = {a["id"]: a for a in instances.get("annotations", [])}
    images = {im["id"]: im for im in instances.get("images", [])}
    cats = {c["id"]: c.get("name", str(c["id"])) for c in instances.get("categories", [])}
    image_dir = config.resolve_path(config.image_dir) if config.image_dir else root / "images"
    splits = sorted({str(r.get("split")) for r in refs})
    if config.split != "all" and config.split not in splits:
        raise UserError(f"split {config.split!r} has no refs in {root}; splits there: {', '.join(splits)} (or 'all')")

    samples: list[Sample] = []
    for ref in refs:
        if config.split != "all" and ref.get("split") != config.split:
            continue
        ann = anns.get(ref["ann_id"])
        image = images.get(ref["image_id"])
        if ann is None or image is None:
            raise UserError(
                f"ref {ref.get('ref_id')} points to ann {ref['ann_id']} / image {ref['image_id']} "
                f"missing from {inst_path.name}"
            )
        box = xywh_to_xyxy(ann["bbox"])
        category = cats.get(ref.get("category_id", ann.get("category_id")), "object")
        for sent in ref.get("sentences", []):
            text = sent.get("sent") or sent.get("raw")
            if not text:
                raise UserError(f"ref {ref.get('ref_id')} has a sentence without text: {sent!r:.120}")
            samples.append(
                Sample(
                    id=f"{ref['ref_id']}_{sent.get('sent_id', len(samples))}",
                    question=str(text),
                    answer=box,
                    image_path=str(image_dir / image["file_name"]),
                    meta={
                        "family": category,
                        "split": ref.get("split"),
                        "ref_id": ref["ref_id"],
                        "ann_id": ref["ann_id"],
                        "image_id": ref["image_id"],
                    },
                )
            )
            if 0 < config.num_samples <= len(samples):
                return samples
    return samples


def load_refadv(config: RunConfig) -> list[Sample]:
    return load_refer(config, "refadv")


def load_refgta(config: RunConfig) -> list[Sample]:
    return load_refer(config, "refgta")
