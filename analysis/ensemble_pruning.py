"""Ensemble pruning (VLAgent, Algorithm 2 of appendix E.2), over the rows of a pool run.

A pool of N members ran as one ensemble on m samples; every primitive call recorded each
member's output beside the fused one (``trace[*].info.members``, ``detection.members``).
Each call i gives member j an agreement I_ij with the fused pseudo-label:

- ``score`` (yes/no over boxes): the fraction of entries where the member's choice
  (p > 0.5) equals the fused choice; entries where the fused value is exactly 0.5 (a tie,
  no pseudo-label) are left out;
- ``query`` (open answers): 1 when the member's answer shares a word with the fused answer;
- detection (boxes): IoU of the union of the member's boxes with the union of the fused
  boxes (areas rasterised at pixel resolution).

s_j is the mean of I_ij over the calls. Selection: K-means on {s_j} of the remaining
members for each K in 2..|R|-1 (at most the number of distinct scores), K chosen by the
silhouette score (scikit-learn's KMeans and silhouette_score); the cluster holding the
highest score joins the selection; repeat until M members are chosen (the last cluster
may overshoot M, as in the paper). With fewer than three members left, each member is
its own cluster (the best one is added).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PruneRound:
    """One iteration: the remaining members, the silhouette value of each K, the K chosen, the cluster added."""

    remaining: list[str]
    silhouettes: dict[int, float]
    k: int
    added: list[str]
    clusters: list[list[str]] = field(default_factory=list)


def _flat(x: Any) -> list[float | None]:
    if isinstance(x, list):
        return [v for item in x for v in _flat(item)]
    return [None if x is None else float(x)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", str(text).lower()))


def union_area_iou(a: list[list[float]], b: list[list[float]]) -> float:
    """IoU of the union regions of two box lists (xyxy pixels), rasterised on the integer grid."""
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    allb = np.asarray(a + b, dtype=float)
    x0, y0 = np.floor(allb[:, :2].min(0)).astype(int)
    x1, y1 = np.ceil(allb[:, 2:].max(0)).astype(int)
    masks = []
    for boxes in (a, b):
        m = np.zeros((max(1, y1 - y0), max(1, x1 - x0)), dtype=bool)
        for bx1, by1, bx2, by2 in boxes:
            m[int(round(by1)) - y0 : int(round(by2)) - y0, int(round(bx1)) - x0 : int(round(bx2)) - x0] = True
        masks.append(m)
    union = (masks[0] | masks[1]).sum()
    return float((masks[0] & masks[1]).sum() / union) if union else 0.0


def agreement_scores(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per pool ("vlm", "detector"): member -> {"score": s_j, "calls": P_j} from the rows' recorded member outputs."""
    per: dict[str, dict[str, list[float]]] = {"vlm": defaultdict(list), "detector": defaultdict(list)}
    for row in rows:
        for call in row.get("trace") or []:
            members = (call.get("info") or {}).get("members")
            if not members:
                continue
            if call.get("primitive") == "query":
                fused = _words(call.get("answer", ""))
                for name, ans in members.items():
                    per["vlm"][name].append(float(bool(fused & _words(ans))))
                continue
            fused_p = _flat(call.get("probs", []))
            keep = [i for i, p in enumerate(fused_p) if p is not None and p != 0.5]  # None: a lazy pair not evaluated
            if not keep:
                continue
            for name, probs in members.items():
                mp = _flat(probs)
                agree = [(mp[i] > 0.5) == (fused_p[i] > 0.5) for i in keep if mp[i] is not None]
                if agree:
                    per["vlm"][name].append(sum(agree) / len(agree))
        det = row.get("detection") or {}
        if det.get("members") and row.get("boxes") is not None:
            for name, out in det["members"].items():
                per["detector"][name].append(union_area_iou(out["boxes"], row["boxes"]))
    return {
        pool: {n: {"score": round(float(np.mean(v)), 4), "calls": len(v)} for n, v in members.items()}
        for pool, members in per.items()
        if members
    }


def choose_k(values: np.ndarray, seed: int = 0) -> tuple[int, dict[int, float], np.ndarray]:
    """(K*, silhouette per K, labels of the K*-means clustering) for 1-d ``values``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = values.reshape(-1, 1)
    n = len(values)
    top = min(n - 1, len(np.unique(values)))
    silhouettes: dict[int, float] = {}
    fits: dict[int, np.ndarray] = {}
    for k in range(2, top + 1):
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
        silhouettes[k] = round(float(silhouette_score(x, labels)), 4)
        fits[k] = labels
    if not silhouettes:  # fewer than three members (or all scores equal): every member its own cluster
        return n, {}, np.arange(n)
    best = max(silhouettes, key=lambda k: (silhouettes[k], -k))
    return best, silhouettes, fits[best]


def prune(scores: dict[str, float], select: int, seed: int = 0) -> tuple[list[str], list[PruneRound]]:
    """Algorithm 2: the chosen members (in order of selection) and the record of each round."""
    if select < 1:
        raise ValueError(f"select must be >= 1, got {select}")
    remaining = list(scores)
    chosen: list[str] = []
    rounds: list[PruneRound] = []
    while len(chosen) < select and remaining:
        values = np.array([scores[n] for n in remaining], dtype=float)
        k, silhouettes, labels = choose_k(values, seed)
        clusters = [[n for n, lab in zip(remaining, labels, strict=True) if lab == c] for c in sorted(set(labels))]
        best = max(clusters, key=lambda c: max(scores[n] for n in c))
        best = sorted(best, key=lambda n: -scores[n])
        rounds.append(PruneRound(list(remaining), silhouettes, k, best, clusters))
        chosen += best
        remaining = [n for n in remaining if n not in best]
    return chosen, rounds
