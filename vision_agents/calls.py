"""Counting the model calls a sample causes: the ``model_calls`` field of every result row.

Counts are taken where calls reach a model, and nowhere else:

- ``box_evals``: box and box-pair evaluations a VisionAgent was asked for, one per
  (question, box tuple); counted by :class:`vision_agents.base.MemoizedAgent` when it
  forwards a memo miss to the model it wraps (an ensemble's members are each memoised,
  so each member's evaluations count, never the ensemble's own call). ``by_arity`` splits
  them into whole-image (0), single-box (1) and box-pair (2) evaluations.
- ``queries``: open answers forwarded to a model (memo misses), counted the same way.
- ``detections``: detector calls that reached a detector (detection-cache misses; an
  ensemble detector counts each member's call).
- ``memo_hits``: evaluations and answers served from the memo instead of a model.

The runner opens :func:`counting` around each sample; code that reaches a model calls
:func:`count`. Outside a ``counting`` block nothing is recorded (there is no row to
record on). Counts go to the block of the thread that opened it (a ``ContextVar``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

ARITIES = (0, 1, 2)


@dataclass
class ModelCalls:
    """The calls of one sample (or a sum of samples)."""

    box_evals_by_arity: dict[int, int] = field(default_factory=lambda: dict.fromkeys(ARITIES, 0))
    queries: int = 0
    detections: int = 0
    memo_hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def box_evals(self) -> int:
        return sum(self.box_evals_by_arity.values())

    def add(self, *, arity: int | None = None, box_evals: int = 0, queries: int = 0, detections: int = 0,
            memo_hits: int = 0) -> None:  # fmt: skip
        with self._lock:
            if box_evals:
                if arity is None:
                    raise ValueError("box evaluations are counted with their arity")
                self.box_evals_by_arity[arity] = self.box_evals_by_arity.get(arity, 0) + box_evals
            self.queries += queries
            self.detections += detections
            self.memo_hits += memo_hits

    def to_dict(self) -> dict[str, Any]:
        """The row's ``model_calls``: ``box_evals`` (total and ``by_arity``), ``queries``, ``detections``, ``memo_hits``."""
        return {
            "box_evals": self.box_evals,
            "by_arity": {str(a): n for a, n in sorted(self.box_evals_by_arity.items())},
            "queries": self.queries,
            "detections": self.detections,
            "memo_hits": self.memo_hits,
        }


_CURRENT: ContextVar[ModelCalls | None] = ContextVar("neptune_model_calls", default=None)


@contextlib.contextmanager
def counting() -> Iterator[ModelCalls]:
    """Count the model calls made inside the block (by this thread) into a fresh :class:`ModelCalls`."""
    calls = ModelCalls()
    token = _CURRENT.set(calls)
    try:
        yield calls
    finally:
        _CURRENT.reset(token)


def count(**kwargs: Any) -> None:
    """Add to the counts of the open :func:`counting` block (no block open: nothing to record)."""
    calls = _CURRENT.get()
    if calls is not None:
        calls.add(**kwargs)
