"""The ``classic`` VisionAgent's class models as torch modules: trainable through programs.

:class:`ClassicHeads` holds one multinomial logistic head per attribute (colour, shape,
material, size) over the pixel measurements of
:func:`vision_agents.classic_features.attribute_features`, and one linear relation head
(left / right / behind / front) over the difference of two objects' estimated floor
positions. The agent (vision_agents/classic_agent.py) parses a question and asks these
heads for logits over all boxes at once; every logit is a differentiable function of the
heads' parameters, so a loss on a program's output trains them (runners/train.py).
The models beyond CLEVR (vision_agents.classic_figures: colour names, flat figures, what
holds off a CLEVR floor) are not trained; where they build on the CLEVR classes they read
these heads' probabilities (:meth:`ClassicHeads.class_probs`), so the heads stay the one
source of them.

Parameters load from and save to the JSON format that bench/fit_classic.py writes
(``classic_params.json``): per attribute ``mean``/``std`` (standardisation, buffers),
``weights``/``bias`` (parameters) and ``values``; optionally ``relations``:
``{relation: [wx, wy]}`` logits per metre along world x / y. Without ``relations`` the
relation head is geometric: :data:`RELATION_SCALE` logits per metre along the nominal
camera's direction for that relation.

Logits are clipped to +-:data:`MAX_LOGIT` in the forward pass only (straight-through),
so an over-confident head still receives a gradient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from neptune_core.clevr_vocab import RELATIONS, VALUE_TO_ATTRIBUTE
from neptune_core.errors import ConfigError
from neptune_core.types import Box
from vision_agents.classic_features import ObjectFeatures, attribute_features, ground_directions
from vision_agents.tuning import Tuner, select_parameters

if TYPE_CHECKING:
    from neptune_core.config import TrainConfig
    from vision_agents.classic_agent import ClassicAgent

RELATION_SCALE = 4.0  # logit per metre of separation along the relation's direction (geometric head)
MAX_LOGIT = 8.0
PROB_FLOOR = 1e-4  # probabilities from outside the heads are kept this far from 0 and 1
MODELLED: tuple[str, ...] = ("color", "shape", "material", "size")
DTYPE = torch.float64

_HERE = Path(__file__).resolve().parent
SHIPPED_PARAMS: dict[str, Path] = {
    "fitted": _HERE / "classic_params.json",  # bench/fit_classic.py on all labels of the train split
    "weak": _HERE / "classic_params_weak.json",  # 1% of the labels, random relations: a weak start
}


def params_path(name_or_path: str) -> Path:
    """A shipped parameter set by name ("fitted", "weak") or a path to a JSON file."""
    if name_or_path in SHIPPED_PARAMS:
        return SHIPPED_PARAMS[name_or_path]
    return Path(name_or_path).expanduser()


def load_params(name_or_path: str = "fitted") -> dict[str, Any]:
    """The class models as a dict (bench/fit_classic.py's JSON); a one-line error if missing."""
    p = params_path(name_or_path)
    if not p.is_file():
        known = ", ".join(SHIPPED_PARAMS)
        raise ConfigError(
            f"classic agent parameters not found: {p} (classic_params is one of {known} or a JSON file "
            "written by bench/fit_classic.py or by a training run's tuned/ directory)"
        )
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"classic agent parameters {p} are not valid JSON: {e.msg} at line {e.lineno}") from None


def st_clip(x: torch.Tensor, limit: float = MAX_LOGIT) -> torch.Tensor:
    """``x`` clipped to [-limit, limit] in the forward pass; identity for the gradient."""
    return x + (x.clamp(-limit, limit) - x).detach()


def probability_logits(p: torch.Tensor) -> torch.Tensor:
    """Yes-vs-no logits of probabilities from elsewhere (vision_agents.classic_figures): ``p`` kept
    within [PROB_FLOOR, 1 - PROB_FLOOR], the logit clipped to +-:data:`MAX_LOGIT` like the heads' own."""
    p = p.clamp(PROB_FLOOR, 1.0 - PROB_FLOOR)
    return torch.log(p / (1.0 - p)).clamp(-MAX_LOGIT, MAX_LOGIT)


