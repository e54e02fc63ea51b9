"""CLI: write a synthetic dataset in the official CLEVR_v1.0 layout.

``python -m local_datasets.synthetic --out DIR --num_scenes N --questions_per_scene K --seed S --split val``
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from neptune_core.config import SyntheticConfig
from neptune_core.errors import UserError


def main(argv: list[str] | None = None) -> int:
    d = SyntheticConfig()
    p = argparse.ArgumentParser(prog="python -m local_datasets.synthetic", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory (gets images/, scenes/, questions/)")
    p.add_argument("--num_scenes", type=int, default=d.num_scenes)
    p.add_argument("--questions_per_scene", type=int, default=d.questions_per_scene)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--split", default="val")
    p.add_argument("--image_width", type=int, default=d.image_width)
    p.add_argument("--image_height", type=int, default=d.image_height)
    p.add_argument("--min_objects", type=int, default=d.min_objects)
    p.add_argument("--max_objects", type=int, default=d.max_objects)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    cfg = SyntheticConfig(
        num_scenes=args.num_scenes,
        questions_per_scene=args.questions_per_scene,
        seed=args.seed,
        image_width=args.image_width,
        image_height=args.image_height,
        min_objects=args.min_objects,
        max_objects=args.max_objects,
    )
    from local_datasets.synthetic.world import write_dataset

    t0 = time.perf_counter()
    try:
        info = write_dataset(args.out, cfg, split=args.split, progress=not args.quiet)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    info["seconds"] = round(dt, 2)
    info["images_per_s"] = round(info["scenes"] / dt, 1) if dt else None
    info["questions_per_s"] = round(info["questions"] / dt, 1) if dt else None
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
