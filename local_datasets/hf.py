"""Hugging Face datasets (``dataset: "hf"``): any `datasets` dataset, mapped onto Samples by a column map.

Config::

    "dataset": "hf",
    "hf_path": "mme",                 # relative to data_root, or absolute, or a hub id
    "hf_subset": "",                  # the hub dataset's configuration name, if it has several
    "hf_split": "test",               # "" = the only split
    "hf_columns": {"id": "question_id", "image": "image", "question": "question", "answer": "answer"}

``hf_path`` is, in this order: a directory written by ``save_to_disk`` (it holds
``dataset_info.json`` or ``dataset_dict.json``); a data file (``.parquet``, ``.arrow``,
``.jsonl``/``.json``, ``.csv``); a directory of data files in the Hub's layout (e.g.
``data/test-00000-of-00001.parquet``: split names come from the file names); else a hub
id, loaded with ``datasets.load_dataset`` (needs the network or the local Hugging Face
cache). Local paths work offline.

``hf_columns`` maps our fields to the dataset's columns. Fields: ``image`` and
``question`` (required), ``answer`` (a string, number or bool; or a list of answers,
strings or ``{"answer": ...}`` dicts as in VQAv2, whose most common one becomes the gold
answer and all of which go to ``meta["answers"]``), ``box`` (gold box, ``box_format``),
``boxes`` (pre-detected boxes), ``id``, ``task`` (prompt family), ``family`` (what
accuracy is grouped by, e.g. MME's ``category``), ``program``, ``objects``, and
``images`` (extra images: comma-separated columns, or one column holding a list). A
field not in the map uses the column of the same name when there is one (``id``:
``question_id``, then ``id``). An image column may hold ``datasets.Image`` values,
``{"bytes", "path"}`` structs (lmms-eval's parquet layout), raw bytes, or file paths
(relative to ``image_dir``, else to ``hf_path``'s folder). Images are decoded only when
a sample is processed (:class:`HFSample`); the other columns are read once.

Issue-specific loaders (GQA, VQAv2, MME, ...) can be a config with a column map, or a
small function here that calls :func:`load_hf` with a fixed map.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from local_datasets.jsonl import _box
from neptune_core.errors import UserError
from neptune_core.types import Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

log = logging.getLogger(__name__)

FIELDS = ("image", "question", "answer", "box", "boxes", "id", "task", "family", "program", "objects", "images")
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {  # used when hf_columns does not name a field
    "image": ("image",),
    "question": ("question",),
    "answer": ("answer",),
    "id": ("question_id", "id"),
}
DATA_FILE_BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json", ".csv": "csv"}


@dataclass
class HFSample(Sample):
    """A Sample whose image (and extra images) stay in the dataset until :meth:`load_image`."""

    source: Any = field(default=None, repr=False, compare=False)  # the dataset (image columns, undecoded)
    row: int = 0
    image_column: str = ""
    extra_columns: tuple[str, ...] = ()
    base_dir: Path | None = field(default=None, repr=False, compare=False)

    def load_image(self) -> Image.Image:
        if self.image is not None or self.source is None:
            return super().load_image()
        return decode_image(self.source[self.row][self.image_column], self.base_dir, f"sample {self.id}")

    def extra_images(self) -> list[Image.Image]:
        """The sample's extra images (``hf_columns["images"]``), decoded now, in column order."""
        if self.source is None:
            return []
        rec = self.source[self.row]
        out: list[Image.Image] = []
        for col in self.extra_columns:
            values = rec[col] if isinstance(rec[col], list) else [rec[col]]
            out += [decode_image(v, self.base_dir, f"sample {self.id} column {col}") for v in values if v is not None]
        return out

    def load_images(self) -> list[Image.Image]:
        """The image column's image, then the extra columns' (``image=1``, ``image=2``... in programs)."""
        return [*super().load_images(), *self.extra_images()]

    def image_names(self) -> list[str]:
        if self.image is not None or self.source is None:
            return super().image_names()
        return [f"row {self.row} column {c}" for c in (self.image_column, *self.extra_columns)]


