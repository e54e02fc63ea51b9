"""Ensembles of VisionAgents (``vlm_model_name: "ensemble"``), and controlled member noise.

:class:`EnsembleAgent` is itself a VisionAgent: the loop and the programs do not know
whether they talk to one model or five. ``score`` fuses the members' p(yes) by a mean or
a weighted mean; ``query`` takes a weighted vote over the members' normalised answers
(ties go to the earliest member in the config). Every call's member outputs land on the
trace entry (``info["members"]``), through the ``score_with_info`` / ``answer_with_info``
seam. Members are declared in the config's ``ensemble.vlm_members``
(:class:`neptune_core.verify_config.EnsembleMember`) and each is memoised per sample, so
running a member alone on the same program afterwards (``ensemble.member_accuracy``)
reuses what the ensemble already asked it.

:class:`FlipNoiseAgent` wraps any VisionAgent with independent, reproducible errors:
each probability is flipped (p -> 1 - p) and each open answer replaced by another value
of the asked attribute with probability ``rate``, decided by a hash of (seed, image,
question, boxes), so the same member errs the same way on every run and on every question
about the same image (as a model would: the per-image memo relies on it), and members with
different seeds err independently. It turns the offline scene oracle into members with
known error rates (the ensemble demo and the pruning demo).

Add a fusion rule: one function in :data:`SCORE_FUSIONS` (``(stacked, weights) -> fused``)
and its name in ``neptune_core.verify_config.SCORE_FUSIONS``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from neptune_core.clevr_vocab import ATTRIBUTES, find_attribute
from neptune_core.errors import ConfigError
from neptune_core.types import Box, Sample
from vision_agents.base import BoxTuple, MemoizedAgent, VisionAgent, score_tuples
from vision_agents.memo import sample_image_key

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from neptune_core.verify_config import EnsembleMember
    from vision_agents.object_marking import ObjectMarker


def unit_hash(*parts: Any) -> float:
    """A number in [0, 1) determined by ``parts`` (stable across runs and processes)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def box_key(box: Box | None) -> tuple[float, ...] | None:
    return None if box is None else tuple(round(float(v), 2) for v in box)


