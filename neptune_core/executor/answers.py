"""Turning what ``execute`` returned into an answer: :func:`to_answer`."""

from __future__ import annotations

import math
from typing import Any

from neptune_core.executor.wire import OpaqueValue
from neptune_core.text import clean_text
from probabilistic_tensor import ProbabilisticTensor


def to_answer(value: Any) -> str | int:
    """Normalise a program's return value.

    bool -> "yes"/"no"; 0-d prob tensor -> "yes"/"no" (p > 0.5); 0-d number tensor,
    int or float -> str(round(value)); 1-d prob tensor -> the most probable box index
    (int, referring expressions); str -> stripped lower-case string (lone surrogates -> U+FFFD).
    Anything else raises ValueError naming the type.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return clean_text(value.strip().lower())
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"cannot turn the non-finite number {value} into an answer")
        return str(round(value))
    if isinstance(value, ProbabilisticTensor):
        if len(value.vars) == 0:
            x = value.item()
            if not math.isfinite(x):
                raise ValueError(f"cannot turn the non-finite tensor value {x} into an answer")
            if value.kind == "number":
                return str(round(x))
            return "yes" if x > 0.5 else "no"
        if len(value.vars) == 1 and value.kind == "prob":
            if len(value) == 0:
                raise ValueError("cannot pick a box from an empty tensor (no boxes)")
            return value.argmax()
        raise ValueError(
            f"cannot turn a {value.kind} tensor over variables {value.vars} into an answer; "
            "reduce it with .exists()/.count() or pick a box with .iota()"
        )
    type_name = value.type_name if isinstance(value, OpaqueValue) else type(value).__name__
    raise ValueError(f"cannot turn a value of type {type_name} into an answer")
