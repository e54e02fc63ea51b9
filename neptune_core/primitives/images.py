"""The ``image=`` argument shared by primitives that look at one image of a sample with several
(NLVR2's pair: ``image=0`` the left image, ``image=1`` the right one).

A sample with one image takes only ``image=0`` (the default), so programs written for one image
run unchanged. ``bind`` checks the index against :attr:`Limits.images` in the sandbox, the
parent checks it again (every request is re-bound there) and picks the image and its boxes with
:meth:`CallContext.view`; the trace entry of a call on a sample with several images records
``"image": k``, and the report draws it.
"""

from __future__ import annotations

import ast
from typing import Any

from neptune_core.primitives.base import Limits

DOC = """image: which image of the sample, 0 unless the sample has several (an image pair: 0 = left,
    1 = right); each image has its own boxes (n counts image 0's; len(t) those of a tensor t)."""


def check_image(primitive: str, image: Any, limits: Limits) -> int:
    """``image`` if it is an int index of one of the sample's images, else a TypeError / IndexError."""
    if isinstance(image, bool) or not isinstance(image, int):
        raise TypeError(f"{primitive}() image must be an int image index, got {image!r:.80}")
    if not 0 <= image < limits.images:
        have = "one image (image=0)" if limits.images == 1 else f"{limits.images} images (0 to {limits.images - 1})"
        raise IndexError(f"{primitive}() image {image} is out of range: this sample has {have}")
    return image


def audit_image(call: ast.Call, primitive: str, position: int) -> list[str]:
    """The auditor's check of a literal ``image`` argument (positional ``position`` or keyword)."""
    node = call.args[position] if len(call.args) > position else None
    node = node or next((kw.value for kw in call.keywords if kw.arg == "image"), None)
    negative = (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
    )
    if negative or (isinstance(node, ast.Constant) and not (type(node.value) is int and node.value >= 0)):
        return [f"line {call.lineno}: {primitive}'s image must be an image index 0, 1, ..., got {ast.unparse(node)}"]
    return []


def image_label(entry: dict[str, Any]) -> str:
    """ " image=k" for a trace entry of a call on a sample with several images, else ""."""
    return f" image={entry['image']}" if "image" in entry else ""
