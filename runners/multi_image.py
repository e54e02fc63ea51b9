"""Samples with several images (NLVR2's left and right image): the detector runs on each image,
the program addresses image k with ``image=k`` (neptune_core/primitives/images.py), and the row
records every image with its own boxes.

A sample with one image goes through exactly the single-image path: one detection, ``boxes``
on the row, no ``images`` field. A sample with several images keeps ``boxes`` (and
``detection``) for the first image, as before, and adds::

    "images": [{"image": "<path or name>", "boxes": [[x1, y1, x2, y2], ...]}, ...]   # every image, first included

which the report draws image by image (analysis/report.py).
"""

from __future__ import annotations

import functools
from typing import Any

from PIL import Image

from neptune_core.types import Box, Detection, Sample
from vision_agents.base import Detector


def detect_each(detector: Detector, images: list[Image.Image], object_names: list[str]) -> list[Detection]:
    """One detection per image, in order. The ground-truth detector holds one image's boxes, so it
    refuses a sample with several images instead of giving every image the first image's boxes."""
    if len(images) > 1 and detector.name == "gt":
        raise ValueError(
            f"od_model 'gt' has ground-truth boxes for one image, but this sample has {len(images)} images; "
            "use a detector (e.g. od_model 'dino' or 'classic')"
        )
    return [detector.detect(image, object_names) for image in images]


def rounded_boxes(detection: Detection) -> list[Box]:
    """A detection's boxes as the row stores them (pixels, 2 decimals), each a new list."""
    return [list(_rounded(tuple(map(float, b)))) for b in detection.boxes]


@functools.lru_cache(maxsize=4096)
def _rounded(box: tuple[float, ...]) -> tuple[float, ...]:
    """``box`` rounded to 2 decimals (kept: an image's questions meet the same boxes again and again,
    and ``round(x, 2)`` is a slow call)."""
    return tuple(round(v, 2) for v in box)


def images_field(sample: Sample, boxes: list[list[Box]]) -> list[dict[str, Any]]:
    """The row's ``images`` entry: each image's name and boxes (names from the sample, else "image k")."""
    names = sample.image_names()
    return [
        {"image": names[k] if k < len(names) else f"image {k}", "boxes": image_boxes}
        for k, image_boxes in enumerate(boxes)
    ]
