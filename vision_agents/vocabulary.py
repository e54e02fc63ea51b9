"""The offline perception's vocabulary: which words of a question it can ground, and which it cannot.

The ``classic`` VisionAgent knows CLEVR's attribute values and relations
(:mod:`neptune_core.clevr_vocab`) and a few everyday words beyond CLEVR
(:data:`EXTRA_VALUES`: the basic colour terms black, white, orange, pink and the flat
figures circle, square, rectangle, triangle, star, measured by
:mod:`vision_agents.classic_figures`). :func:`parse` splits a question into the
concepts it names and the content words it does not know. A backend reports the
latter on the trace entry of the call as ``{"unknown_concepts": [...]}`` (see
:func:`unknown_info`); ``analysis/summary.py`` counts them per run and the console
warns when many calls hit them, instead of a silent p = 0.5.

Extend: a new word for an existing concept goes into :data:`EXTRA_SYNONYMS`; a new
concept into :data:`EXTRA_VALUES` together with a pixel model for it in
``classic_figures``; a word that names no concept (question scaffolding) into
:data:`FUNCTION_WORDS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from neptune_core.clevr_vocab import ATTRIBUTES, RELATIONS, SYNONYMS

EXTRA_VALUES: dict[str, tuple[str, ...]] = {
    "color": ("black", "white", "orange", "pink"),
    "shape": ("circle", "square", "rectangle", "triangle", "star"),
}
"""Concepts beyond CLEVR's, by attribute."""

EXTRA_SYNONYMS: dict[str, str] = {
    "black": "black",
    "white": "white",
    "orange": "orange",
    "pink": "pink",
    "circle": "circle",
    "circles": "circle",
    "disc": "circle",
    "discs": "circle",
    "disk": "circle",
    "disks": "circle",
    "square": "square",
    "squares": "square",
    "rectangle": "rectangle",
    "rectangles": "rectangle",
    "rectangular": "rectangle",
    "triangle": "triangle",
    "triangles": "triangle",
    "triangular": "triangle",
    "star": "star",
    "stars": "star",
}

VALUE_TO_ATTRIBUTE: dict[str, str] = {
    v: a for table in (ATTRIBUTES, EXTRA_VALUES) for a, values in table.items() for v in values
}
WORDS: dict[str, str] = {**SYNONYMS, **EXTRA_SYNONYMS}
"""Every surface word the offline perception grounds -> its canonical value."""

ATTRIBUTE_WORDS: dict[str, str] = {
    "color": "color",
    "colour": "color",
    "colors": "color",
    "colours": "color",
    "shape": "shape",
    "shapes": "shape",
    "size": "size",
    "sizes": "size",
    "material": "material",
    "materials": "material",
}
RELATION_WORDS: frozenset[str] = frozenset((*RELATIONS, "back"))
NEGATIONS: frozenset[str] = frozenset(("not", "no", "isn", "aren", "doesn", "don", "t"))
OBJECTNESS_WORDS: frozenset[str] = frozenset(("object", "objects", "thing", "things", "item", "items"))

FUNCTION_WORDS: frozenset[str] = frozenset(
    """
    a an the this that these those it its it's is are was were be been being does do did has have having
    there here what which who whom whose how of in on at to into onto from with as by for than then and or
    any some every each all other another others both either neither only also too very one ones
    box boxes marked outlined outline subject shown visible image picture photo scene
    kind type sort looking look looks made shaped colored coloured sized
    """.split()
)
"""Words that name no concept: the scaffolding of a yes/no question about marked boxes."""

# "the red box" / "the green-box object" name the marking, not a colour; in a question about
# two boxes, so do "the red object" and "the green object" ("red rectangle" is left alone:
# with flat figures it names a concept)
_BOX_MARKERS = re.compile(r"\b(red|green)(?:\s+|-)(box|boxes|outline)\b")
_PAIR_MARKERS = re.compile(r"\b(red|green)\s+(object|objects|thing|one)\b")
_WORD = re.compile(r"[a-z]+")


def strip_markers(question: str, arity: int = 1) -> str:
    """The question in lower case with the box markings ("the red box") reduced to "box"."""
    text = _BOX_MARKERS.sub("box", question.lower())
    return _PAIR_MARKERS.sub("box", text) if arity == 2 else text


def _canonical(word: str) -> str | None:
    """The value a surface word names (plural "s" tolerated), or None."""
    if word in WORDS:
        return WORDS[word]
    if word.endswith("s") and word[:-1] in WORDS:
        return WORDS[word[:-1]]
    return None


@dataclass
class ParsedQuestion:
    """What a yes/no question asks, in the offline perception's terms."""

    values: list[str] = field(default_factory=list)  # canonical attribute values, in order
    attribute: str | None = None  # an attribute named as such ("same color", "what shape")
    relation: str | None = None  # left | right | behind | front
    objectness: bool = False  # "is there an object ..."
    negated: bool = False  # "not" / "no" in the question
    same: bool = False  # "same" (with ``attribute``: "the same color as")
    unknown: list[str] = field(default_factory=list)  # content words outside the vocabulary
    text: str = ""  # the question's words, markers stripped (what to report when nothing is grounded)

    @property
    def grounded(self) -> bool:
        """Whether the question names anything the vocabulary knows."""
        return bool(self.values or self.attribute or self.relation or self.objectness)


def parse(question: str, arity: int = 1) -> ParsedQuestion:
    """Split ``question`` (asked about ``arity`` boxes) into known concepts and unknown content words."""
    words = _WORD.findall(strip_markers(question, arity))
    out = ParsedQuestion(text=" ".join(words))
    for word in words:
        value = _canonical(word)
        if value is not None:
            out.values.append(value)
        elif word in ATTRIBUTE_WORDS:
            out.attribute = out.attribute or ATTRIBUTE_WORDS[word]
        elif word in RELATION_WORDS:
            out.relation = out.relation or ("behind" if word == "back" else word)
        elif word == "same":
            out.same = True
        elif word in NEGATIONS:
            out.negated = True
        elif word in OBJECTNESS_WORDS:
            out.objectness = True
        elif word not in FUNCTION_WORDS and word not in out.unknown:
            out.unknown.append(word)
    return out


def attribute_of(value: str) -> str:
    """The attribute a canonical value belongs to (CLEVR's or an extra one)."""
    return VALUE_TO_ATTRIBUTE[value]


def unknown_info(words: list[str]) -> dict[str, Any]:
    """The trace info a backend records for a call that hit concepts it does not know ({} when none)."""
    return {"unknown_concepts": list(words)} if words else {}


__all__ = [
    "EXTRA_VALUES",
    "FUNCTION_WORDS",
    "ParsedQuestion",
    "VALUE_TO_ATTRIBUTE",
    "WORDS",
    "attribute_of",
    "parse",
    "strip_markers",
    "unknown_info",
]