def decode_image(value: Any, base_dir: Path | None, where: str) -> Image.Image:
    """An RGB image from a column value: PIL image, {"bytes", "path"} struct, bytes, or a file path."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        if value.get("bytes"):
            value = value["bytes"]
        elif value.get("path"):
            value = value["path"]
        else:
            raise ValueError(f"{where}: the image struct has neither bytes nor a path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        with Image.open(io.BytesIO(bytes(value))) as im:
            return im.convert("RGB")
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        with Image.open(path) as im:
            return im.convert("RGB")
    raise ValueError(f"{where}: cannot read an image from a {type(value).__name__}")


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in ("dataset_info.json", "dataset_dict.json", "state.json"))


def open_dataset(config: RunConfig) -> tuple[Any, Path | None]:
    """(the ``datasets`` Dataset or DatasetDict named by ``hf_path``, the local folder it came from or None)."""
    import datasets

    if not config.hf_path:
        raise UserError('dataset "hf" needs hf_path: a save_to_disk directory, parquet file(s), or a hub id')
    local = config.resolve_path(config.hf_path)
    name = config.hf_subset or None
    try:
        if _is_saved_dataset(local):
            return datasets.load_from_disk(str(local)), local
        if local.is_file():
            builder = DATA_FILE_BUILDERS.get(local.suffix.lower())
            if builder is None:
                known = ", ".join(DATA_FILE_BUILDERS)
                raise UserError(f"hf_path {local}: cannot read {local.suffix!r} files; use one of {known}")
            return datasets.load_dataset(builder, data_files=str(local)), local.parent
        if local.is_dir():  # only the chosen split is converted (a folder may hold several big ones)
            return datasets.load_dataset(str(local), name=name, split=config.hf_split or None), local
    except UserError:
        raise
    except Exception as e:  # datasets raises many types; the user needs one line
        raise UserError(f"could not read the dataset at {local}: {type(e).__name__}: {_one_line(e)}") from None
    if config.hf_path.startswith((".", "/", "~")) or local.suffix.lower() in DATA_FILE_BUILDERS:
        raise UserError(f"hf_path {local} does not exist (a local dataset directory or file was expected)")
    try:
        return datasets.load_dataset(config.hf_path, name=name, split=config.hf_split or None), None
    except Exception as e:
        raise UserError(
            f"could not load hub dataset {config.hf_path!r}: {type(e).__name__}: {_one_line(e)} "
            "(offline? download it once, or save it with save_to_disk and point hf_path at that folder)"
        ) from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


def pick_split(obj: Any, split: str, path: str) -> tuple[Any, str]:
    """(the Dataset of ``split`` (or the only one), its split name) from a Dataset or DatasetDict."""
    import datasets

    if isinstance(obj, datasets.DatasetDict):
        names = list(obj.keys())
        if split:
            if split not in obj:
                raise UserError(f"{path} has no split {split!r}; its splits: {', '.join(names)} (set hf_split)")
            return obj[split], split
        if len(names) != 1:
            raise UserError(f"{path} has splits {', '.join(names)}: choose one with hf_split")
        return obj[names[0]], names[0]
    own = str(obj.split) if getattr(obj, "split", None) is not None else ""
    if split and own and own != split:
        raise UserError(f"{path} holds split {own!r}, not hf_split {split!r}")
    return obj, split or own or "data"


def column_map(config: RunConfig, columns: list[str]) -> dict[str, str | list[str]]:
    """Our field -> the dataset's column(s): ``hf_columns`` first, then same-named columns."""
    unknown = sorted(set(config.hf_columns) - set(FIELDS))
    if unknown:
        raise UserError(f"hf_columns has unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    out: dict[str, str | list[str]] = {}
    for f in FIELDS:
        if f in config.hf_columns:
            wanted = [c.strip() for c in config.hf_columns[f].split(",") if c.strip()]
            missing = [c for c in wanted if c not in columns]
            if missing or not wanted:
                raise UserError(
                    f"hf_columns.{f}: no column {', '.join(missing) or repr(config.hf_columns[f])}; "
                    f"the dataset's columns: {', '.join(columns)}"
                )
            out[f] = wanted if f == "images" else wanted[0]
        else:
            found = next((c for c in DEFAULT_COLUMNS.get(f, (f,)) if c in columns), None)
            if found is not None and f != "images":
                out[f] = found
    for required in ("image", "question"):
        if required not in out:
            raise UserError(
                f'dataset "hf" needs a {required} column: set hf_columns.{required} to one of {", ".join(columns)}'
            )
    return out


def gold_answer(value: Any) -> tuple[str | None, list[str] | None]:
    """(gold answer, all answers or None) from an answer cell (string, number, bool, or a list)."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return ("yes" if value else "no"), None
    if isinstance(value, (list, tuple)):
        answers = [str(v.get("answer") if isinstance(v, dict) else v) for v in value if v is not None]
        if not answers:
            return None, []
        return Counter(answers).most_common(1)[0][0], answers
    if isinstance(value, dict) and "answer" in value:
        return str(value["answer"]), None
    return str(value), None


def undecoded_images(ds: Any, columns: list[str]) -> Any:
    """``ds`` reduced to its image ``columns``, with images kept undecoded until a sample needs its own."""
    import datasets

    images = ds.select_columns(list(dict.fromkeys(columns)))
    for col in images.column_names:
        feature = images.features[col]
        if isinstance(feature, datasets.Image):
            images = images.cast_column(col, datasets.Image(decode=False))
        elif isinstance(getattr(feature, "feature", None), datasets.Image):  # a list of images
            images = images.cast_column(col, type(feature)(datasets.Image(decode=False)))
    return images


@dataclass
class Copy:
    """A benchmark's Hugging Face copy, read by :func:`read_copy`."""

    rows: list[dict[str, Any]]  # our field -> value, one dict per row (text fields only)
    images: Any  # the image columns, undecoded (a datasets.Dataset), or None
    image_columns: list[str]  # the dataset's names of the image fields, in the order asked for
    folder: Path | None  # where a local copy lives (None: a hub id)

    def sample_kwargs(self, row: int) -> dict[str, Any]:
        """The HFSample arguments that load row ``row``'s images lazily."""
        first, *more = self.image_columns
        return {"source": self.images, "row": row, "image_column": first, "extra_columns": tuple(more),
                "base_dir": self.folder}  # fmt: skip


def read_copy(config: RunConfig, columns: dict[str, str], image_fields: tuple[str, ...] = ("image",)) -> Copy:
    """A benchmark's Hugging Face copy (``hf_path``, ``hf_split``): ``columns`` maps our fields to the
    dataset's columns (``hf_columns`` overrides; a missing column is a one-line error listing the
    dataset's); ``image_fields`` are the fields holding images (kept undecoded)."""
    obj, folder = open_dataset(config)
    ds, _ = pick_split(obj, config.hf_split, config.hf_path)
    cols = {**columns, **config.hf_columns}
    unknown = sorted(set(config.hf_columns) - set(columns))
    missing = sorted({c for c in cols.values() if c not in ds.column_names})
    if unknown or missing:
        what = f"unknown field(s) {', '.join(unknown)}" if unknown else f"no column(s) {', '.join(missing)}"
        raise UserError(
            f"{config.hf_path}: {what} for dataset {config.dataset!r} (fields: {', '.join(cols)}); "
            f"the copy's columns: {', '.join(ds.column_names)} (set hf_columns)"
        )
    text = [f for f in cols if f not in image_fields]
    records = ds.select_columns(list(dict.fromkeys(cols[f] for f in text))).to_list()
    rows = [{f: rec[cols[f]] for f in text} for rec in records]
    image_columns = [cols[f] for f in image_fields]
    images = undecoded_images(ds, image_columns) if image_columns else None
    if config.image_dir:
        folder = config.resolve_path(config.image_dir)
    return Copy(rows, images, image_columns, folder)


def load_hf(config: RunConfig) -> list[HFSample]:
    """One HFSample per row of the chosen split (the first ``num_samples`` of them)."""

    obj, folder = open_dataset(config)
    ds, split = pick_split(obj, config.hf_split, config.hf_path)
    cols = column_map(config, list(ds.column_names))
    if config.num_samples > 0:
        ds = ds.select(range(min(config.num_samples, len(ds))))
    images = undecoded_images(ds, [cols["image"], *cols.get("images", [])])
    text_cols = [c for f, c in cols.items() if f not in ("image", "images")]
    records = ds.select_columns(list(dict.fromkeys(text_cols))).to_list() if text_cols else [{}] * len(ds)
    base = Path(config.resolve_path(config.image_dir)) if config.image_dir else folder
    ids = [str(r[cols["id"]]) if "id" in cols else f"{split}_{i:06d}" for i, r in enumerate(records)]
    if len(set(ids)) != len(ids):
        log.warning("column %r of %s is not unique: sample ids are '<id>#<row>'", cols.get("id"), config.hf_path)
        ids = [f"{sid}#{i}" for i, sid in enumerate(ids)]
    samples = []
    for i, (rec, sid) in enumerate(zip(records, ids, strict=True)):
        where = f"{config.hf_path} {split} row {i}"
        if not isinstance(rec[cols["question"]], str):
            raise UserError(f"{where}: the question column {cols['question']!r} must hold strings")
        meta: dict[str, Any] = {"split": split, "row": i}
        answer: Any = None
        if "box" in cols and rec[cols["box"]] is not None:
            answer = _box(rec[cols["box"]], config.box_format, where)
        elif "answer" in cols:
            answer, answers = gold_answer(rec[cols["answer"]])
            if answers is not None:
                meta["answers"] = answers
        meta["family"] = str(rec[cols["family"]]) if "family" in cols else ("box" if "box" in cols else "answer")
        if "task" in cols and rec[cols["task"]]:
            from code_generator.prompting import check_task

            meta["task"] = check_task(str(rec[cols["task"]]), f"{where}: ")
        if "objects" in cols and rec[cols["objects"]] is not None:
            meta["objects"] = [str(o) for o in rec[cols["objects"]]]
        boxes = None
        if "boxes" in cols and rec[cols["boxes"]] is not None:
            boxes = [_box(b, config.box_format, where) for b in rec[cols["boxes"]]]
        samples.append(
            HFSample(
                id=sid,
                question=rec[cols["question"]],
                answer=answer,
                boxes=boxes,
                program=rec[cols["program"]] if "program" in cols else None,
                meta=meta,
                source=images,
                row=i,
                image_column=str(cols["image"]),
                extra_columns=tuple(cols.get("images", [])),
                base_dir=base,
            )
        )
    return samples
