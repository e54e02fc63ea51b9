"""Fit the ``classic`` VisionAgent's class models on the synthetic world's *train* split.

    python bench/fit_classic.py [--scenes 150] [--out vision_agents/classic_params.json]
    python bench/fit_classic.py --label_fraction 0.02 --l2 0.01 --relations random \
        --out vision_agents/classic_params_weak.json      # the weak start of configs/demo-tune.json

For every object the detector finds (matched to a ground-truth object at IoU >= 0.5, so
the measurements come from the same regions a run sees), the pixel measurements of
``vision_agents.classic_features.attribute_features`` are paired with the true value.
Per attribute a multinomial logistic regression (standardised features, L2 penalty,
fitted with L-BFGS) is saved as JSON: its softmax is the agent's calibrated p(value).
The demo and the benchmark use the *val* split, never seen here.

``--label_fraction f`` fits on a seeded random fraction f of the objects' labels only
(the standardisation still uses every object's measurements, which needs no labels):
a deliberately weak agent to fine-tune through programs (configs/demo-tune.json).
``--relations random`` writes small random relation weights instead of the geometric
default (none written), so the relation model too has to be learnt from answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local_datasets.synthetic.world import make_scene  # noqa: E402
from neptune_core.clevr_vocab import ATTRIBUTES, RELATIONS  # noqa: E402
from neptune_core.config import SyntheticConfig  # noqa: E402
from neptune_core.types import box_iou  # noqa: E402
from vision_agents.classic_detector import segment  # noqa: E402
from vision_agents.classic_features import attribute_features, measure  # noqa: E402

MODELLED = ("color", "shape", "material", "size")


def collect(scenes: int, split: str, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per attribute: feature matrix and class indices (into ATTRIBUTES[attr])."""
    xs: dict[str, list[np.ndarray]] = {a: [] for a in MODELLED}
    ys: dict[str, list[int]] = {a: [] for a in MODELLED}
    for k in range(scenes):
        scene, image = make_scene(SyntheticConfig(seed=seed), split, k)
        seg = segment(image)
        for o in scene["objects"]:
            best = max(seg.boxes, key=lambda b, g=o["bbox"]: box_iou(g, b), default=None)
            if best is None or box_iou(o["bbox"], best) < 0.5:
                continue
            f = measure(seg, best)
            for a in MODELLED:
                xs[a].append(attribute_features(f, a))
                ys[a].append(ATTRIBUTES[a].index(o[a]))
    return {a: (np.array(xs[a]), np.array(ys[a])) for a in MODELLED}


def fit_softmax(
    x: np.ndarray, y: np.ndarray, k: int, l2: float = 1e-4, standardise_on: np.ndarray | None = None
) -> dict[str, list]:
    """Multinomial logistic regression on standardised ``x``; returns JSON-ready parameters.

    The mean and standard deviation come from ``standardise_on`` when given (e.g. unlabelled data), else from ``x``.
    """
    ref = x if standardise_on is None else standardise_on
    mu, sd = ref.mean(axis=0), ref.std(axis=0) + 1e-6
    z = (x - mu) / sd
    n, d = z.shape
    onehot = np.eye(k)[y]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * k].reshape(d, k), theta[d * k :]
        s = z @ w + b
        s -= s.max(axis=1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        p = np.exp(logp)
        g = (p - onehot) / n
        val = -(onehot * logp).sum() / n + 0.5 * l2 * (w * w).sum()
        return val, np.concatenate([(z.T @ g + l2 * w).ravel(), g.sum(axis=0)])

    res = minimize(loss, np.zeros(d * k + k), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    w, b = res.x[: d * k].reshape(d, k), res.x[d * k :]
    return {"mean": mu.tolist(), "std": sd.tolist(), "weights": w.tolist(), "bias": b.tolist()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=150)
    p.add_argument("--split", default="train")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--label_fraction", type=float, default=1.0, help="fraction of the objects whose labels are used")
    p.add_argument("--l2", type=float, default=1e-4, help="L2 penalty of the logistic regressions")
    p.add_argument("--relations", choices=("geometric", "random"), default="geometric")
    p.add_argument("--label_seed", type=int, default=0, help="seed of the labelled subset and random relations")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "vision_agents/classic_params.json"))
    args = p.parse_args()
    if args.split == "val" and args.seed == 0:
        raise SystemExit("refusing to fit on the demo's split (val, seed 0)")
    if not 0 < args.label_fraction <= 1:
        raise SystemExit("--label_fraction must be in (0, 1]")
    data = collect(args.scenes, args.split, args.seed)
    rng = np.random.default_rng(args.label_seed)
    n_objects = len(next(iter(data.values()))[1])
    labelled = np.sort(rng.choice(n_objects, max(1, round(args.label_fraction * n_objects)), replace=False))
    params: dict[str, object] = {
        "fitted_on": {
            "split": args.split,
            "seed": args.seed,
            "scenes": args.scenes,
            "label_fraction": args.label_fraction,
            "labelled_objects": int(len(labelled)),
            "l2": args.l2,
            "relations": args.relations,
        }
    }
    for a, (x, y) in data.items():
        m = fit_softmax(x[labelled], y[labelled], len(ATTRIBUTES[a]), l2=args.l2, standardise_on=x)
        m["values"] = list(ATTRIBUTES[a])
        z = (x - np.array(m["mean"])) / np.array(m["std"])
        acc = float(((z @ np.array(m["weights"]) + np.array(m["bias"])).argmax(axis=1) == y).mean())
        print(f"{a:<10} labelled {len(labelled):4d} of {len(y):4d} objects, accuracy on all {100 * acc:5.1f}")
        params[a] = m
    if args.relations == "random":
        params["relations"] = {r: (0.5 * rng.standard_normal(2)).tolist() for r in RELATIONS}
    Path(args.out).write_text(json.dumps(params, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
