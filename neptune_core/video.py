"""Videos: a reference to a video file and lazy decoding by timestamp (PyAV).

A :class:`VideoRef` names a file and what is known about it (duration, fps, frame count,
size); :func:`probe` reads that from the container without decoding a frame.
:class:`VideoReader` decodes the frames at given timestamps: it seeks to the keyframe
before a time and decodes forward to it, keeping only the frame it returns, so memory does
not grow with the video's length (frames larger than ``max_side`` are scaled down inside
the decoder). Times asked in increasing order reuse the decoder's position instead of
seeking again when the next time is close (:data:`FORWARD_DECODE_S`).

Frame ``k`` of a video at ``fps`` shows ``[k / fps, (k + 1) / fps)``; :func:`frame_at`
returns the frame showing time ``t``. :func:`uniform_times` and :func:`chunk_spans` are
the sampling arithmetic of VLAgent's long-video optimisation (runners/chunk_selection.py).
:func:`write_video` encodes frames (the synthetic video world, tests, benchmarks).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from neptune_core.errors import UserError

FORWARD_DECODE_S = 2.0  # decode forward instead of seeking when the next time is at most this far ahead
_EPS = 1e-6


class VideoError(ValueError):
    """A video cannot be opened or decoded (a bad sample, recorded on its row)."""


@dataclass(frozen=True)
class VideoRef:
    """A video file and what is known about it (None: not known yet; :func:`probe` fills it)."""

    path: str
    duration: float | None = None  # seconds
    fps: float | None = None
    num_frames: int | None = None
    width: int | None = None
    height: int | None = None

    @property
    def known(self) -> bool:
        return self.duration is not None and self.fps is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "duration": None if self.duration is None else round(self.duration, 3),
            "fps": None if self.fps is None else round(self.fps, 3),
            "num_frames": self.num_frames,
            "width": self.width,
            "height": self.height,
        }


def _av() -> Any:
    try:
        import av
    except ImportError:  # pragma: no cover - a broken install
        raise UserError("video support needs PyAV: pip install av (see requirements.txt)") from None
    return av


def probe(ref: VideoRef | str) -> VideoRef:
    """``ref`` with duration, fps, frame count and size read from the container (no frame is decoded)."""
    ref = ref if isinstance(ref, VideoRef) else VideoRef(str(ref))
    if ref.known and ref.width is not None:
        return ref
    av = _av()
    try:
        with av.open(ref.path) as container:
            if not container.streams.video:
                raise VideoError(f"{ref.path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or None
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            frames = int(stream.frames) or None
            if duration is None and frames and fps:
                duration = frames / fps
            if frames is None and duration and fps:
                frames = int(round(duration * fps))
            width, height = stream.codec_context.width, stream.codec_context.height
    except (OSError, av.error.FFmpegError) as e:
        raise VideoError(f"cannot open video {ref.path}: {type(e).__name__}: {e}") from None
    if not duration or not fps:
        raise VideoError(f"video {ref.path}: duration or frame rate unknown")
    return replace(
        ref,
        duration=ref.duration or duration,
        fps=ref.fps or fps,
        num_frames=ref.num_frames or frames,
        width=width,
        height=height,
    )


def uniform_times(start: float, end: float, count: int, phase: float = 0.5) -> list[float]:
    """``count`` times spread evenly over ``[start, end)``: ``start + (k + phase) * (end - start) / count``."""
    if count < 1:
        return []
    step = (end - start) / count
    return [start + (k + phase) * step for k in range(count)]


def chunk_spans(duration: float, frames_per_chunk: int, min_fps: float) -> list[tuple[float, float]]:
    """VLAgent's chunks: ``ceil(min_fps * duration / frames_per_chunk)`` equal spans (at least one), so
    ``frames_per_chunk`` frames per chunk sample it at ``min_fps`` or more."""
    count = max(1, math.ceil(min_fps * duration / frames_per_chunk - 1e-9))
    step = duration / count
    return [(k * step, duration if k == count - 1 else (k + 1) * step) for k in range(count)]


def phase_for_round(r: int) -> float:
    """Where frames sit inside their slots in resampling round ``r``: 1/2, 1/4, 3/4, 1/8, 5/8, ... (van der
    Corput), so each round samples frames no earlier round saw."""
    n, denom, phase = r + 1, 1.0, 0.0
    while n:
        denom *= 2
        n, bit = divmod(n, 2)
        phase += bit / denom
    return phase


def _scaled(width: int, height: int, max_side: int) -> tuple[int, int] | None:
    if max_side <= 0 or max(width, height) <= max_side:
        return None
    s = max_side / max(width, height)
    return max(2, int(round(width * s))), max(2, int(round(height * s)))


class VideoReader:
    """Decodes frames of one video file at given times; one open container, one frame held at a time.

    ``max_side``: frames whose longer side exceeds it are scaled down while decoding (0: never).
    ``decoded`` counts decoded frames and ``seeks`` the seeks (benchmarks, tests).
    """

    def __init__(self, ref: VideoRef | str, *, max_side: int = 0) -> None:
        self.ref = probe(ref)
        self.max_side = int(max_side)
        av = _av()
        try:
            self._container = av.open(self.ref.path)
        except (OSError, av.error.FFmpegError) as e:
            raise VideoError(f"cannot open video {self.ref.path}: {type(e).__name__}: {e}") from None
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._frames: Any = None  # the decoder's frame iterator, positioned after self._current
        self._current: Any = None  # the last decoded av.VideoFrame
        self._next: Any = None  # a frame decoded past the last asked time (the next one to show)
        self._from_start = False
        self.decoded = 0
        self.seeks = 0

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._frames = self._current = self._next = None
        self._container.close()

    @property
    def duration(self) -> float:
        return float(self.ref.duration or 0.0)

    def _seek(self, t: float) -> None:
        av = _av()
        self.seeks += 1
        target = max(0, int((t - 0.5 / float(self.ref.fps or 30)) / self._stream.time_base))
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError as e:
            raise VideoError(f"video {self.ref.path}: cannot seek to {t:.3f} s: {e}") from None
        self._frames = self._container.decode(self._stream)
        self._current = self._next = None
        self._from_start = target == 0

    def _advance(self) -> Any:
        av = _av()
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except av.error.FFmpegError as e:
            raise VideoError(f"video {self.ref.path}: decoding failed: {e}") from None
        self.decoded += 1
        return frame

    def _frame_showing(self, t: float) -> Any:
        """The av.VideoFrame showing time ``t`` (the last frame starting at or before it)."""
        cur = self._current
        if (
            self._frames is None
            or cur is None
            or (cur.time or 0.0) > t + _EPS
            or t - (cur.time or 0.0) > FORWARD_DECODE_S
        ):
            self._seek(t)
        while True:
            frame = self._next if self._next is not None else self._advance()
            self._next = None
            if frame is None:  # past the last frame: it shows the rest of the video
                if self._current is None:
                    raise VideoError(f"video {self.ref.path}: no frame at {t:.3f} s")
                return self._current
            time = frame.time if frame.time is not None else t
            if self._current is None and time > t + _EPS and not self._from_start:
                self._seek(0.0)  # the seek landed after t (an inexact index): decode from the start
                continue
            if time <= t + _EPS or self._current is None:
                self._current = frame
                continue
            self._next = frame  # the first frame after t: kept for the next (later) time
            return self._current

    def _to_image(self, frame: Any) -> Image.Image:
        size = _scaled(frame.width, frame.height, self.max_side)
        if size is not None:
            frame = frame.reformat(width=size[0], height=size[1])
        return frame.to_image().convert("RGB")

    def frame_at(self, t: float) -> Image.Image:
        """The frame showing time ``t`` (seconds, clipped to the video) as an RGB image."""
        t = min(max(0.0, float(t)), max(0.0, self.duration - 1e-3))
        return self._to_image(self._frame_showing(t))

    def frames_at(self, times: Sequence[float]) -> list[Image.Image]:
        """The frames at ``times`` (any order; decoded in time order, returned in the order asked)."""
        order = sorted(range(len(times)), key=lambda i: times[i])
        out: list[Image.Image | None] = [None] * len(times)
        for i in order:
            out[i] = self.frame_at(times[i])
        return out  # type: ignore[return-value]


def read_frames(ref: VideoRef | str, times: Sequence[float], *, max_side: int = 0) -> list[Image.Image]:
    """The frames of ``ref`` at ``times`` (opens and closes the file)."""
    with VideoReader(ref, max_side=max_side) as reader:
        return reader.frames_at(times)


def write_video(
    path: str | Path,
    frames: Iterable[Image.Image | np.ndarray],
    fps: float,
    *,
    codec: str = "libx264",
    crf: int = 18,
    gop: int = 0,
    pix_fmt: str = "yuv420p",
) -> VideoRef:
    """Encode ``frames`` (RGB images or HxWx3 uint8 arrays, all one size) into ``path``; returns its ref.

    ``gop``: frames between keyframes (0: the encoder's default). Frames are encoded as they come,
    so an iterator of any length needs the memory of one frame."""
    av = _av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = _rate(fps)
    count = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = pix_fmt
        options = {"crf": str(crf)} if codec.startswith("libx26") else {}
        if gop:
            options["g"] = str(gop)
        stream.options = options
        for frame in frames:
            arr = np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame, dtype=np.uint8)
            if count == 0:
                stream.height, stream.width = arr.shape[0] - arr.shape[0] % 2, arr.shape[1] - arr.shape[1] % 2
            arr = arr[: stream.height, : stream.width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    if count == 0:
        path.unlink(missing_ok=True)
        raise ValueError("write_video: no frames")
    return VideoRef(str(path), duration=count / float(fps), fps=float(fps), num_frames=count)


def _rate(fps: float) -> Any:
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


__all__ = [
    "VideoError",
    "VideoReader",
    "VideoRef",
    "chunk_spans",
    "phase_for_round",
    "probe",
    "read_frames",
    "uniform_times",
    "write_video",
]
