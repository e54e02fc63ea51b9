"""The CLEVR vocabulary, shared by the synthetic world, the translators and the
offline perception backends: attribute values, synonyms, relations, and the
canonical question phrasings that translated programs send to ``score``/``query``.
"""

from __future__ import annotations

import re

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "size": ("large", "small"),
    "color": ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"),
    "material": ("rubber", "metal"),
    "shape": ("cube", "sphere", "cylinder"),
}
RELATIONS: tuple[str, ...] = ("left", "right", "behind", "front")

# CLEVR's colour table (properties.json of the CLEVR generator), RGB 0..255
CLEVR_RGB: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}

# value -> attribute (every CLEVR value belongs to exactly one attribute)
VALUE_TO_ATTRIBUTE: dict[str, str] = {v: a for a, vs in ATTRIBUTES.items() for v in vs}

# surface words -> canonical value (CLEVR's own synonyms plus common variants)
SYNONYMS: dict[str, str] = {
    "big": "large",
    "large": "large",
    "small": "small",
    "tiny": "small",
    "grey": "gray",
    "gray": "gray",
    "red": "red",
    "blue": "blue",
    "green": "green",
    "brown": "brown",
    "purple": "purple",
    "cyan": "cyan",
    "yellow": "yellow",
    "rubber": "rubber",
    "matte": "rubber",
    "metal": "metal",
    "metallic": "metal",
    "shiny": "metal",
    "cube": "cube",
    "cubes": "cube",
    "block": "cube",
    "blocks": "cube",
    "sphere": "sphere",
    "spheres": "sphere",
    "ball": "sphere",
    "balls": "sphere",
    "cylinder": "cylinder",
    "cylinders": "cylinder",
}

RELATION_PHRASES: dict[str, str] = {
    "left": "left of",
    "right": "right of",
    "behind": "behind",
    "front": "in front of",
}

# ---- canonical phrasings used by translated programs ---------------------------------
SUBJECT = "the object in the red box"
OBJECT = "the object in the green box"


def value_phrase(value: str) -> str:
    """How a value reads after 'Is the object ...': 'a cube', 'made of metal', 'red'."""
    attr = VALUE_TO_ATTRIBUTE[value]
    if attr == "shape":
        return f"a {value}"
    if attr == "material":
        return f"made of {value}"
    return value


def unary_question(value: str) -> str:
    """'Is the object in the red box a cube?' (arity 1)."""
    return f"Is {SUBJECT} {value_phrase(value)}?"


def relation_question(relation: str) -> str:
    """'Is the object in the red box left of the object in the green box?' (arity 2)."""
    return f"Is {SUBJECT} {RELATION_PHRASES[relation]} {OBJECT}?"


def same_question(attribute: str) -> str:
    """'Does the object in the red box have the same color as the object in the green box?' (arity 2)."""
    return f"Does {SUBJECT} have the same {attribute} as {OBJECT}?"


def query_question(attribute: str) -> str:
    """'What color is the object in the red box?' (for query)."""
    return f"What {attribute} is {SUBJECT}?"


_WORD = re.compile(r"[a-z]+")


def find_values(text: str) -> list[str]:
    """Canonical attribute values mentioned in ``text`` (synonyms resolved), in order."""
    return [SYNONYMS[w] for w in _WORD.findall(text.lower()) if w in SYNONYMS]


def find_relation(text: str) -> str | None:
    """The spatial relation a question asks about, or None."""
    t = text.lower()
    if "left" in t:
        return "left"
    if "right" in t:
        return "right"
    if "behind" in t or "back of" in t:
        return "behind"
    if "front" in t:
        return "front"
    return None


def find_attribute(text: str) -> str | None:
    """The attribute a 'same ...'/'what ...' question asks about, or None."""
    t = text.lower()
    for attr in ("color", "colour", "shape", "size", "material"):
        if attr in t:
            return "color" if attr == "colour" else attr
    return None
