"""The words of frame-level questions about motion and contact, shared by the video backends.

``score_frames`` questions the offline video backends understand beyond CLEVR attributes:

- motion: "Is the red cube moving?" (arity 0), "Is the object in the red box moving?" (arity 1);
- contact: "Is the red cube touching the blue sphere?" (arity 0), "Is the object in the red box
  touching the object in the green box?" (arity 2).

:func:`parse_video_question` splits such a question into its kind and the descriptions of the
objects (CLEVR values, box markers removed); anything else is ``kind=None`` (the image backend's
own vocabulary then applies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from neptune_core.clevr_vocab import find_values

_MARKERS = re.compile(r"\b(?:red|green)\s+(?:bounding\s+)?(?:box|rectangle|frame)(?:es)?\b")
CONTACT = re.compile(
    r"\b(?:touching|touches|touch|in contact with|hitting|hits|colliding with|collides with|bumping into)\b"
)
MOTION = re.compile(r"\b(?:moving|moves|move|in motion|rolling|rolls|sliding|slides)\b")


@dataclass(frozen=True)
class VideoQuestion:
    """``kind``: "motion", "contact" or None; ``subject``/``other``: CLEVR values naming the objects
    (empty: the marked box)."""

    kind: str | None
    subject: tuple[str, ...] = ()
    other: tuple[str, ...] = ()


def parse_video_question(question: str) -> VideoQuestion:
    text = _MARKERS.sub(" ", question.lower())
    m = CONTACT.search(text)
    if m:
        return VideoQuestion("contact", tuple(find_values(text[: m.start()])), tuple(find_values(text[m.end() :])))
    if MOTION.search(text):
        return VideoQuestion("motion", tuple(find_values(text)))
    return VideoQuestion(None)


__all__ = ["CONTACT", "MOTION", "VideoQuestion", "parse_video_question"]
