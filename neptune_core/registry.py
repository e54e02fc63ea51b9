"""One registry per extension point.

Entries are either objects registered with ``@REG.register("name")`` or lazy
``"package.module:Attr"`` strings, imported only when first asked for, so importing
a package never loads a model or a heavy dependency.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from neptune_core.errors import UnknownNameError

T = TypeVar("T")


def did_you_mean(name: str, known: list[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def import_target(target: str) -> Any:
    """The object named by ``"package.module:Attr"`` (``Attr`` may be dotted: ``"module:Class.method"``)."""
    module, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Maps names to objects (usually classes); ``kind`` names the config key it serves."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")`` registers the decorated object."""

        def deco(obj: T) -> T:
            self._entries[name] = obj
            return obj

        return deco

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:Attr"``, imported on first :meth:`get`."""
        if ":" not in target:
            raise ValueError(f"lazy target {target!r} must look like 'package.module:Attr'")
        self._entries[name] = target

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> T:
        """Return the entry for ``name``; an unknown name raises with the known ones listed."""
        if name not in self._entries:
            known = self.names()
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, known)}; known: {', '.join(known)}"
            )
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = import_target(entry)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def items(self) -> list[tuple[str, Any]]:
        return [(n, self._entries[n]) for n in self.names()]