@dataclass
class Encoded:
    """The boxes of one image as tensors: per-attribute features (n, d_a), floor positions (n, 2), areas (n,)."""

    features: dict[str, torch.Tensor]
    ground: torch.Tensor
    area: torch.Tensor

    @classmethod
    def from_features(cls, feats: list[ObjectFeatures]) -> Encoded:
        def mat(rows: list[np.ndarray], width: int) -> torch.Tensor:
            return torch.tensor(np.array(rows, dtype=np.float64).reshape(len(rows), width), dtype=DTYPE)

        n = len(feats)
        widths = {a: len(attribute_features(feats[0], a)) if n else 0 for a in MODELLED}
        return cls(
            features={a: mat([attribute_features(f, a) for f in feats], widths[a]) for a in MODELLED},
            ground=mat([f.ground_xy for f in feats], 2),
            area=torch.tensor([float(f.area) for f in feats], dtype=DTYPE),
        )

    def __len__(self) -> int:
        return int(self.area.shape[0])


class AttributeHead(nn.Module):
    """log p(value | measurements): softmax over ``(x - mean) / std @ weight + bias``."""

    def __init__(self, values: list[str], mean: list[float], std: list[float], weight: Any, bias: Any) -> None:
        super().__init__()
        self.values = list(values)
        self.register_buffer("mean", torch.tensor(mean, dtype=DTYPE))
        self.register_buffer("std", torch.tensor(std, dtype=DTYPE))
        self.weight = nn.Parameter(torch.tensor(weight, dtype=DTYPE).reshape(len(mean), len(values)))
        self.bias = nn.Parameter(torch.tensor(bias, dtype=DTYPE).reshape(len(values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        return torch.log_softmax(z @ self.weight + self.bias, dim=-1)

    def to_params(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "weights": self.weight.detach().tolist(),
            "bias": self.bias.detach().tolist(),
        }


class RelationHead(nn.Module):
    """logit[i, j] of "i is <relation> of j" = weight[relation] . (ground_i - ground_j)."""

    def __init__(self, weights: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        if weights is None:  # geometric: along the nominal camera's directions
            dirs = ground_directions(480, 320)
            weights = {r: (RELATION_SCALE * dirs[r]).tolist() for r in RELATIONS}
        missing = [r for r in RELATIONS if r not in weights]
        if missing:
            raise ConfigError(f"classic relation parameters lack {missing}")
        self.weight = nn.Parameter(torch.tensor([weights[r] for r in RELATIONS], dtype=DTYPE))

    def forward(self, ground: torch.Tensor, relation: str) -> torch.Tensor:
        diff = ground[:, None, :] - ground[None, :, :]
        return diff @ self.weight[RELATIONS.index(relation)]

    def to_params(self) -> dict[str, list[float]]:
        return {r: self.weight[k].detach().tolist() for k, r in enumerate(RELATIONS)}


class ClassicHeads(nn.Module):
    """All class models of the classic agent; logits over every box (or box pair) at once."""

    def __init__(self, attributes: dict[str, AttributeHead], relations: RelationHead, fitted_on: Any = None) -> None:
        super().__init__()
        self.attributes = nn.ModuleDict(attributes)
        self.relations = relations
        self.fitted_on = fitted_on

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ClassicHeads:
        missing = [a for a in MODELLED if a not in params]
        if missing:
            raise ConfigError(f"classic agent parameters lack the class models of {missing}")
        heads = {
            a: AttributeHead(
                params[a]["values"], params[a]["mean"], params[a]["std"], params[a]["weights"], params[a]["bias"]
            )
            for a in MODELLED
        }
        return cls(heads, RelationHead(params.get("relations")), params.get("fitted_on"))

    @classmethod
    def load(cls, name_or_path: str = "fitted") -> ClassicHeads:
        return cls.from_params(load_params(name_or_path))

    def to_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fitted_on": self.fitted_on}
        out.update({a: head.to_params() for a, head in self.attributes.items()})
        out["relations"] = self.relations.to_params()
        return out

    def save(self, path: str | Path) -> Path:
        """Write the parameters as JSON (loadable by ``classic_params`` or ``vlm_adapter``)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_params(), indent=1) + "\n")
        tmp.replace(p)
        return p

    # ---- logits -------------------------------------------------------------------------
    def classes(self, attribute: str) -> list[str]:
        """The values the head of ``attribute`` tells apart ([] when no head models it)."""
        return list(self.attributes[attribute].values) if attribute in self.attributes else []

    def log_probs(self, enc: Encoded, attribute: str) -> torch.Tensor:
        """log p(value) for every box: (n, number of values)."""
        return self.attributes[attribute](enc.features[attribute])

    def class_probs(self, enc: Encoded, attribute: str) -> list[dict[str, float]] | None:
        """p(value) of every box as plain numbers (no gradient), for the models beyond CLEVR that
        build on the CLEVR classes (vision_agents.classic_figures); None when no head models ``attribute``."""
        if attribute not in self.attributes:
            return None
        probs = self.log_probs(enc, attribute).detach().exp().tolist()
        return [dict(zip(self.attributes[attribute].values, row, strict=True)) for row in probs]

    def value_logits(self, enc: Encoded, value: str) -> torch.Tensor:
        """Yes-vs-no logit of "the object is <value>" for every box: log p(v) - log(1 - p(v)), clipped."""
        attr = VALUE_TO_ATTRIBUTE[value]
        lp = self.log_probs(enc, attr)
        k = self.attributes[attr].values.index(value)
        others = torch.cat([lp[:, :k], lp[:, k + 1 :]], dim=1)
        return st_clip(lp[:, k] - others.logsumexp(dim=1))

    def same_logits(self, enc: Encoded, attribute: str) -> torch.Tensor:
        """(n, n) logits of "i has the same <attribute> as j": p = sum_v p_i(v) p_j(v), in log space."""
        lp = self.log_probs(enc, attribute)
        joint = lp[:, None, :, None] + lp[None, :, None, :]  # (n, n, K, K): log p_i(v) p_j(w)
        k = lp.shape[1]
        eye = torch.eye(k, dtype=torch.bool)
        same = joint[:, :, eye].logsumexp(-1)
        differ = joint[:, :, ~eye].logsumexp(-1)
        return st_clip(same - differ)

    def relation_logits(self, enc: Encoded, relation: str) -> torch.Tensor:
        """(n, n) logits of "i is <relation> of j"."""
        return st_clip(self.relations(enc.ground, relation))

    def answer_log_probs(self, enc: Encoded, attribute: str) -> tuple[list[str], torch.Tensor]:
        """The candidate answers of a "what <attribute>" question and their log-probabilities (n, K)."""
        return list(self.attributes[attribute].values), self.log_probs(enc, attribute)


class ClassicTuner(Tuner):
    """Trains a ClassicAgent's heads: all of them (``train.method`` auto / all) or a regex subset."""

    def __init__(self, agent: ClassicAgent, train: TrainConfig) -> None:
        super().__init__(agent, agent.heads)
        if train.method == "lora":
            raise ConfigError(
                "train.method 'lora' needs a transformers VLM; the classic agent trains 'all' or 'subset'"
            )
        select_parameters(self.module, "all" if train.method == "auto" else train.method, train.parameters)
        self.classic: ClassicAgent = agent

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    def answer_log_probs(self, image: Image.Image, box: Box, question: str) -> tuple[list[str], torch.Tensor] | None:
        return self.classic.answer_log_probs(image, box, question)

    def save(self, directory: Path) -> Path:
        return self.classic.heads.save(Path(directory) / "classic_params.json")
