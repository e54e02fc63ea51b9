"""Answer normalisation for exact-match scoring: case, punctuation, articles,
number words and digits ("three objects" = "3"), yes/no variants, plurals by English
suffix rules and CLEVR synonyms ("balls" = "sphere", "shiny" = "metal").

Add a synonym: CLEVR words go in neptune_core.clevr_vocab.SYNONYMS; keep this module
free of dataset-specific lists."""

from __future__ import annotations

import re

from neptune_core.clevr_vocab import SYNONYMS

_NUMBER_WORDS = {
    "zero": "0",
    "none": "0",
    "no objects": "0",
    "nothing": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "sixteen": "16",
    "seventeen": "17",
    "eighteen": "18",
    "nineteen": "19",
    "twenty": "20",
}
_YES = {"yes", "true", "yeah", "yep", "correct"}
_NO = {"no", "false", "nope", "incorrect"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s.-]")
# "3 objects" / "three things" -> "3": counting nouns that add nothing after a number
_COUNT_NOUNS = {"object", "objects", "thing", "things", "item", "items"}
# singular forms the suffix rules below would get wrong
_PLURAL_EXCEPTIONS = {"glasses": "glass", "boxes": "box", "buses": "bus", "gas": "gas", "yes": "yes"}


def singular(word: str) -> str:
    """A plural noun's singular form by English suffix rules (cubes -> cube, berries -> berry)."""
    if word in _PLURAL_EXCEPTIONS:
        return _PLURAL_EXCEPTIONS[word]
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes")):
        return word[:-2]
    return word[:-1]


def _number(t: str) -> str | None:
    if t in _NUMBER_WORDS:
        return _NUMBER_WORDS[t]
    try:
        f = float(t)
    except ValueError:
        return None
    return str(int(f)) if f.is_integer() else str(f)


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
    words = t.split()
    if len(words) == 2 and words[1] in _COUNT_NOUNS and _number(words[0]) is not None:
        words = words[:1]
    if len(words) == 1 and (num := _number(words[0])) is not None:
        return num
    words = [SYNONYMS.get(w) or SYNONYMS.get(singular(w)) or singular(w) for w in words]
    return " ".join(words)


def answers_match(pred: str, gold: str) -> bool:
    """Exact match after normalisation."""
    return normalize_answer(pred) == normalize_answer(gold)
