"""Small helpers the benchmark loaders share: find a release's folder and files, read its JSON,
and say in one line what is missing and where it was looked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neptune_core.errors import UserError

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


def data_folder(config: RunConfig, default: str, name: str, expected: str) -> Path:
    """The release's folder (``data_path``, else ``default``, relative to data_root); a one-line error if absent."""
    root = config.resolve_path(config.data_path or default)
    if not root.is_dir():
        raise UserError(
            f"{name} data not found: {root.absolute()} is not a directory (expected {expected}); set data_path (relative to "
            f"data_root or $NEPTUNE_DATA_ROOT){', or hf_path for a Hugging Face copy' if name != 'HC-RefLOCO' else ''}"
        )
    return root


def find_file(folders: list[Path], names: list[str], what: str) -> Path:
    """The first of ``names`` found in ``folders`` (in order); a one-line error naming where it looked."""
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    looked = ", ".join(str(f) for f in folders)
    raise UserError(f"{what} not found: no {' or '.join(names)} in {looked}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}") from None


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file (NLVR2), or one JSON list."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        data = read_json(path)
        if not isinstance(data, list):
            raise UserError(f"{path} must hold a list of examples")
        return data
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path} line {lineno} is not valid JSON: {e.msg}") from None
    return out


def image_folder(config: RunConfig, default: Path, name: str, hint: str = "") -> Path:
    """The images folder (``image_dir``, else ``default``); a one-line error if absent."""
    folder = config.resolve_path(config.image_dir) if config.image_dir else default
    if not folder.is_dir():
        raise UserError(f"{name} images not found: {folder.absolute()} is not a directory{hint} (or set image_dir)")
    return folder


def limit(samples: list[Any], config: RunConfig) -> list[Any]:
    """The first ``num_samples`` (a loader may stop early; the sampler asks for all)."""
    return samples if config.num_samples < 0 else samples[: config.num_samples]
