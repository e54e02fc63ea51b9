"""Config sections of ensembles (``ensemble``) and output verifiers (``verify``).

They are fields of :class:`neptune_core.config.RunConfig`, built and validated like the
rest of it (unknown keys rejected with a hint). Each member of an ensemble is a
:class:`EnsembleMember`: the backend it runs (a ``vlm_model_name`` or an ``od_model``),
its weight in the fusion, the controlled noise that makes offline members err
independently, and per-member overrides of any run-config field (``options``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCORE_FUSIONS = ("mean", "weighted_mean")
QUERY_FUSIONS = ("vote",)
BOX_FUSIONS = ("wbf",)


@dataclass
class EnsembleMember:
    """One member of an ensemble.

    ``name``: shown in traces and summaries (unique within the ensemble). ``model``: the
    backend's registry name (or hub id). ``weight``: its weight in weighted fusion.
    ``flip_rate``: VisionAgent members only; each yes/no probability p is replaced by 1 - p
    with this probability, and each open answer by another value of the asked attribute,
    independently per (sample, question, box) and deterministically from ``seed``.
    ``jitter`` / ``drop_rate``: detector members only; each box corner moves by a normal
    offset of ``jitter`` times the box size, and each box is dropped with ``drop_rate``.
    ``options``: run-config fields overridden for this member only (e.g.
    ``{"vlm_base_url": "http://host:8001/v1"}``).
    """

    name: str = ""
    model: str = ""
    weight: float = 1.0
    seed: int = 0
    flip_rate: float = 0.0
    jitter: float = 0.0
    drop_rate: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.model:
            raise ValueError(f"every ensemble member needs a 'name' and a 'model', got {self.name!r} / {self.model!r}")
        if self.weight <= 0:
            raise ValueError(f"ensemble member '{self.name}': weight must be > 0, got {self.weight}")
        for key in ("flip_rate", "drop_rate"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"ensemble member '{self.name}': {key} must be in [0, 1], got {getattr(self, key)}")
        if self.jitter < 0:
            raise ValueError(f"ensemble member '{self.name}': jitter must be >= 0, got {self.jitter}")


@dataclass
class EnsembleConfig:
    """``vlm_model_name: "ensemble"`` fuses ``vlm_members``; ``od_model: "ensemble"`` fuses ``detector_members``.

    ``score_fusion``: "mean" (plain mean of p(yes)) or "weighted_mean" (by member weight).
    ``query_fusion``: "vote" (weighted vote over normalised answers; ties go to the earliest member).
    ``box_fusion``: "wbf" (weighted boxes fusion, per label) with ``wbf_iou`` and ``wbf_skip_score``.
    ``member_accuracy``: also run each member alone on the sample's program and boxes
    (recorded on the row as ``members``; summary.json gets ``member_accuracy``).
    """

    vlm_members: list[EnsembleMember] = field(default_factory=list)
    detector_members: list[EnsembleMember] = field(default_factory=list)
    score_fusion: str = "mean"
    query_fusion: str = "vote"
    box_fusion: str = "wbf"
    wbf_iou: float = 0.55
    wbf_skip_score: float = 0.0
    member_accuracy: bool = False

    def __post_init__(self) -> None:
        for key, known in (
            ("score_fusion", SCORE_FUSIONS),
            ("query_fusion", QUERY_FUSIONS),
            ("box_fusion", BOX_FUSIONS),
        ):
            if getattr(self, key) not in known:
                raise ValueError(f"ensemble.{key} must be one of {', '.join(known)}, got {getattr(self, key)!r}")
        names = [m.name for m in self.vlm_members + self.detector_members]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"ensemble member names must be unique; repeated: {', '.join(dup)}")
        if self.score_fusion == "mean" and len({m.weight for m in self.vlm_members}) > 1:
            raise ValueError("ensemble members have different weights but score_fusion is 'mean'; use 'weighted_mean'")


@dataclass
class CaptionVerifyConfig:
    """VLAgent's caption verifier.

    Triggered when the program's confidence is below ``confidence_threshold`` (1.0: every
    answer is verified; 0-d
    probability p: max(p, 1 - p); soft count: 1 - 2 * distance to the nearest integer;
    distribution over boxes: its top probability). ``when_no_confidence``: "verify" or
    "skip" for answers with no soft value (a string from ``query``).
    ``captioner``: a name of the ``captioner`` registry; ``captioner_model``: its model
    (hub id / directory, or the served model name; "" = the backend's default);
    ``captioner_base_url``: for "openai_vlm". ``llm_provider`` / ``llm_model`` /
    ``llm_base_url``: the LLM that reads captions ("" = the code generator's). ``concurrent``:
    caption the image and ask the LLM while the program is generated and run (every sample
    is captioned); false: only low-confidence samples, after execution.
    Referring expressions: ``max_candidates`` boxes (by the program's scores) are captioned;
    the prediction is kept when it overlaps the best-matching candidate with IoU >=
    ``overlap_iou``; otherwise it moves only when the LLM rates the candidate at least
    ``min_score_gap`` points (0-10 scale) above the prediction.
    """

    confidence_threshold: float = 0.8
    when_no_confidence: str = "verify"
    captioner: str = "florence2"
    captioner_model: str = ""
    captioner_base_url: str = ""
    captioner_max_new_tokens: int = 128
    llm_provider: str = ""
    llm_model: str = ""
    llm_base_url: str = ""
    llm_timeout_s: float = 60.0
    concurrent: bool = True
    max_candidates: int = 5
    overlap_iou: float = 0.5
    min_score_gap: float = 3.0

    def __post_init__(self) -> None:
        if self.when_no_confidence not in ("verify", "skip"):
            raise ValueError(
                f"verify.caption.when_no_confidence must be 'verify' or 'skip', got {self.when_no_confidence!r}"
            )
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError(f"verify.caption.confidence_threshold must be in [0, 1], got {self.confidence_threshold}")
        if self.max_candidates < 1:
            raise ValueError(f"verify.caption.max_candidates must be >= 1, got {self.max_candidates}")


@dataclass
class BoxVerifyConfig:
    """NePTune's box verification for referring expressions.

    The VLM is asked ``question_template`` (``{expression}`` is the expression) about the
    chosen box; p(yes) >= ``accept_threshold`` accepts it, otherwise the next box by the
    program's scores is asked, up to ``max_candidates`` boxes. When none is accepted the
    program's own choice stands (recorded as such).
    """

    accept_threshold: float = 0.5
    max_candidates: int = 3
    question_template: str = "Is the object in the red box {expression}?"

    def __post_init__(self) -> None:
        if self.max_candidates < 1:
            raise ValueError(f"verify.box.max_candidates must be >= 1, got {self.max_candidates}")
        if "{expression}" not in self.question_template:
            raise ValueError("verify.box.question_template must contain '{expression}'")


VERIFIER_NAMES = ("box", "caption")


@dataclass
class VerifyConfig:
    """``verifiers``: which run after execution, in order ("box", "caption"); empty = none."""

    verifiers: list[str] = field(default_factory=list)
    caption: CaptionVerifyConfig = field(default_factory=CaptionVerifyConfig)
    box: BoxVerifyConfig = field(default_factory=BoxVerifyConfig)

    def __post_init__(self) -> None:
        unknown = [v for v in self.verifiers if v not in VERIFIER_NAMES]
        if unknown:
            raise ValueError(f"unknown verifier(s) {', '.join(unknown)} in verify.verifiers; known: box, caption")