class FlipNoiseAgent(VisionAgent):
    """``inner`` with independent flip noise at ``rate`` (see the module docstring)."""

    def __init__(self, inner: VisionAgent, rate: float, seed: int) -> None:
        self.inner = inner
        self.rate = rate
        self.seed = seed
        self.name = inner.name
        self._sample_id: str | None = None  # the image the noise is keyed by (sample_image_key)

    @property
    def shares_across_samples(self) -> bool:  # the noise is keyed by the image
        return self.inner.shares_across_samples

    def begin_sample(self, sample: Sample) -> None:
        self._sample_id = sample_image_key(sample)
        self.inner.begin_sample(sample)

    def preflight(self) -> None:
        self.inner.preflight()

    def use_marker(self, marker: ObjectMarker) -> None:
        self.inner.use_marker(marker)

    def _sample(self) -> str:
        if self._sample_id is None:
            raise RuntimeError("FlipNoiseAgent.begin_sample(sample) must be called before score/answer")
        return self._sample_id

    def flip_mask(self, boxes: list[Box], question: str, arity: int) -> torch.Tensor:
        """True where the entry of ``score(question)`` over ``boxes`` is flipped."""
        keys = [box_key(b) for b in boxes]
        sid = self._sample()
        if arity == 0:
            return torch.tensor(unit_hash(self.seed, sid, question, 0) < self.rate)
        if arity == 1:
            return torch.tensor([unit_hash(self.seed, sid, question, 1, k) < self.rate for k in keys])
        return torch.tensor([[unit_hash(self.seed, sid, question, 2, a, b) < self.rate for b in keys] for a in keys])

    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        out, infos = self.inner.score_with_info(image, boxes, questions, arity)
        rows, new_infos = [], []
        for q, row, info in zip(questions, out, infos, strict=True):
            mask = self.flip_mask(boxes, q, arity)
            rows.append(torch.where(mask, 1.0 - row, row))
            flipped = int(mask.sum())
            new_infos.append({**info, "flipped": flipped} if flipped else info)
        return torch.stack(rows), new_infos

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[BoxTuple], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        out, infos = score_tuples(self.inner, image, tuples, questions, arity)
        sid = self._sample()
        keys = [tuple(box_key(b) for b in t) for t in tuples]
        rows, new_infos = [], []
        for q, row, info in zip(questions, out, infos, strict=True):
            mask = torch.tensor([unit_hash(self.seed, sid, q, arity, *k) < self.rate for k in keys], dtype=torch.bool)
            rows.append(torch.where(mask, 1.0 - row, row))
            flipped = int(mask.sum())
            new_infos.append({**info, "flipped": flipped} if flipped else info)
        return torch.stack(rows), new_infos

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        return self.score_with_info(image, boxes, questions, arity)[0]

    def answer_with_info(self, image: Image.Image, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        answer, info = self.inner.answer_with_info(image, box, question)
        sid = self._sample()
        if unit_hash(self.seed, sid, question, "answer", box_key(box)) >= self.rate:
            return answer, info
        attribute = find_attribute(question.lower())
        others = [v for v in ATTRIBUTES.get(attribute or "", ()) if v != answer]
        if not others:
            return answer, {**info, "noise": "no other value of a known attribute: answer left unchanged"}
        pick = others[int(unit_hash(self.seed, sid, question, "value", box_key(box)) * len(others))]
        return pick, {**info, "flipped": 1, "unflipped": answer}

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        return self.answer_with_info(image, box, question)[0]


def _mean(stacked: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return stacked.mean(0)


def _weighted_mean(stacked: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    w = weights.to(stacked.dtype).reshape(-1, *([1] * (stacked.dim() - 1)))
    return (stacked * w).sum(0) / w.sum()


SCORE_FUSIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": _mean,
    "weighted_mean": _weighted_mean,
}


def _rounded(t: torch.Tensor) -> Any:
    values = t.detach().float().cpu()
    return [round(float(v), 4) for v in values.reshape(-1)] if values.dim() else round(float(values), 4)


def vote(answers: dict[str, str], weights: dict[str, float]) -> tuple[str, dict[str, float]]:
    """The weighted-vote winner over normalised answers (ties: the earliest member's answer) and the tally."""
    tally: dict[str, float] = {}
    for name, ans in answers.items():
        key = ans.strip().lower()
        tally[key] = tally.get(key, 0.0) + weights[name]
    best = max(tally.values())
    winner = next(a.strip().lower() for a in answers.values() if tally[a.strip().lower()] == best)
    return winner, tally


def build_member_agent(config: RunConfig, member: EnsembleMember) -> VisionAgent:
    """The VisionAgent of one ``ensemble.vlm_members`` entry (its options applied, noise wrapped)."""
    from neptune_core.config import replace_config
    from vision_agents import build_vision_agent

    if member.model == "ensemble":
        raise ConfigError(f"ensemble member '{member.name}' is itself an ensemble; name a backend as its model")
    if member.jitter or member.drop_rate:
        raise ConfigError(f"ensemble member '{member.name}': jitter/drop_rate apply to detector members only")
    mcfg = replace_config(config, {**member.options, "vlm_model_name": member.model})
    agent = build_vision_agent(mcfg)
    if member.flip_rate > 0:
        agent = FlipNoiseAgent(agent, member.flip_rate, member.seed)
    agent.name = member.name
    return agent


class EnsembleAgent(VisionAgent):
    """Fused members (see the module docstring). ``members``: name -> memoised member agent."""

    name = "ensemble"
    memoises_itself = True  # each member is a MemoizedAgent: members' calls are memoised and counted there

    def __init__(
        self,
        members: list[tuple[str, VisionAgent, float]],
        *,
        score_fusion: str = "mean",
        query_fusion: str = "vote",
        memo_images: int = 8,
    ) -> None:
        if not members:
            raise ConfigError("vlm_model_name 'ensemble' needs members: list them in ensemble.vlm_members")
        if score_fusion not in SCORE_FUSIONS:
            raise ConfigError(f"unknown score fusion '{score_fusion}'; known: {', '.join(sorted(SCORE_FUSIONS))}")
        if query_fusion != "vote":
            raise ConfigError(f"unknown query fusion '{query_fusion}'; known: vote")
        self.members: dict[str, MemoizedAgent] = {}
        self.weights: dict[str, float] = {}
        for name, agent, weight in members:
            memo = MemoizedAgent(agent, images=memo_images)
            memo.name = name
            self.members[name] = memo
            self.weights[name] = float(weight)
        self.score_fusion = score_fusion
        self._fuse = SCORE_FUSIONS[score_fusion]

    @classmethod
    def from_config(cls, config: RunConfig) -> EnsembleAgent:
        ens = config.ensemble
        members = [(m.name, build_member_agent(config, m), m.weight) for m in ens.vlm_members]
        return cls(
            members, score_fusion=ens.score_fusion, query_fusion=ens.query_fusion, memo_images=config.calls.memo_images
        )

    @property
    def shares_across_samples(self) -> bool:
        return all(m.shares_across_samples for m in self.members.values())

    def begin_sample(self, sample: Sample) -> None:
        for member in self.members.values():
            member.begin_sample(sample)

    def preflight(self) -> None:
        for member in self.members.values():
            member.preflight()

    def use_marker(self, marker: ObjectMarker) -> None:
        for member in self.members.values():
            member.use_marker(marker)

    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        outs: dict[str, torch.Tensor] = {}
        member_infos: dict[str, list[dict[str, Any]]] = {}
        member_ms: dict[str, float] = {}
        for name, member in self.members.items():
            t0 = time.perf_counter()
            outs[name], member_infos[name] = member.score_with_info(image, boxes, questions, arity)
            member_ms[name] = round((time.perf_counter() - t0) * 1000.0, 3)
        stacked = torch.stack(list(outs.values()))
        weights = torch.tensor([self.weights[n] for n in outs])
        fused = self._fuse(stacked, weights)
        infos = []
        for qi in range(len(questions)):
            info: dict[str, Any] = {
                "fusion": self.score_fusion,
                "members": {n: _rounded(o[qi]) for n, o in outs.items()},
                "member_ms": member_ms,  # time of each member's call (shared by the call's questions)
            }
            extra = {n: inf[qi] for n, inf in member_infos.items() if inf[qi]}
            if extra:
                info["member_info"] = extra
            infos.append(info)
        return fused, infos

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[BoxTuple], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Fused p(yes) for each box tuple; ``info["members"][name]`` holds one value per tuple."""
        outs: dict[str, torch.Tensor] = {}
        member_infos: dict[str, list[dict[str, Any]]] = {}
        member_ms: dict[str, float] = {}
        for name, member in self.members.items():
            t0 = time.perf_counter()
            outs[name], member_infos[name] = member.score_tuples_with_info(image, tuples, questions, arity)
            member_ms[name] = round((time.perf_counter() - t0) * 1000.0, 3)
        fused = self._fuse(torch.stack(list(outs.values())), torch.tensor([self.weights[n] for n in outs]))
        infos = []
        for qi in range(len(questions)):
            info: dict[str, Any] = {
                "fusion": self.score_fusion,
                "members": {n: _rounded(o[qi]) for n, o in outs.items()},
                "member_ms": member_ms,
            }
            extra = {n: inf[qi] for n, inf in member_infos.items() if inf[qi]}
            if extra:
                info["member_info"] = extra
            infos.append(info)
        return fused, infos

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        return self.score_with_info(image, boxes, questions, arity)[0]

    def answer_with_info(self, image: Image.Image, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        answers: dict[str, str] = {}
        extra: dict[str, dict[str, Any]] = {}
        member_ms: dict[str, float] = {}
        for name, member in self.members.items():
            t0 = time.perf_counter()
            answers[name], inf = member.answer_with_info(image, box, question)
            member_ms[name] = round((time.perf_counter() - t0) * 1000.0, 3)
            if inf:
                extra[name] = inf
        winner, tally = vote(answers, self.weights)
        info: dict[str, Any] = {"fusion": "vote", "members": answers, "votes": tally, "member_ms": member_ms}
        if extra:
            info["member_info"] = extra
        return winner, info

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        return self.answer_with_info(image, box, question)[0]
