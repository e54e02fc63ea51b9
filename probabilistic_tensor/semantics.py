"""The configurable semantics of the soft logic (NePTune paper, Table 2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Semantics:
    """How the algebra's operations are computed.

    tnorm: "minmax" (and = min, or = max; the paper's default) or "product"
        (and = a*b, or = a + b - a*b).
    quantifier: "minmax" (exists = max, forall = min) or "product"
        (exists = 1 - prod(1 - a), forall = prod(a)).
    tau, gamma: the temperature and margin of soft number comparisons:
        s1 == s2 -> sigmoid(tau * (gamma - |s1 - s2|) / gamma),
        s1 > s2  -> sigmoid(tau * (s1 - s2 - 1 + gamma)).
    iota: "minmax" (the default: (p - min) / (max - min), renormalised to sum 1; exact
        with perfect perception, the form the released examples use at inference) or
        "softmax" (the paper's Table 2: softmax(logit(p) / iota_temperature) over the
        variable, as LEFT takes it over logits; a one-hot input gives a one-hot output,
        and a lower temperature sharpens it).
    iota_temperature: softmax temperature for iota (unused by "minmax").
    threshold_sharpness: k in p > t -> sigmoid(k * (p - t)) when a probability (not a
        count) is compared with a threshold or another probability, so ``score(...) > 0.5``
        means what a program writer expects while staying differentiable.
    """

    tnorm: str = "minmax"
    quantifier: str = "minmax"
    tau: float = 0.25
    gamma: float = 0.25
    iota: str = "minmax"
    iota_temperature: float = 1.0
    threshold_sharpness: float = 50.0

    def __post_init__(self) -> None:
        if self.tnorm not in ("minmax", "product"):
            raise ValueError(f"semantics.tnorm must be 'minmax' or 'product', got {self.tnorm!r}")
        if self.quantifier not in ("minmax", "product"):
            raise ValueError(f"semantics.quantifier must be 'minmax' or 'product', got {self.quantifier!r}")
        if self.iota not in ("softmax", "minmax"):
            raise ValueError(f"semantics.iota must be 'softmax' or 'minmax', got {self.iota!r}")
        if self.gamma <= 0 or self.iota_temperature <= 0 or self.threshold_sharpness <= 0:
            raise ValueError("semantics.gamma, iota_temperature and threshold_sharpness must be > 0")
