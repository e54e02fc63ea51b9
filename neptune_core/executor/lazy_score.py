"""The lazy form of ``score(question, 2)``: a relation whose (subject, object) pairs are evaluated on demand.

Two halves, so that the same algebra runs in the sandbox process and in-process:

- the program's side (:func:`lazy_relation`) is a :class:`probabilistic_tensor.LazyTensor`
  whose fetches become follow-up requests ``score_pairs`` ``{"relation": k, "entries":
  [[i, j], ...], "dropped_mass": m}`` (neptune_core/primitives/score.py), forwarded like any
  primitive call (over the pipe from a sandbox process, directly in-process) and answered
  with just those values;
- the side holding the models answers them (:func:`fetch_entries`: the agent's
  ``score_tuples_with_info`` on exactly those box pairs) and keeps the relation's trace entry
  up to date (:class:`LazyEntry`).

The trace entry of a lazy relation has ``probs`` as an n x n grid with ``null`` where a pair
was never evaluated, ``lazy`` (``evaluated`` pairs of ``entries``, ``fetches``, and the
largest share of a distribution's mass a contraction skipped, ``dropped_mass``, under
``calls.mass_threshold``) and, when the agent reports any, ``info`` merged over the fetches
(:func:`merge_info`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from neptune_core.executor.guards import AgentError
from neptune_core.types import Box
from probabilistic_tensor import LazyPolicy, LazyStore, LazyTensor, Semantics
from vision_agents.base import VisionAgent

Entries = list[tuple[int, ...]]


def merge_info(acc: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Info of several fetches of one call: numbers add up, dicts merge alike, anything else keeps its first value.

    (Per-pair outputs, an ensemble's ``members``, are placed into the entry's grid by
    :class:`LazyEntry` before this merge.)
    """
    out = dict(acc)
    for k, v in new.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, bool) or isinstance(out[k], bool):
            continue
        elif isinstance(v, (int, float)) and isinstance(out[k], (int, float)):
            out[k] = round(out[k] + v, 6)
        elif isinstance(v, dict) and isinstance(out[k], dict):
            out[k] = merge_info(out[k], v)
    return out


class LazyEntry:
    """The trace entry of one lazy relation, updated as its pairs are fetched."""

    def __init__(self, entry: dict[str, Any], n: int) -> None:
        self.entry = entry
        self.n = n
        entry["probs"] = [[None] * n for _ in range(n)]
        entry["lazy"] = {"evaluated": 0, "entries": n * n, "fetches": 0, "dropped_mass": 0.0}

    def add(self, entries: Entries, values: torch.Tensor, info: dict[str, Any], dropped_mass: float = 0.0) -> None:
        """Record fetched ``values`` (one per entry), the fetch's ``info`` and the mass skipped so far."""
        probs = self.entry["probs"]
        for (i, j), v in zip(entries, values.detach().float().cpu().tolist(), strict=True):
            probs[i][j] = round(float(v), 4)
        info = dict(info)
        members = info.pop("members", None)
        merged = merge_info(self.entry.get("info", {}), info)
        if isinstance(members, dict):  # per-pair member outputs, aligned with ``entries``
            grid = merged.setdefault("members", {})
            for name, vals in members.items():
                cells = grid.setdefault(name, [[None] * self.n for _ in range(self.n)])
                for (i, j), v in zip(entries, vals, strict=True):
                    cells[i][j] = v
        if merged:
            self.entry["info"] = merged
        stats = self.entry["lazy"]
        stats["evaluated"] = sum(v is not None for row in probs for v in row)
        stats["fetches"] += 1
        stats["dropped_mass"] = round(max(stats["dropped_mass"], float(dropped_mass)), 6)


def fetch_entries(
    agent: VisionAgent, image: Image.Image, boxes: list[Box], question: str, entries: Entries
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The models' side: p(yes) of ``question`` for each (subject, object) index pair, and the agent's info."""
    tuples = [(boxes[i], boxes[j]) for i, j in entries]
    try:
        out, infos = agent.score_tuples_with_info(image, tuples, [question], 2)
    except Exception as e:
        raise AgentError(
            f"vision agent '{agent.name}' failed in score({question[:200]!r}, 2): {e.__class__.__name__}: "
            f"{str(e)[:500]}"
        ) from e
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, len(entries)) or len(infos) != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else out.__class__.__name__
        raise AgentError(f"vision agent '{agent.name}' returned {got} for {len(entries)} box pairs; expected (1, k)")
    return out[0], infos[0]


def lazy_relation(
    n: int, fetch: Callable[[Entries, float], torch.Tensor], semantics: Semantics, policy: LazyPolicy
) -> LazyTensor:
    """The program's side: the n x n relation of one score call.

    ``fetch(entries, dropped_mass) -> values`` answers each fetch; ``dropped_mass`` is the
    largest share of mass a contraction has skipped so far (noted before the fetch it leads to).
    """
    stores: list[weakref.ref[LazyStore]] = []  # weak: the store holds ``get``; no reference cycle

    def get(entries: Entries) -> torch.Tensor:
        store = stores[0]()  # alive: only the store's own fetch calls this
        if store is None:
            raise RuntimeError("a lazy relation's fetch was called after its store was freed")
        return fetch(entries, store.dropped_mass)

    relation = LazyTensor.relation(n, get, semantics, policy)
    stores.append(weakref.ref(relation.store))
    return relation
