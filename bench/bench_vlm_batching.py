"""Batched vs one-by-one yes/no scoring on a tiny random VLM (CPU): forward passes, processor runs, wall time.

    python bench/bench_vlm_batching.py [--family qwen2_vl] [--boxes 16] [--repeats 5] [--rounds 3]

Builds the tiny model of ``tests/test_vlm_tiny_models.py`` (nothing downloaded) and scores
one arity-1 question over ``--boxes`` boxes four ways, side by side in each round:

- batched, tensor marks: ``batch_size`` 16, the processor runs once and each box's mark is
  drawn into the pixel tensor (vision_agents/tensor_marking.py; the default);
- batched, PIL marks: ``batch_size`` 16, one PIL-marked copy of the image per box, each through the processor;
- one-by-one, PIL marks: ``batch_size`` 1, a marked copy, the processor and a forward pass per box
  (what one-by-one scoring costs);
- one-by-one, tensor marks: ``batch_size`` 1, the processor once, a forward pass per box.

Each line is the best of ``--repeats`` calls; ``--rounds`` rounds give the range of each
figure (the machine is shared). The speed-up is one-by-one (PIL marks) over batched
(tensor marks); the probabilities of all four are checked to agree.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = {  # label -> (batch_size, tensor_marking)
    "batched, tensor marks": (16, True),
    "batched, PIL marks": (16, False),
    "one-by-one, PIL marks": (1, False),
    "one-by-one, tensor marks": (1, True),
}


def main() -> None:
    import torch

    from tests.test_vlm_tiny_models import FAMILIES, marked_scene
    from vision_agents.hf_vlm import HFVisionAgent

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="qwen2_vl", choices=sorted(FAMILIES))
    ap.add_argument("--boxes", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    torch.manual_seed(0)
    model, proc = FAMILIES[args.family]()
    image = marked_scene(0, size=(320, 240))
    g = torch.Generator().manual_seed(1)
    boxes = []
    for _ in range(args.boxes):
        x, y = (torch.rand(2, generator=g) * torch.tensor([260.0, 180.0])).tolist()
        boxes.append([x, y, x + 50, y + 50])
    question = ["Is the object in the red box a cube?"]
    agents = {
        label: HFVisionAgent("tiny", device="cpu", batch_size=bs, model=model, processor=proc, tensor_marking=tm)
        for label, (bs, tm) in MODES.items()
    }
    for agent in agents.values():
        agent.score(image, boxes[:2], question, 1)  # warm-up (and the marker's one-off measurement)
    times: dict[str, list[float]] = {label: [] for label in MODES}
    probs: dict[str, torch.Tensor] = {}
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(args.rounds):  # the four ways interleaved, so a busy moment hits them alike
        best = dict.fromkeys(MODES, float("inf"))
        for _ in range(args.repeats):
            for label, agent in agents.items():
                agent.forward_passes = agent.processor_runs = 0
                t0 = time.perf_counter()
                probs[label] = agent.score(image, boxes, question, 1)
                best[label] = min(best[label], time.perf_counter() - t0)
                counts[label] = (agent.forward_passes, agent.processor_runs)
        for label in MODES:
            times[label].append(best[label])
    print(f"family {args.family}, {args.boxes} boxes, torch threads {torch.get_num_threads()}, "
          f"best of {args.repeats} per round, {args.rounds} rounds")  # fmt: skip
    for label in MODES:
        ts = sorted(t * 1000 for t in times[label])
        fwd, prep = counts[label]
        print(f"  {label:>25}: {fwd:3d} forward passes, {prep:3d} processor runs, "
              f"{ts[0]:8.1f} .. {ts[-1]:8.1f} ms")  # fmt: skip
    ratios = sorted(o / b for o, b in zip(times["one-by-one, PIL marks"], times["batched, tensor marks"], strict=True))
    model_only = sorted(
        o / b for o, b in zip(times["one-by-one, tensor marks"], times["batched, tensor marks"], strict=True)
    )
    marks = sorted(p / b for p, b in zip(times["batched, PIL marks"], times["batched, tensor marks"], strict=True))
    ref = probs["batched, PIL marks"]
    diff = max(float((p - ref).abs().max()) for p in probs.values())
    print(f"speed-up, one-by-one (PIL marks) over batched (tensor marks): {ratios[0]:.2f}x .. {ratios[-1]:.2f}x")
    print(f"  batching alone (both with tensor marks): {model_only[0]:.2f}x .. {model_only[-1]:.2f}x")
    print(f"  tensor marks alone (both batched): {marks[0]:.2f}x .. {marks[-1]:.2f}x")
    print(f"  max |p(yes) difference| between the four ways: {diff:.2e}")


if __name__ == "__main__":
    main()
