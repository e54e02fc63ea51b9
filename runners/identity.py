"""A run's identity: its settings *and* its data, so other data never resumes an old run.

:func:`run_hash` is the hash in a run directory's name (``experiments/<config>-<hash>/``).
It covers :meth:`RunConfig.config_hash` (the settings that change results) plus
:func:`data_identity`: the resolved data root (from the config, ``$NEPTUNE_DATA_ROOT`` or
the working directory), the resolved data paths, and a cheap fingerprint of the dataset,
the names, sizes and modification times of its annotation files (question, scene and
reference files: not images; a directory of images counts by its own modification time), and for
data a loader generates itself, what its ``identity(config)`` returns (the generator's version).
Pointing the same config at other data, or changing the data in place, gives another
run directory. The identity is written to the run directory as ``data.json``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from neptune_core.config import RunConfig

# annotation files that define a dataset's questions (images are covered by their folder's mtime)
ANNOTATION_SUFFIXES = (".json", ".jsonl", ".p", ".pkl", ".pickle", ".csv", ".tsv", ".txt", ".parquet", ".arrow", ".gz")
_MAX_DEPTH = 2  # data_path/questions/<file>, data_path/scenes/<file>
_MAX_FILES = 10_000
_PATH_FIELDS = ("data_path", "image_dir", "questions_file")


def resolved_data_root(config: RunConfig) -> Path:
    """The absolute folder relative data paths are read from: data_root, else $NEPTUNE_DATA_ROOT, else the cwd."""
    root = config.data_root or os.environ.get("NEPTUNE_DATA_ROOT", "")
    return Path(os.path.expanduser(root)).resolve() if root else Path.cwd().resolve()


def _stat(path: Path) -> list[Any]:
    try:
        st = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), st.st_size, st.st_mtime_ns]


def _annotation_files(root: Path) -> list[Path]:
    """Annotation files under ``root`` (a file: itself), at most :data:`_MAX_DEPTH` folders deep."""
    if root.is_file():
        return [root]
    found: list[Path] = []
    level = [root]
    for _ in range(_MAX_DEPTH):
        nxt: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if e.is_dir(follow_symlinks=True):
                    nxt.append(Path(e.path))
                elif e.name.lower().endswith(ANNOTATION_SUFFIXES):
                    found.append(Path(e.path))
                    if len(found) >= _MAX_FILES:
                        return found
        level = nxt
    return found


def data_identity(config: RunConfig) -> dict[str, Any]:
    """Resolved data root and paths, and a fingerprint of the annotation files they hold."""
    root = resolved_data_root(config)
    paths: dict[str, str] = {}
    stats: list[list[Any]] = []
    for name in _PATH_FIELDS:
        value = getattr(config, name, "")
        if not value:
            continue
        path = Path(os.path.expanduser(value))
        path = (path if path.is_absolute() else root / path).resolve()
        paths[name] = str(path)
        if name == "questions_file":
            stats += [_stat(Path(p)) for p in sorted(glob.glob(str(path)))] or [_stat(path)]
        elif name == "image_dir":
            stats.append(_stat(path))
        else:
            stats.append(_stat(path))
            stats += [_stat(p) for p in _annotation_files(path)]
    generated = _generated_identity(config)
    if generated is not None:  # data a loader makes itself: its own version and settings
        stats.append(generated)
    fingerprint = hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]
    return {"data_root": str(root), "paths": paths, "files": len(stats), "fingerprint": fingerprint}


def _generated_identity(config: RunConfig) -> Any:
    """What a loader that generates its data says identifies it (its ``identity(config)`` attribute), or None."""
    from local_datasets import LOADERS

    if config.dataset not in LOADERS:
        return None
    identity = getattr(LOADERS.get(config.dataset), "identity", None)
    return identity(config) if callable(identity) else None


def run_hash(config: RunConfig, identity: dict[str, Any] | None = None) -> str:
    """A short hash of the settings that change results and of the data they run on."""
    identity = data_identity(config) if identity is None else identity
    payload = {"config": config.config_hash(), "data": identity}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
