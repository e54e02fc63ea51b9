"""Batched vs one-by-one yes/no scoring on a tiny random VLM (CPU): forward passes and wall time.

    python bench/bench_vlm_batching.py [--family qwen2_vl] [--boxes 16] [--repeats 3]

Builds the tiny model of ``tests/test_vlm_tiny_models.py`` (nothing downloaded), scores
one arity-1 question over ``--boxes`` boxes with batch size 16 and with batch size 1,
checks that both give the same probabilities, and prints the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from tests.test_vlm_tiny_models import FAMILIES, marked_scene
    from vision_agents.hf_vlm import HFVisionAgent

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="qwen2_vl", choices=sorted(FAMILIES))
    ap.add_argument("--boxes", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, proc = FAMILIES[args.family]()
    image = marked_scene(0, size=(320, 240))
    g = torch.Generator().manual_seed(1)
    boxes = []
    for _ in range(args.boxes):
        x, y = (torch.rand(2, generator=g) * torch.tensor([260.0, 180.0])).tolist()
        boxes.append([x, y, x + 50, y + 50])
    question = ["Is the object in the red box a cube?"]
    results = {}
    for label, bs in (("batched (16)", 16), ("one-by-one", 1)):
        agent = HFVisionAgent("tiny", device="cpu", batch_size=bs, model=model, processor=proc)
        agent.score(image, boxes[:2], question, 1)  # warm-up
        best, probs, passes = float("inf"), None, 0
        for _ in range(args.repeats):
            agent.forward_passes = 0
            t0 = time.perf_counter()
            probs = agent.score(image, boxes, question, 1)
            best = min(best, time.perf_counter() - t0)
            passes = agent.forward_passes
        results[label] = (best, passes, probs)
        print(f"{label:>14}: {passes:3d} forward passes, {best * 1000:8.1f} ms (best of {args.repeats})")
    # where the batched time goes: marking + the processor run once per item in both modes
    from vision_agents.prompting import score_items

    items = score_items(image, boxes, question, 1)
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        agent._inputs([im for im, _ in items], [agent._prompt(q) for _, q in items])
    prep = (time.perf_counter() - t0) / args.repeats
    print(f"  preprocessing alone (processor on {len(items)} marked images, same in both modes): {prep * 1000:.1f} ms")
    (tb, _, pb), (t1, _, p1) = results["batched (16)"], results["one-by-one"]
    diff = (pb - p1).abs().max().item()
    print(
        f"family {args.family}, {args.boxes} boxes, torch threads {torch.get_num_threads()}: "
        f"speed-up {t1 / tb:.2f}x, model part only {(t1 - prep) / max(tb - prep, 1e-9):.2f}x, "
        f"max |batched - single| = {diff:.2e}"
    )


if __name__ == "__main__":
    main()
