"""Pull the program and the object names out of an LLM reply.

The prompts ask for an ``Objects: [...]`` line and one fenced python block; replies
that wrap it in prose, forget the fence, or answer in JSON are read too. A reply with
no ``def`` at all raises :class:`ExtractionError`.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from dataclasses import dataclass, field

from neptune_core.pysource import parse_python


class ExtractionError(ValueError):
    """The reply holds no program."""


@dataclass
class Extracted:
    source: str
    object_names: list[str] | None = None  # None: the reply named no objects
    notes: list[str] = field(default_factory=list)


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_OBJECTS = re.compile(r"^[ \t>*_#-]*objects?[ \t*_]*[:=][ \t]*(.+)$", re.I | re.M)
_DEF = re.compile(r"^def[ \t]+\w+[ \t]*\(", re.M)


def parse_object_names(text: str) -> list[str]:
    """``["cube", "sphere"]``, ``['cube']`` or ``cube, sphere`` -> a list of clean names."""
    text = text.strip().rstrip(".")
    items: list = []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            try:  # a Python list (single quotes), parsed behind parse_python's lock (a string given to literal_eval is not)
                items = ast.literal_eval(parse_python(text, mode="eval"))
            except (ValueError, SyntaxError, RecursionError):
                items = text.strip("[]").split(",")
    else:
        items = text.split(",")
    if not isinstance(items, (list, tuple)):
        items = [items]
    names = [str(x).strip().strip("'\"`").strip() for x in items]
    seen: list[str] = []
    for name in names:
        if name and name.lower() not in ("none", "n/a") and name not in seen:
            seen.append(name)
    return seen


def _from_json(text: str) -> Extracted | None:
    stripped = text.strip()
    if stripped.startswith("```"):
        m = _FENCE.match(stripped)
        stripped = m.group(2).strip() if m else stripped
    if not stripped.startswith("{"):
        return None
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    code = data.get("program") or data.get("code")
    if not isinstance(code, str):
        return None
    objects = data.get("objects", data.get("object_names"))
    names = parse_object_names(json.dumps(objects)) if isinstance(objects, list) else None
    return Extracted(_clean(code), names, ["json reply"])


def _clean(code: str) -> str:
    lines = [ln for ln in code.replace("\r\n", "\n").replace("\t", "    ").split("\n")]
    lines = [ln[4:] if ln.startswith(">>> ") or ln.startswith("... ") else ln for ln in lines]
    return textwrap.dedent("\n".join(lines)).strip() + "\n"


def _unfenced_code(text: str) -> str | None:
    """From the first top-level ``def`` to the last line that still belongs to the code."""
    m = _DEF.search(text)
    if m is None:
        return None
    kept: list[str] = []
    for line in text[m.start() :].split("\n"):
        if not line.strip() or line[:1] in (" ", "\t", "#", "@") or re.match(r"(def|class|return)\b", line):
            kept.append(line)
        else:
            break
    return "\n".join(kept)


def extract(text: str) -> Extracted:
    """The program and object names in an LLM reply; raises :class:`ExtractionError` when there is no code."""
    if not text or not text.strip():
        raise ExtractionError("the reply is empty")
    as_json = _from_json(text)
    if as_json is not None:
        return as_json
    notes: list[str] = []
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    code_blocks = [body for lang, body in blocks if "def " in body]
    outside = _FENCE.sub("", text)
    if code_blocks:
        with_execute = [b for b in code_blocks if "def execute" in b]
        code = (with_execute or code_blocks)[-1]
        if len(code_blocks) > 1:
            notes.append(f"{len(code_blocks)} code blocks; used the last one defining execute")
    else:
        code = _unfenced_code(text)
        if code is None:
            raise ExtractionError(
                "the reply holds no code: expected a ```python block defining execute(score, query, n)"
            )
        notes.append("code without a fence")
        outside = text.replace(code, "")
    m = _OBJECTS.search(outside) or _OBJECTS.search(text)
    names = parse_object_names(m.group(1)) if m else None
    return Extracted(_clean(code), names, notes)
