"""Answer normalisation for exact-match scoring: case, punctuation, articles,
number words, yes/no variants, plurals and CLEVR synonyms ("ball" = "sphere")."""

from __future__ import annotations

import re

from neptune_core.clevr_vocab import SYNONYMS

_NUMBER_WORDS = {
    "zero": "0", "none": "0", "no objects": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_YES = {"yes", "true", "yeah", "yep", "correct"}
_NO = {"no", "false", "nope", "incorrect"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s.-]")


def normalize_answer(text: str) -> str:
    """Canonical form of an answer string."""
    t = str(text).strip().lower()
    t = _PUNCT.sub(" ", t).strip().rstrip(".").strip()
    t = _ARTICLES.sub(" ", t)
    t = " ".join(t.split())
    if t in _YES:
        return "yes"
    if t in _NO:
        return "no"
    if t in _NUMBER_WORDS:
        return _NUMBER_WORDS[t]
    try:
        f = float(t)
        if f.is_integer():
            return str(int(f))
    except ValueError:
        pass
    words = [SYNONYMS.get(w, w) for w in t.split()]
    words = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]
    return " ".join(words)


def answers_match(pred: str, gold: str) -> bool:
    """Exact match after normalisation."""
    return normalize_answer(pred) == normalize_answer(gold)
