"""HC-RefLoCo (Wei et al. 2024): one person per long description (appearance, position, action,
interaction, ...), found by a box (``dataset: "hc_refloco"``).

Official layout (the Hugging Face repository Jinjing713/HC-RefLoCo, cloned; ``data_path``,
default ``HC_RefLoCo``, relative to data_root)::

    <data_path>/hc_refloco_test.json      [{"id", "file_name", "width", "height", "bbox": [x, y, w, h],
                                            "caption", "labels": [{"category", ...}],
                                            "source_dataset", ...}, ...]
                                          (or hc_refloco_<split>.parquet; or an older
                                          hc_refloco.json whose records carry "split")
    <data_path>/images/<file_name>        (images.tar.gz extracted; or image_dir)

One Sample per annotation: the description is the question, the gold answer the person's box
as xyxy pixels; ``meta``: ``family`` = the first subject label (Appearance, Human-Object
Interaction, Celebrity, OCR, Action, Location), ``subjects`` = all of them, ``source_dataset``.
VLAgent samples 1,400 from test: ``sampler.total``. Scoring: Acc@0.5 / 0.75 / 0.9 and mAcc
with the benchmark's strict IoU > t (analysis/benchmarks.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_datasets.layout import data_folder, image_folder, limit, read_json
from neptune_core.errors import UserError
from neptune_core.types import Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


def _records(root: Path, split: str) -> tuple[list[dict[str, Any]], Path]:
    for name in (f"hc_refloco_{split}.json", f"hc_refloco_{split}.parquet"):
        path = root / name
        if path.is_file() and path.suffix == ".json":
            data = read_json(path)
            if not isinstance(data, list):
                raise UserError(f"{path} must hold a list of annotations")
            return data, path
        if path.is_file():
            import datasets

            return datasets.load_dataset("parquet", data_files=str(path), split="train").to_list(), path
    single = root / "hc_refloco.json"
    if single.is_file():
        data = read_json(single)
        if not isinstance(data, list):
            raise UserError(f"{single} must hold a list of annotations")
        return [r for r in data if isinstance(r, dict) and str(r.get("split", split)) == split], single
    raise UserError(
        f"HC-RefLOCO annotations not found: no hc_refloco_{split}.json, hc_refloco_{split}.parquet or "
        f"hc_refloco.json in {root}"
    )


def load_hc_refloco(config: RunConfig) -> list[Sample]:
    """One Sample per annotation of ``split`` (val or test)."""
    root = data_folder(config, "HC_RefLoCo", "HC-RefLOCO", f"hc_refloco_{config.split}.json and images/")
    records, path = _records(root, config.split)
    images = image_folder(config, root / "images", "HC-RefLOCO", " (extract images.tar.gz there)")
    samples = []
    for k, rec in enumerate(records):
        where = f"{path.name} annotation {k + 1}"
        box = rec.get("bbox") if isinstance(rec, dict) else None
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not isinstance(rec.get("caption"), str):
            raise UserError(f"{where} needs 'caption' and 'bbox' [x, y, w, h]")
        x, y, w, h = (float(v) for v in box)
        subjects = [str(lab.get("category")) for lab in rec.get("labels") or [] if isinstance(lab, dict)]
        samples.append(
            Sample(
                id=str(rec.get("id", k)),
                question=rec["caption"],
                answer=[x, y, x + w, y + h],
                image_path=str(images / str(rec["file_name"])),
                meta={
                    "family": subjects[0] if subjects else "person",
                    "subjects": subjects,
                    "source_dataset": rec.get("source_dataset"),
                    "split": config.split,
                },
            )
        )
    if not samples:
        raise UserError(f"{path} has no annotations of split {config.split!r}")
    return limit(samples, config)
