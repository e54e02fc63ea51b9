"""The two perception contracts: VisionAgent (yes/no scores and open answers) and
Detector (boxes). Backends subclass these and are built with ``from_config``.

Two optional hooks every backend may override:

- ``preflight()``: called once before the first sample; load (or open and validate)
  weights, reach a server. A backend that cannot work raises a ``UserError`` whose one
  line says what is wrong and how to fix it. Default: nothing.
- ``score_with_info`` / ``answer_with_info``: the result plus what the backend wants
  recorded on the trace entry of that call (for example an unknown concept, or each
  ensemble member's output). Default: the plain result and an empty dict.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from neptune_core.types import Box, Detection, Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


class VisionAgent(ABC):
    """A model that answers yes/no questions about marked boxes, and open questions.

    Subclasses implement :meth:`score` and :meth:`answer`; they may override
    :meth:`begin_sample` when they need per-sample state.
    """

    name: str = "vision_agent"

    @classmethod
    def from_config(cls, config: RunConfig) -> VisionAgent:
        """Build the backend from the run config. Load weights lazily, not here."""
        return cls()

    def begin_sample(self, sample: Sample) -> None:  # noqa: B027 (an optional hook)
        """Called by the runner before each sample. Default: nothing."""

    def preflight(self) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample; raise a UserError if the backend cannot work."""

    @abstractmethod
    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        """Return p(yes) for every question and every box tuple.

        ``arity`` 0: the whole image, shape ``(Q,)``. ``arity`` 1: box i marked in red,
        shape ``(Q, n)``. ``arity`` 2: box i in red (subject) and box j in green (object),
        shape ``(Q, n, n)``. Values in [0, 1]; the tensor may carry gradients.
        """

    @abstractmethod
    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        """A short, normalised open answer about ``box`` (marked in red), or the whole image if None."""

    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """:meth:`score` plus one dict per question for the trace (empty: nothing to record)."""
        return self.score(image, boxes, questions, arity), [{} for _ in questions]

    def answer_with_info(self, image: Image.Image, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        """:meth:`answer` plus a dict for the trace (empty: nothing to record)."""
        return self.answer(image, box, question), {}


class Detector(ABC):
    """Proposes boxes for the object names a program needs."""

    name: str = "detector"

    @classmethod
    def from_config(cls, config: RunConfig) -> Detector:
        return cls()

    def begin_sample(self, sample: Sample) -> None:  # noqa: B027 (an optional hook)
        """Called by the runner before each sample. Default: nothing."""

    def preflight(self) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample; raise a UserError if the backend cannot work."""

    @abstractmethod
    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        """Boxes (xyxy pixels), scores and labels for ``object_names`` in ``image``."""


class MemoizedAgent(VisionAgent):
    """Wraps any VisionAgent so identical calls within one sample reach the model once.

    The memo is keyed by (image, boxes, question, arity) for score and (image, box, question)
    for answer (the image by identity: a sample's images are held by the runner for the whole
    sample, and a sample may have several), holds each result with its trace info, and is
    cleared at :meth:`begin_sample`.
    ``calls`` counts calls that reached the wrapped model.
    """

    def __init__(self, inner: VisionAgent) -> None:
        self.inner = inner
        self.name = inner.name
        self._scores: dict[tuple, tuple[torch.Tensor, dict[str, Any]]] = {}
        self._answers: dict[tuple, tuple[str, dict[str, Any]]] = {}
        self.calls = 0

    def begin_sample(self, sample: Sample) -> None:
        self._scores.clear()
        self._answers.clear()
        self.inner.begin_sample(sample)

    def preflight(self) -> None:
        self.inner.preflight()

    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        box_key = (id(image), tuple(tuple(float(v) for v in b) for b in boxes))
        missing = [q for q in dict.fromkeys(questions) if (box_key, q, arity) not in self._scores]
        if missing:
            self.calls += 1
            fresh, infos = self.inner.score_with_info(image, boxes, missing, arity)
            for q, row, info in zip(missing, fresh, infos, strict=True):
                self._scores[(box_key, q, arity)] = (row, info)
        hits = [self._scores[(box_key, q, arity)] for q in questions]
        return torch.stack([row for row, _ in hits]), [info for _, info in hits]

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        return self.score_with_info(image, boxes, questions, arity)[0]

    def answer_with_info(self, image: Image.Image, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        key = (id(image), None if box is None else tuple(float(v) for v in box), question)
        if key not in self._answers:
            self.calls += 1
            self._answers[key] = self.inner.answer_with_info(image, box, question)
        return self._answers[key]

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        return self.answer_with_info(image, box, question)[0]
