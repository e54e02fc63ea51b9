"""The verify stage: output verifiers that run after a sample's program has been judged.

The run loop calls two methods of :class:`VerifyStage`: :meth:`VerifyStage.start` once
the image is loaded (verifiers may begin work that does not need the program, e.g. the
caption verifier captions the image and asks the LLM about it while the program is
generated and executed) and :meth:`VerifyStage.finish` after the judge. ``finish`` runs
each verifier of ``verify.verifiers`` in order; each one returns a :class:`Decision`
(a record for the row, and a replacement value or :data:`KEEP`), then the runner's
judge is applied to the final value. The row gets ``verify``: ``pred_before``,
``correct_before``, ``changed`` and one record per verifier. With
``ensemble.member_accuracy`` the stage also runs each ensemble member alone on the same
program and boxes (row field ``members``).

Add a verifier: subclass :class:`Verifier` in a module here (``verify(ctx, started)``,
optionally ``start`` and ``preflight``), give it a config section in
neptune_core/verify_config.py and a lazy line in :data:`VERIFIERS`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from neptune_core.registry import Registry
from neptune_core.types import Box, Sample
from probabilistic_tensor import ProbabilisticTensor
from vision_agents.base import VisionAgent

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from neptune_core.types import Program
    from runners.base import Runner

VERIFIERS: Registry = Registry("verify.verifiers")
VERIFIERS.register_lazy("box", "runners.verifiers.box:BoxVerifier")
VERIFIERS.register_lazy("caption", "runners.verifiers.caption:CaptionVerifier")

KEEP: Any = object()  # a Decision's value when the verifier keeps the current answer
REFEXP_DATASETS = ("refadv", "refgta", "clevr_refexps")


@dataclass
class VerifyContext:
    """What a verifier sees: the sample, its image and boxes, the current value and the VisionAgent."""

    sample: Sample
    image: Image.Image
    boxes: list[Box]
    value: Any
    agent: VisionAgent
    refexp: bool


@dataclass
class Decision:
    """A verifier's outcome: ``record`` goes on the row; ``value`` replaces the answer unless KEEP."""

    record: dict[str, Any]
    value: Any = KEEP

    @property
    def changed(self) -> bool:
        return self.value is not KEEP


class Verifier(ABC):
    """One output verifier (see the package docstring)."""

    name = "verifier"

    def preflight(self) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample; raise a UserError if the verifier cannot work."""

    def start(self, sample: Sample, image: Image.Image, pool: ThreadPoolExecutor, refexp: bool) -> Any:
        """Begin work that needs only the sample and image (return a handle, e.g. a Future); default none."""
        return None

    @abstractmethod
    def verify(self, ctx: VerifyContext, started: Any) -> Decision:
        """Check ``ctx.value``; ``started`` is what :meth:`start` returned for this sample."""


# ---- helpers shared by the verifiers -------------------------------------------------------
def box_distribution(value: Any, n: int) -> list[float] | None:
    """A box-choosing value's probabilities over the n boxes (normalised), or None if it has none."""
    if isinstance(value, ProbabilisticTensor) and len(value.vars) == 1 and value.kind == "prob" and len(value) == n:
        p = [max(0.0, float(v)) for v in value.data.detach().float().reshape(-1)]
        total = sum(p)
        return [v / total for v in p] if total > 0 else [1.0 / n] * n
    return None


def confidence(value: Any, n: int) -> float | None:
    """How sure the program is of its answer (see ``CaptionVerifyConfig``); None for values with no soft part."""
    dist = box_distribution(value, n)
    if dist is not None:
        return max(dist)
    if isinstance(value, ProbabilisticTensor) and len(value.vars) == 0:
        x = float(value.item())
        if value.kind == "number":
            return max(0.0, 1.0 - 2.0 * abs(x - round(x)))
        return max(x, 1.0 - x)
    return None


def is_refexp(sample: Sample, dataset: str) -> bool:
    """Whether a sample asks for a box (its task, its dataset, or a box as its gold answer)."""
    from runners.run_ref_exp_fast import is_box

    return sample.meta.get("task") == "refexp" or dataset in REFEXP_DATASETS or is_box(sample.answer)


@dataclass
class Pending:
    """One sample's started verifier work."""

    refexp: bool
    handles: dict[str, Any] = field(default_factory=dict)

    def cancel(self) -> None:
        for h in self.handles.values():
            if isinstance(h, Future):
                h.cancel()


class VerifyStage:
    """The verifiers of a run, plus the per-member evaluation of ensembles."""

    def __init__(
        self, verifiers: list[Verifier], *, member_accuracy: bool = False, dataset: str = "", workers: int = 4
    ) -> None:
        self.verifiers = verifiers
        self.member_accuracy = member_accuracy
        self.dataset = dataset
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") if verifiers else None

    @classmethod
    def from_config(cls, config: RunConfig) -> VerifyStage:
        from neptune_core.errors import ConfigError

        ens = config.ensemble
        if ens.member_accuracy and "ensemble" not in (config.vlm_model_name, config.od_model):
            raise ConfigError("ensemble.member_accuracy needs vlm_model_name or od_model 'ensemble'")
        verifiers = [VERIFIERS.get(name).from_config(config) for name in config.verify.verifiers]
        return cls(verifiers, member_accuracy=config.ensemble.member_accuracy, dataset=config.dataset)

    @property
    def active(self) -> bool:
        return bool(self.verifiers) or self.member_accuracy

    def preflight(self) -> None:
        for v in self.verifiers:
            v.preflight()

    def start(self, sample: Sample, image: Image.Image) -> Pending | None:
        if not self.active:
            return None
        pending = Pending(is_refexp(sample, self.dataset))
        if self._pool is not None:
            for v in self.verifiers:
                pending.handles[v.name] = v.start(sample, image, self._pool, pending.refexp)
        return pending

    def finish(
        self,
        runner: Runner,
        pending: Pending | None,
        sample: Sample,
        image: Image.Image,
        program: Program,
        value: Any,
        boxes: list[Box],
        row: dict[str, Any],
    ) -> None:
        """Run the member evaluation and the verifiers; update ``row`` (pred, correct, verify, members)."""
        if pending is None:
            return
        t0 = time.perf_counter()
        if self.member_accuracy:
            from runners.verifiers.members import evaluate_members

            row["members"] = evaluate_members(runner, sample, image, program, boxes, row.get("detection") or {})
            row["timings"]["members"] = _ms(t0)
        if not self.verifiers:
            return
        t1 = time.perf_counter()
        record: dict[str, Any] = {"pred_before": row["pred"], "correct_before": row["correct"]}
        refexp = pending.refexp or box_distribution(value, len(boxes)) is not None
        ctx = VerifyContext(sample, image, boxes, value, runner.agent, refexp)
        for v in self.verifiers:
            ts = time.perf_counter()
            decision = v.verify(ctx, pending.handles.get(v.name))
            decision.record["changed"] = decision.changed
            decision.record["ms"] = _ms(ts)
            record[v.name] = decision.record
            if decision.changed:
                ctx.value = decision.value
        pred, correct = runner.judge(sample, ctx.value, boxes)
        record["changed"] = pred != row["pred"]
        row["pred"], row["correct"] = pred, correct
        row["verify"] = record
        row["timings"]["verify"] = _ms(t1)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)
