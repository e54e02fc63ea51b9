"""NLVR2 (Suhr et al. 2019): is a statement true of a pair of images? (``dataset: "nlvr2"``)

Official layout (``data_path``, default ``nlvr2``, relative to data_root): the release's JSON-lines
files, one example per line (``identifier``, ``sentence``, ``label`` "True"/"False", ``left_url``,
``right_url``, ...), found as ``<split>.json`` in ``<data_path>``, ``<data_path>/data``,
``<data_path>/balanced`` or ``<data_path>/data/balanced`` (``split``: ``test1``, ``dev``,
``balanced_test1`` (the balanced test set), ``unbalanced_test1``, ...). Images (``image_dir``,
default ``<data_path>/images``): for identifier ``test1-123-1-0`` the left image is
``test1-123-1-img0.png`` and the right one ``test1-123-1-img1.png``, directly in the folder, in a
subfolder named after the split prefix (``test1/``) or after the example's ``directory`` (train).
Examples whose two images are not both there are left out with a warning (the release's URLs
expire: VLAgent kept 2,316 examples of the balanced test set); none found at all is an error.

A Hugging Face copy (``hf_path``) with columns ``identifier``, ``sentence``, ``label``,
``left_image``, ``right_image`` (rename with ``hf_columns``: id, question, answer, image, images).

One Sample per example: the statement is the question, the gold answer "True" or "False";
image 0 is the left image, image 1 the right one (``image=0`` / ``image=1`` in programs);
``meta``: ``family`` = the label in lower case, ``sentence_key`` (the identifier without its
pair index: the official consistency groups the pairs of one sentence).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_datasets.layout import data_folder, find_file, image_folder, limit, read_json_lines
from neptune_core.errors import UserError
from neptune_core.types import Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

log = logging.getLogger(__name__)


def label_of(value: Any, where: str) -> str:
    """ "True" / "False" from a label (string, bool or 0/1)."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return "True"
    if text in ("false", "0", "no"):
        return "False"
    raise UserError(f"{where}: label must be True or False, got {value!r:.40}")


def sentence_key(identifier: str) -> str:
    """The identifier without its pair index: the examples of one sentence share it (consistency)."""
    parts = identifier.split("-")
    return "-".join([*parts[:2], *parts[3:]]) if len(parts) >= 4 else identifier


def image_names(identifier: str) -> tuple[str, str]:
    """(left, right) image file names of an example identifier ``split-set-pair-sentence``."""
    stem = identifier.rsplit("-", 1)[0]
    return f"{stem}-img0.png", f"{stem}-img1.png"


def _find(folder: Path, name: str, subfolders: list[str]) -> Path | None:
    for sub in ["", *subfolders]:
        path = folder / sub / name if sub else folder / name
        if path.is_file():
            return path
    return None


def load_nlvr2(config: RunConfig) -> list[Sample]:
    """One Sample (two images) per example of ``split``; examples without both images are left out."""
    if config.hf_path:
        return _load_copy(config)
    name = f"{config.split}.json"
    root = data_folder(config, "nlvr2", "NLVR2", f"{name} (JSON lines) and images/")
    path = find_file(
        [root, root / "data", root / "balanced", root / "data" / "balanced"], [name], f"NLVR2 split {config.split}"
    )
    images = image_folder(config, root / "images", "NLVR2", " (<identifier minus sentence>-img0.png / -img1.png)")
    samples, missing = [], []
    for k, ex in enumerate(read_json_lines(path)):
        where = f"{path.name} example {k + 1}"
        if (
            not isinstance(ex, dict)
            or not isinstance(ex.get("identifier"), str)
            or not isinstance(ex.get("sentence"), str)
        ):
            raise UserError(f"{where} needs 'identifier' and 'sentence'")
        ident = ex["identifier"]
        subs = [ident.split("-", 1)[0], str(ex.get("directory", ""))]
        found = [_find(images, n, [s for s in subs if s]) for n in image_names(ident)]
        if None in found:
            missing.append(ident)
            continue
        samples.append(
            Sample(
                id=ident,
                question=ex["sentence"],
                answer=None if ex.get("label") is None else label_of(ex["label"], where),
                image_path=str(found[0]),
                more_images=[str(found[1])],
                meta={"family": str(ex.get("label", "unlabelled")).lower(), "sentence_key": sentence_key(ident),
                      "split": config.split},
            )
        )  # fmt: skip
    if missing and not samples:
        raise UserError(
            f"NLVR2: none of the {len(missing)} examples of {path.name} has both images in {images} "
            f"(looked for e.g. {image_names(missing[0])[0]}); set image_dir"
        )
    if missing:
        log.warning(
            "NLVR2: %d of %d examples of %s left out: their images are not in %s (e.g. %s)",
            len(missing), len(missing) + len(samples), path.name, images, missing[0],
        )  # fmt: skip
    return limit(samples, config)


def _load_copy(config: RunConfig) -> list[Sample]:
    from local_datasets.hf import HFSample, read_copy

    columns = {"id": "identifier", "question": "sentence", "answer": "label", "image": "left_image",
               "images": "right_image"}  # fmt: skip
    copy = read_copy(config, columns, ("image", "images"))
    samples = []
    for i, row in enumerate(copy.rows):
        ident = str(row["id"])
        samples.append(
            HFSample(
                id=ident,
                question=str(row["question"]),
                answer=label_of(row["answer"], f"{config.hf_path} row {i}"),
                meta={"family": label_of(row["answer"], "").lower(), "sentence_key": sentence_key(ident),
                      "split": config.hf_split or config.split},
                **copy.sample_kwargs(i),
            )
        )  # fmt: skip
    return limit(samples, config)
