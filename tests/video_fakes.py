"""Fakes around the video path, shared by the video tests and bench/bench_video_memory.py.

- :func:`make_event_video`: a grey video with a white bar sweeping across (every frame differs)
  and a red square shown only during ``event`` (seconds); frames are made as YUV planes, so long
  videos encode quickly, and only one frame is in memory at a time.
- :func:`video_responder`: a responder for tests/fake_openai_server.py that plays both models of
  VLAgent's chunk selection: a captioner (a request with an image: "a red square on a grey screen"
  when the image shows red, else "an empty grey screen") and the relevance judge (a request
  listing chunks: relevance 1 for chunks whose captions mention a red square, 0 otherwise).
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.fake_openai_server import Action, reply

RED_YUV = (81, 90, 240)  # BT.601 studio range


def make_event_video(
    path: str | Path,
    seconds: float,
    fps: float,
    size: tuple[int, int],
    event: tuple[float, float],
    *,
    gop: int = 0,
    crf: int = 30,
) -> dict[str, Any]:
    """Write the video; returns its frame count and the bytes a fully decoded RGB copy would take."""
    import av

    w, h = size
    n = int(round(seconds * fps))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = np.full((h * 3 // 2, w), 110, np.uint8)
    buf[h:] = 128
    sq = max(4, h // 6) // 2 * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": str(crf), **({"g": str(gop)} if gop else {})}
        bar = max(2, w // 32)
        for k in range(n):
            t = k / fps
            x = (k * 3) % max(1, w - bar)
            buf[: h // 8, x : x + bar] = 235
            red = event[0] <= t < event[1]
            if red:  # a red square in the middle
                y0, x0 = h // 2 - sq // 2, w // 2 - sq // 2
                buf[y0 : y0 + sq, x0 : x0 + sq] = RED_YUV[0]
                u = buf[h : h + h // 4].reshape(h // 2, w // 2)
                v = buf[h + h // 4 :].reshape(h // 2, w // 2)
                u[y0 // 2 : (y0 + sq) // 2, x0 // 2 : (x0 + sq) // 2] = RED_YUV[1]
                v[y0 // 2 : (y0 + sq) // 2, x0 // 2 : (x0 + sq) // 2] = RED_YUV[2]
            frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
            buf[: h // 8, x : x + bar] = 110
            if red:
                buf[:h] = 110
                buf[h:] = 128
        for packet in stream.encode():
            container.mux(packet)
    return {"frames": n, "decoded_bytes": n * w * h * 3, "file_bytes": path.stat().st_size}


def shows_red(image: Image.Image) -> bool:
    a = np.asarray(image.convert("RGB")).astype(int)
    return bool(((a[..., 0] > 150) & (a[..., 1] < 90) & (a[..., 2] < 90)).sum() >= 4)


def _image_of(body: dict[str, Any]) -> Image.Image | None:
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    data = part["image_url"]["url"].split(",", 1)[1]
                    return Image.open(io.BytesIO(base64.b64decode(data)))
    return None


def relevance_reply(text: str) -> str:
    """The judge: relevance 1 for each listed chunk whose captions mention a red square."""
    chunks = re.findall(r"^Chunk \d+ \([^)]*\): (.*)$", text, re.M)
    return json.dumps({"relevance": [1.0 if "red square" in c else 0.0 for c in chunks]})


def video_responder(body: dict[str, Any]) -> Action:
    image = _image_of(body)
    if image is not None:
        return reply("a red square on a grey screen" if shows_red(image) else "an empty grey screen")
    text = str((body.get("messages") or [{}])[-1].get("content", ""))
    if "Chunk 1 (" in text:
        return reply(relevance_reply(text))
    return reply("fake: no rule for this request")


__all__ = ["make_event_video", "relevance_reply", "shows_red", "video_responder"]
