"""Multiple-choice questions (video datasets): how the options travel with a question.

A multiple-choice Sample keeps the bare question in ``meta["question"]``, its options in
``meta["options"]`` and the right option's index in ``meta["answer_index"]``; ``answer`` is the
right option's text. ``question`` is the text the program generator sees: the question, then
its options lettered, one line (:func:`with_options`), so an LLM program can name them and the
program cache keys on them. runners/run_video.py judges a program's choice against the index.
"""

from __future__ import annotations

import re
import string
from typing import Any

LETTERS = string.ascii_uppercase


def with_options(question: str, options: list[str]) -> str:
    """``"why did she laugh? Options: (A) ... (B) ..."``: the question as a program generator sees it."""
    listed = " ".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))
    return f"{question.strip()} Options: {listed}"


def split_options(text: str) -> tuple[str, list[str]]:
    """The inverse of :func:`with_options`: (question, options); no options: (text, [])."""
    head, sep, tail = text.rpartition(" Options: ")
    if not sep or not tail.startswith("(A) "):
        return text, []
    parts = re.split(r"\s*\(([A-Z])\)\s", " " + tail)
    letters, options = parts[1::2], parts[2::2]
    if letters != list(LETTERS[: len(letters)]):
        return text, []
    return head, [o.strip() for o in options]


def mc_meta(question: str, options: list[str], answer_index: int | None, **extra: Any) -> dict[str, Any]:
    """The ``meta`` of a multiple-choice sample."""
    if answer_index is not None and not 0 <= answer_index < len(options):
        raise ValueError(f"answer index {answer_index} out of range for {len(options)} options")
    return {"question": question, "options": list(options), "answer_index": answer_index, **extra}


__all__ = ["LETTERS", "mc_meta", "split_options", "with_options"]
