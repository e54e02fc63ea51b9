"""Measure the classic video agent's motion and contact cues on the synthetic video world's train split.

    python bench/fit_classic_video.py [--videos 12] [--seed 1] [--out /tmp/video-world-train]

For every frame of every video, every pair of ground-truth objects and every object: the classic
detector's boxes are matched to the annotation's boxes (IoU), and the floor speed and the surface
gap the classic agent measures are printed as percentiles for moving vs resting objects and for
touching vs apart pairs, with the error rates of the thresholds in vision_agents/classic_video.py.
Run on seed 1 (train); the demo (configs/demo-video.json) uses seed 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    from local_datasets.synthetic.video_dataset import make_video
    from neptune_core.primitives.video_context import FrameSet
    from neptune_core.types import box_iou
    from neptune_core.video import VideoRef, read_frames
    from neptune_core.video_config import VideoWorldConfig
    from vision_agents import classic_video as cv
    from vision_agents.classic_detector import ClassicDetector

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("/tmp/neptune-video-world-train"))
    args = p.parse_args(argv)
    cfg = VideoWorldConfig(num_videos=args.videos, questions_per_video=0, seed=args.seed, fps=6, seconds=4)
    agent, det = cv.ClassicVideoAgent(), ClassicDetector()
    speeds: dict[bool, list[float]] = {True: [], False: []}
    gaps: dict[bool, list[float]] = {True: [], False: []}
    missed = 0
    for v in range(args.videos):
        ann = make_video(args.out, cfg, v)
        T, fps = ann["num_frames"], ann["fps"]
        times = [(k + 0.5) / fps for k in range(T)]
        images = read_frames(VideoRef(str(args.out / ann["video"])), times)
        boxes = [det.detect(im, []).boxes for im in images]
        frames = FrameSet(times, images, boxes)
        for k, frame in enumerate(ann["frames"]):
            match: dict[int, int] = {}
            for o in frame["objects"]:
                ious = [box_iou(o["bbox"], b) for b in boxes[k]]
                if ious and max(ious) > 0.5:
                    match[o["id"]] = int(np.argmax(ious))
                else:
                    missed += 1
            for o in frame["objects"]:
                if o["id"] not in match:
                    continue
                track = {k: match[o["id"]]}
                for j in agent._neighbours(frames, k):
                    m = agent._follow(frames, k, match[o["id"]], j)
                    if m is not None:
                        track[j] = m
                s = agent._speed(frames, k, track)
                if s is not None:
                    speeds[bool(o["moving"])].append(s)
            touching = {frozenset(pair) for pair in frame["touching"]}
            ids = sorted(match)
            for a in range(len(ids)):
                for b in range(a + 1, len(ids)):
                    (pa, wa), (pb, wb) = agent._where(frames, k, match[ids[a]]), agent._where(frames, k, match[ids[b]])
                    gap = float(np.linalg.norm(pa - pb)) - (wa + wb) / 2
                    gaps[frozenset((ids[a], ids[b])) in touching].append(gap)

    def pct(xs: list[float]) -> str:
        if not xs:
            return "-"
        return " ".join(f"p{q}={np.percentile(xs, q):.2f}" for q in (1, 5, 25, 50, 75, 95, 99)) + f" (n={len(xs)})"

    print(f"objects not matched to a detected box: {missed}")
    print(f"speed moving : {pct(speeds[True])}")
    print(f"speed resting: {pct(speeds[False])}")
    print(f"gap touching : {pct(gaps[True])}")
    print(f"gap apart    : {pct(gaps[False])}")
    st, ct = cv.SPEED_THRESHOLD, cv.CONTACT_THRESHOLD
    print(
        f"threshold speed {st}: moving called resting {np.mean(np.array(speeds[True]) <= st):.3f}, "
        f"resting called moving {np.mean(np.array(speeds[False]) > st):.3f}"
    )
    print(
        f"threshold gap {ct}: touching called apart {np.mean(np.array(gaps[True]) >= ct):.3f}, "
        f"apart called touching {np.mean(np.array(gaps[False]) < ct):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
