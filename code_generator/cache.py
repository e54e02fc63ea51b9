"""The program cache: one JSON file (``.json`` or ``.json.gz``) shared by every worker.

Entries are keyed by :func:`cache_key` (question, rendered prompt text, model id,
generation settings, :data:`SCHEMA_VERSION`) and hold the program, the object names,
the model and a timestamp. Writers take a file lock, re-read the file, merge their
entry and replace the file atomically, so many processes may write at once and none
loses another's entries. A file that cannot be read is moved aside (never wiped) and
reported with a :class:`CacheCorruptError`.

File layout: ``{"schema_version": 1, "entries": {key: entry}}``. A file without
``entries`` (a plain ``{question: program}`` map, as older releases shipped) is read as
a legacy table looked up by question text; its content is kept when new entries are written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from neptune_core.errors import UserError

SCHEMA_VERSION = 1


class CacheCorruptError(UserError):
    """The cache file is not a readable program cache; it was moved aside."""


def cache_key(question: str, prompt_text: str, model: str, settings: dict[str, Any]) -> str:
    """A content hash of everything that decides the generated program."""
    payload = {
        "schema_version": SCHEMA_VERSION,
        "question": question,
        "prompt": prompt_text,
        "model": model,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


class ProgramCache:
    """A JSON program cache at ``path``; thread-safe and safe across processes."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise UserError(f"program_cache_address {self.path} is a directory; give a .json or .json.gz file")
        self._lock = FileLock(str(self.path) + ".lock")
        self._thread_lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self._legacy: dict[str, Any] = {}
        self._stamp: tuple[float, int] | None = None
        self._reload()

    # ---- reading ---------------------------------------------------------------------
    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime, st.st_size)

    def _parse(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """(entries, legacy) from the file; raises ValueError with the reason when it is unreadable."""
        try:
            data = json.loads(_read_bytes(self.path).decode("utf-8"))
        except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError, gzip.BadGzipFile) as e:
            raise ValueError(f"{type(e).__name__}: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        if "entries" not in data:
            return {}, data
        entries = data["entries"]
        if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
            raise ValueError("'entries' must map keys to objects")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {version!r}, this code reads {SCHEMA_VERSION}")
        return entries, data.get("legacy", {})

    def _load_or_quarantine(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Parse the file (empty when absent); an unreadable one is moved aside and reported. Call under the file lock."""
        if not self.path.exists():
            return {}, {}
        try:
            return self._parse()
        except ValueError as e:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            os.replace(self.path, aside)
            raise CacheCorruptError(
                f"program cache {self.path} is unreadable ({e}); it was moved to {aside} and nothing was "
                "deleted: fix or remove that file, then rerun (a new cache starts empty)"
            ) from None

    def _reload(self) -> None:
        with self._thread_lock:
            if self.path.exists():
                try:
                    entries, legacy = self._parse()
                except ValueError:
                    with self._lock:  # maybe a writer on another system replaced it mid-read: check again, locked
                        entries, legacy = self._load_or_quarantine()
                self._entries, self._legacy = entries, legacy
            self._stamp = self._file_stamp()

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry for ``key``; re-reads the file first when another process changed it."""
        entry = self._entries.get(key)
        if entry is None and self._file_stamp() != self._stamp:
            self._reload()
            entry = self._entries.get(key)
        return dict(entry) if entry is not None else None

    def get_legacy(self, question: str) -> str | None:
        """A program for ``question`` from a legacy ``{question: program}`` table, if the file is one."""
        value = self._legacy.get(question)
        if isinstance(value, dict):
            value = value.get("program") or value.get("code")
        return value if isinstance(value, str) else None

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        return list(self._entries)

    # ---- writing ---------------------------------------------------------------------
    def check_writable(self) -> None:
        """Raise a one-line UserError when new entries could not be stored (checked before a run).

        The file and its folder are created on the first write, not here.
        """
        target = self.path if self.path.exists() else self.path.parent
        while not target.exists() and target != target.parent:
            target = target.parent
        if not os.access(target, os.W_OK):
            raise UserError(
                f"program cache {self.path} cannot be written ({target} is not writable): point "
                "program_cache_address at a writable .json file"
            )

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Add or replace one entry; merges with what other processes wrote meanwhile."""
        self.put_many({key: entry})

    def put_many(self, entries: dict[str, dict[str, Any]]) -> None:
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, self._lock:
            current, legacy = self._load_or_quarantine()
            current.update(entries)
            data: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "entries": current}
            if legacy:
                data["legacy"] = legacy
            raw = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8")
            if self.path.suffix == ".gz":
                raw = gzip.compress(raw, mtime=0)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(raw)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._entries, self._legacy = current, legacy
            self._stamp = self._file_stamp()
