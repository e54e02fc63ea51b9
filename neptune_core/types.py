"""The data that flows between parts: Sample (from loaders), Program (from generators),
Detection (from detectors), and the error record written on a result line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

Box = list[float]  # [x1, y1, x2, y2] in pixels


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two xyxy boxes (0 when the union is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Sample:
    """One question about one image, as a loader yields it.

    ``answer`` is a string for VQA, or a box ``[x1, y1, x2, y2]`` for referring
    expressions. ``boxes`` are ground-truth or pre-detected boxes (xyxy pixels).
    ``program`` is a program the dataset brings: a CLEVR functional program (a list of
    nodes), a LEFT first-order-logic string, or Python source defining ``execute``
    (run by ``program_generator: "given"``).
    ``scene`` holds scene annotations (CLEVR scene dict) for oracle backends only.
    ``meta`` carries the question family, split and anything else a loader knows.
    ``more_images``: the sample's second, third... images (paths, or PIL images), e.g. NLVR2's
    right image; ``image_path`` / ``image`` stay the first. Programs address image k with
    ``image=k`` (see :meth:`load_images`).
    """

    id: str
    question: str
    answer: Any = None
    image_path: str | None = None
    image: Image.Image | None = None
    boxes: list[Box] | None = None
    program: Any = None
    scene: dict | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    more_images: list[str | Image.Image] = field(default_factory=list)

    def load_image(self) -> Image.Image:
        """The image as RGB; loaded from ``image_path`` when no image is held."""
        if self.image is not None:
            return self.image
        if self.image_path is None:
            raise ValueError(f"sample {self.id} has neither an image nor an image_path")
        with Image.open(self.image_path) as im:
            return im.convert("RGB")

    def load_images(self) -> list[Image.Image]:
        """Every image of the sample as RGB, the first (:meth:`load_image`) first."""
        return [self.load_image(), *(_rgb(im) for im in self.more_images)]

    def image_names(self) -> list[str]:
        """A name per image (its path, or "image k" for an in-memory one), for rows and reports."""
        first = self.image_path or "image 0"
        return [first, *(im if isinstance(im, str) else f"image {k + 1}" for k, im in enumerate(self.more_images))]

    @property
    def family(self) -> str:
        return str(self.meta.get("family", "all"))


def _rgb(image: str | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    with Image.open(image) as im:
        return im.convert("RGB")


@dataclass
class Program:
    """Python source defining ``def execute(score, query, n)``, and where it came from.

    ``origin`` is one of: "symbolic" (translated from a ground-truth program), "given"
    (the sample's own Python program), "cache", "generated", "repaired", "fallback". ``object_names`` are what the detector should
    look for. ``key`` is the cache key when the program came from or went to a cache.
    """

    source: str
    origin: str = "symbolic"
    object_names: list[str] = field(default_factory=list)
    key: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Detection:
    """Detector output: boxes as xyxy pixels, with a score and a label per box.

    ``info``: what the detector wants on the result row (an ensemble: each member's boxes).
    """

    boxes: list[Box]
    scores: list[float]
    labels: list[str]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ErrorRecord:
    """An error recorded on a sample's result line: exception type and message."""

    type: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorRecord:
        return cls(type=type(exc).__name__, message=str(exc)[:2000])

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}
