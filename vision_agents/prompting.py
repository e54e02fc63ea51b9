"""Question shaping shared by all VLM backends: score items, the ``type="class"`` form,
and normalisation of open answers.

A score call becomes a flat list of (marked image, question) items, in the order
questions x boxes (arity 1) or questions x ordered pairs (arity 2); every backend
batches that list its own way and reshapes the probabilities with :func:`fold`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch
from PIL import Image

from neptune_core.types import Box
from vision_agents.marking import mark_boxes

if TYPE_CHECKING:
    from vision_agents.object_marking import ObjectMarker

SCORE_TYPES = ("yes_no", "class")


def class_question(name: str) -> str:
    """The ``type="class"`` form of a score question: is the red box an instance of ``name``?"""
    name = name.strip().rstrip("?").strip()
    if not name:
        raise ValueError("a class question needs a class name")
    return f"Is the object in the red box a {name}? Answer yes or no."


def shape_questions(questions: list[str], type: str) -> list[str]:
    """Questions as sent to the model for score ``type`` ("yes_no" as is, "class" wrapped)."""
    if type == "yes_no":
        return list(questions)
    if type == "class":
        return [class_question(q) for q in questions]
    raise ValueError(f"unknown score type '{type}'; use one of {', '.join(SCORE_TYPES)}")


def grid_tuples(boxes: list[Box], arity: int) -> list[tuple[Box, ...]]:
    """The box tuples a full score call evaluates: (), each box, or each ordered pair with i != j (the diagonal is 0)."""
    if arity == 0:
        return [()]
    if arity == 1:
        return [(b,) for b in boxes]
    if arity == 2:
        return [(a, b) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i != j]
    raise ValueError(f"arity must be 0, 1 or 2, got {arity}")


def same_box_pair(boxes: tuple[Box, ...]) -> bool:
    """A pair of one box with itself (the relation's diagonal, 0 without a model call)."""
    return len(boxes) == 2 and [float(v) for v in boxes[0]] == [float(v) for v in boxes[1]]


def score_items(
    image: Image.Image, boxes: list[Box], questions: list[str], arity: int, marker: ObjectMarker | None = None
) -> list[tuple[Image.Image, str]]:
    """Flat (marked image, question) items; arity 2 skips i == j (its diagonal is 0).

    ``marker``: how to mark (vision_agents/object_marking.py); None: box outlines."""
    tuples = grid_tuples(boxes, arity)
    if marker is None:
        marked = [mark_boxes(image, *t) for t in tuples]
    else:
        marker.prepare(image, tuples)
        marked = [marker.mark(image, t) for t in tuples]
    return [(im, q) for q in questions for im in marked]


def fold(probs: torch.Tensor, num_questions: int, num_boxes: int, arity: int) -> torch.Tensor:
    """Reshape the flat p(yes) of :func:`score_items` to (Q,), (Q, n) or (Q, n, n)."""
    if arity == 0:
        return probs.reshape(num_questions)
    if arity == 1:
        return probs.reshape(num_questions, num_boxes)
    n = num_boxes
    out = probs.new_zeros((num_questions, n, n))
    if n > 1:
        off_diag = ~torch.eye(n, dtype=torch.bool, device=probs.device)
        out[:, off_diag] = probs.reshape(num_questions, n * (n - 1))
    return out


_ARTICLES = re.compile(r"^(a|an|the)\s+")
_TRAIL = re.compile(r"[\s.,;:!?\"']+$")


def normalize_answer(text: str) -> str:
    """First line, lower case, no leading article or trailing punctuation: "A Cube." -> "cube"."""
    line = (text.strip().splitlines() or [""])[0].strip().lower()
    line = _TRAIL.sub("", line)
    return _ARTICLES.sub("", line).strip()
