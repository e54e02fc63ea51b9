"""Video files: writing, probing, lazy decoding by timestamp (PyAV), and the sampling arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from neptune_core.types import Sample
from neptune_core.video import (
    VideoError,
    VideoReader,
    VideoRef,
    chunk_spans,
    phase_for_round,
    probe,
    read_frames,
    uniform_times,
    write_video,
)

FPS = 8


def _index_of(image) -> int:
    """The frame index painted into a frame's grey level (index * 6)."""
    return int(round(np.asarray(image).mean() / 6))


@pytest.fixture(scope="module")
def counting_video(tmp_path_factory):
    """40 frames at 8 fps (5 s), frame k painted grey level 6k; a keyframe every 8 frames."""
    path = tmp_path_factory.mktemp("video") / "count.mp4"
    frames = [np.full((48, 64, 3), 6 * k, np.uint8) for k in range(40)]
    ref = write_video(path, frames, FPS, gop=8)
    return path, ref


def test_write_and_probe(counting_video):
    path, ref = counting_video
    assert ref.num_frames == 40 and ref.duration == pytest.approx(5.0)
    got = probe(str(path))
    assert got.fps == pytest.approx(FPS) and got.duration == pytest.approx(5.0, abs=0.2)
    assert (got.width, got.height) == (64, 48) and got.num_frames == 40


def test_frame_at_returns_the_frame_showing_that_time(counting_video):
    path, _ = counting_video
    with VideoReader(str(path)) as reader:
        for t in (0.0, 0.01, 0.124, 0.13, 1.0, 2.5, 4.9, 4.999, 7.0):  # 7.0: clipped to the last frame
            assert _index_of(reader.frame_at(t)) == min(int(t * FPS + 1e-9), 39), t
        # going back in time seeks; a frame shown again is the same
        assert _index_of(reader.frame_at(0.5)) == 4


def test_increasing_times_decode_forward_without_seeking_each_time(counting_video):
    path, _ = counting_video
    with VideoReader(str(path)) as reader:
        frames = reader.frames_at([k / FPS + 0.06 for k in range(0, 40, 2)])
        assert [_index_of(f) for f in frames] == list(range(0, 40, 2))
        assert reader.seeks == 1  # one seek, then forward decoding (the gaps are short)
        assert reader.decoded <= 41  # never more than the video once
    with VideoReader(str(path)) as reader:
        frames = reader.frames_at([4.5, 0.2, 2.2])  # any order: decoded in time order, returned as asked
        assert [_index_of(f) for f in frames] == [36, 1, 17]


def test_far_jumps_seek_and_decode_only_from_the_keyframe_before(tmp_path):
    frames = [np.full((32, 32, 3), k % 40 * 6, np.uint8) for k in range(400)]  # 50 s, keyframe every 16 frames
    path = tmp_path / "long.mp4"
    write_video(path, frames, FPS, gop=16)
    with VideoReader(str(path)) as reader:
        reader.frames_at([1.0, 20.0, 45.0])
        assert reader.seeks == 3
        assert reader.decoded < 3 * 17 + 3  # each seek decodes at most one GOP, never the whole video


def test_frames_are_scaled_to_max_side(counting_video):
    path, _ = counting_video
    with VideoReader(str(path), max_side=32) as reader:
        assert reader.frame_at(1.0).size == (32, 24)
    assert read_frames(str(path), [0.0])[0].size == (64, 48)


def test_a_missing_or_broken_file_is_a_video_error(tmp_path):
    with pytest.raises(VideoError, match="cannot open"):
        probe(str(tmp_path / "missing.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError):
        VideoReader(str(bad))


def test_a_video_sample_loads_its_middle_frame(counting_video):
    path, ref = counting_video
    sample = Sample("v", "q?", video=VideoRef(str(path)))
    assert _index_of(sample.load_image()) == 20


def test_sampling_arithmetic():
    assert uniform_times(0, 4, 4) == [0.5, 1.5, 2.5, 3.5]
    assert uniform_times(2, 4, 2, phase=0.25) == [2.25, 3.25]
    assert uniform_times(0, 1, 0) == []
    # VLAgent: ceil(v * l / f) chunks so that f frames per chunk sample at >= v fps
    spans = chunk_spans(75.0, 6, 1 / 3)
    assert len(spans) == 5 and spans[0] == (0.0, 15.0) and spans[-1][1] == 75.0
    assert len(chunk_spans(10.0, 8, 1.0)) == 2 and len(chunk_spans(8.0, 8, 1.0)) == 1
    assert all(6 / (e - s) >= 1 / 3 - 1e-9 for s, e in spans)
    assert [phase_for_round(r) for r in range(4)] == [0.5, 0.25, 0.75, 0.125]
