"""Benchmark of the classic detector and VisionAgent on the synthetic CLEVR world.

    python bench/bench_classic.py [--scenes 40] [--split val]

Detector: recall and precision against the scenes' ground-truth boxes at IoU 0.5
(greedy one-to-one matching). Agent: accuracy per attribute (argmax answer on the
ground-truth box) and of the four relations (p > 0.5 vs the scene's relationships).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local_datasets.synthetic.world import make_scene  # noqa: E402
from neptune_core.clevr_vocab import relation_question  # noqa: E402
from neptune_core.config import SyntheticConfig  # noqa: E402
from neptune_core.types import box_iou  # noqa: E402
from vision_agents.classic_agent import ClassicAgent  # noqa: E402
from vision_agents.classic_detector import segment  # noqa: E402


def match(gt: list[list[float]], pred: list[list[float]], thr: float = 0.5) -> int:
    """Greedy one-to-one matches at IoU >= thr."""
    pairs = sorted(((box_iou(g, p), i, j) for i, g in enumerate(gt) for j, p in enumerate(pred)), reverse=True)
    used_g, used_p, n = set(), set(), 0
    for v, i, j in pairs:
        if v < thr:
            break
        if i not in used_g and j not in used_p:
            used_g.add(i)
            used_p.add(j)
            n += 1
    return n


def run(scenes: int, split: str) -> dict[str, float]:
    cfg = SyntheticConfig()
    agent = ClassicAgent()
    tp = n_gt = n_pred = 0
    right: dict[str, int] = {}
    total: dict[str, int] = {}
    t_det = 0.0
    for k in range(scenes):
        scene, image = make_scene(cfg, split, k)
        gt = [o["bbox"] for o in scene["objects"]]
        t0 = time.perf_counter()
        boxes = segment(image).boxes
        t_det += time.perf_counter() - t0
        tp += match(gt, boxes)
        n_gt += len(gt)
        n_pred += len(boxes)
        for o, box in zip(scene["objects"], gt, strict=True):
            for attr in ("color", "shape", "size", "material"):
                total[attr] = total.get(attr, 0) + 1
                right[attr] = right.get(attr, 0) + int(agent.answer(image, box, f"What {attr} is it?") == o[attr])
        for rel in ("left", "right", "front", "behind"):
            p = agent.score(image, gt, [relation_question(rel)], 2)[0]
            for i in range(len(gt)):
                for j in range(len(gt)):
                    if i != j:
                        truth = i in scene["relationships"][rel][j]  # i is rel of j
                        total["relations"] = total.get("relations", 0) + 1
                        right["relations"] = right.get("relations", 0) + int((float(p[i, j]) > 0.5) == truth)
    out = {
        "detector_recall": 100 * tp / n_gt,
        "detector_precision": 100 * tp / max(1, n_pred),
        "detector_ms_per_image": 1000 * t_det / scenes,
    }
    out.update({f"agent_{a}": 100 * right[a] / total[a] for a in total})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=40)
    p.add_argument("--split", default="val")
    args = p.parse_args()
    for k, v in run(args.scenes, args.split).items():
        print(f"{k:<24} {v:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
