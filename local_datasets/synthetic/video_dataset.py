"""The synthetic video world on disk, and its loader (dataset ``video_synthetic``).

Layout (``video.world.cache_dir``, by default ``<output_dir>/_video_worlds/<hash of the world
settings>``, so other settings never reuse these files)::

    world.json                       the settings the folder was made with
    videos/video_000000.mp4          H.264, ``fps`` x ``seconds`` frames
    annotations/video_000000.json    objects, per-frame states, events, and the video's questions

Videos are made on first use, one at a time, each one's annotation written last (a
video without its annotation is made again), so an interrupted run resumes and a run that
asks for ``num_samples`` questions only makes the videos they need.
CLI: ``python -m local_datasets.synthetic.video_dataset --out DIR [--num_videos N ...]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_datasets.multiple_choice import mc_meta, with_options
from local_datasets.synthetic.video_questions import generate_questions
from local_datasets.synthetic.video_world import annotation, make_scenario, render_frames
from neptune_core.errors import UserError
from neptune_core.types import Sample
from neptune_core.video import VideoRef, write_video
from neptune_core.video_config import VideoWorldConfig

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

FORMAT = 2  # bump when the files' content changes, so old folders are not reused


def check_world(cfg: VideoWorldConfig) -> None:
    """Raise UserError for settings the world cannot honour."""
    if not 3 <= cfg.min_objects <= cfg.max_objects <= 8:
        raise UserError(
            f"video.world.min_objects/max_objects must satisfy 3 <= min <= max <= 8, got {cfg.min_objects}/{cfg.max_objects}"
        )
    if cfg.width < 96 or cfg.height < 64:
        raise UserError(f"video.world size must be at least 96x64, got {cfg.width}x{cfg.height}")
    if cfg.fps * cfg.seconds < 16:
        raise UserError(f"video.world needs at least 16 frames (fps x seconds), got {cfg.fps * cfg.seconds:g}")
    if cfg.num_videos < 0 or cfg.questions_per_video < 0:
        raise UserError("video.world.num_videos and questions_per_video must be >= 0")


def settings_hash(cfg: VideoWorldConfig) -> str:
    d = {
        k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("cache_dir", "num_videos", "questions_per_video")
    }
    d["format"] = FORMAT
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def world_dir(config: RunConfig) -> Path:
    cfg = config.video.world
    if cfg.cache_dir:
        return config.resolve_path(cfg.cache_dir)
    return Path(config.output_dir) / "_video_worlds" / f"video-{settings_hash(cfg)}"


def make_video(out: Path, cfg: VideoWorldConfig, index: int) -> dict[str, Any]:
    """Render, encode and annotate video ``index`` under ``out``; returns its annotation (with questions).

    Several processes (run workers) may ask for the same video: one makes it, under a file lock, and
    every file appears whole (written aside, then renamed)."""
    from filelock import FileLock

    ann_path = out / "annotations" / f"video_{index:06d}.json"
    ann_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(ann_path.with_suffix(".lock"))):
        if ann_path.is_file():
            ann = json.loads(ann_path.read_text())
            if ann.get("questions_asked", 0) >= cfg.questions_per_video:
                return ann
        return _make_video(out, cfg, index, ann_path)


def _make_video(out: Path, cfg: VideoWorldConfig, index: int, ann_path: Path) -> dict[str, Any]:
    scenario = make_scenario(cfg, index)
    name = f"videos/video_{index:06d}.mp4"
    frames: list[dict[str, Any]] = []

    def images() -> Iterator[Any]:
        for image, frame in render_frames(scenario):
            frames.append(frame)
            yield image

    part = out / f"{name}.part.mp4"
    write_video(part, images(), cfg.fps, crf=12, pix_fmt="yuv444p")
    os.replace(part, out / name)
    ann = annotation(scenario, frames, name, cfg.fps)
    rng = random.Random(f"video-world:{cfg.seed}:{index}:questions")
    ann["questions"] = generate_questions(ann, rng, cfg.questions_per_video)
    ann["questions_asked"] = cfg.questions_per_video
    tmp = ann_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ann))
    os.replace(tmp, ann_path)
    return ann


def video_samples(out: Path, cfg: VideoWorldConfig, index: int, split: str = "val") -> list[Sample]:
    ann = make_video(out, cfg, index)
    ref = VideoRef(
        str(out / ann["video"]),
        duration=ann["num_frames"] / float(ann["fps"]),
        fps=float(ann["fps"]),
        num_frames=int(ann["num_frames"]),
        width=int(ann["width"]),
        height=int(ann["height"]),
    )
    samples = []
    for k, q in enumerate(ann["questions"][: cfg.questions_per_video]):
        samples.append(
            Sample(
                id=f"video{index:05d}_q{k}",
                question=with_options(q["question"], q["options"]),
                answer=q["options"][q["answer_index"]],
                video=ref,
                program=q["program"],
                scene=ann,
                meta=mc_meta(
                    q["question"], q["options"], q["answer_index"], family=q["family"], qtype=q["qtype"], split=split
                ),
            )
        )
    return samples


def iter_video_samples(out: Path, cfg: VideoWorldConfig, split: str = "val") -> Iterator[Sample]:
    check_world(cfg)
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "world.json"
    if not settings.is_file():
        settings.write_text(json.dumps({"settings": dataclasses.asdict(cfg), "format": FORMAT}, indent=2))
    for index in range(cfg.num_videos):
        yield from video_samples(out, cfg, index, split)


def load_video_synthetic(config: RunConfig) -> Iterator[Sample]:
    """Samples of the synthetic video world (videos made on first use under :func:`world_dir`)."""
    return iter_video_samples(world_dir(config), config.video.world, config.split)


def _identity(config: RunConfig) -> dict[str, Any]:
    """The world's version and settings: a run directory never resumes rows of another world (runners/identity.py)."""
    return {"video_world": settings_hash(config.video.world), "format": FORMAT}


load_video_synthetic.identity = _identity  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the synthetic video world (videos, annotations, questions).")
    p.add_argument("--out", required=True, type=Path)
    for f in dataclasses.fields(VideoWorldConfig):
        if f.name != "cache_dir":
            p.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    args = p.parse_args(argv)
    cfg = VideoWorldConfig(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(VideoWorldConfig) if f.name != "cache_dir"}
    )
    n = sum(1 for _ in iter_video_samples(args.out, cfg))
    print(f"{cfg.num_videos} videos, {n} questions in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
