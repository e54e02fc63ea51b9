"""Oracle perception from CLEVR scene annotations: for upper-bound runs and tests.

:class:`SceneOracleAgent` (``vlm_model_name: "scene_oracle"``) is NOT a model: it
reads the answers off ``sample.scene`` and returns p = 1.0 or 0.0. It understands the
canonical phrasings of :mod:`neptune_core.clevr_vocab` and close variants:

- arity 1, attribute values ("Is the object in the red box a large cube?"): all of
  the values hold for the box's object;
- arity 1 or 0 asking for presence ("Is there an object in the red box?"): 1;
- arity 0 with values ("Is there a red cube?"): some object has all of them;
- arity 2, a relation ("Is the object in the red box left of the object in the
  green box?"): ``score[x][y] = 1`` iff object x is <relation> of object y, read from
  ``scene["relationships"][rel][y]`` (CLEVR lists there the objects that are <rel> of y);
- arity 2, "same <attribute>": same value and x != y;
- :meth:`answer` to "What <attribute> is ...?": the box's object's value.

Anything else (including negations and disjunctions) raises ``ValueError`` naming the question.

Boxes -> scene objects: ``sample.boxes[i]`` (or ``scene["objects"][i]["bbox"]`` when
the sample has no boxes) is the box of scene object ``i`` -- the ground-truth detector
returns exactly these, in scene order. Boxes from anywhere else are matched, each on
its own, to the scene object whose box has the highest IoU with it (an IoU of 0 is an
error).

:class:`GroundTruthDetector` (``od_model: "gt"``) returns ``sample.boxes``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from neptune_core.clevr_vocab import VALUE_TO_ATTRIBUTE, find_attribute, find_relation, find_values
from neptune_core.errors import UserError
from neptune_core.types import Box, Detection, Sample, box_iou
from vision_agents.base import Detector, VisionAgent

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

# the box markers ("the red box", "green bounding box") name colours that are not attributes
_MARKER = re.compile(r"\b(?:red|green)\s+(?:bounding\s+)?(?:box|rectangle|frame)(?:es)?\b")
# "Is there an object in the red box?", "Does the red box contain anything?", "Is there an object?"
_PRESENCE = re.compile(r"\b(?:there|contains?|holds?)\b.*\b(?:objects?|things?|items?|anything|something)\b")
# negation and disjunction would be misread as a conjunction of values
_UNSUPPORTED = re.compile(r"\b(?:not|no|or|nor|neither|without)\b|n't\b")


@functools.lru_cache(maxsize=4096)
def _parse(question: str) -> tuple[tuple[str, ...], str | None, str | None, bool]:
    """(values, relation, same-attribute, asks for presence) of a question, box markers removed.

    A question with a negation or a disjunction parses to nothing (so it is refused).
    """
    text = _MARKER.sub(" ", question.lower())
    if _UNSUPPORTED.search(text):
        return (), None, None, False
    values = tuple(find_values(text))
    same = find_attribute(text) if re.search(r"\bsame\b", text) else None
    relation = find_relation(text)
    return values, relation, same, bool(_PRESENCE.search(text))


class SceneOracleAgent(VisionAgent):
    """Perfect perception read from CLEVR scene annotations (an oracle, not a model)."""

    name = "scene_oracle"
    shares_across_samples = True  # it reads the sample's scene and boxes: the same for every question on an image

    def __init__(self) -> None:
        self._sample: Sample | None = None
        self._own: tuple[list[Box], dict[tuple[float, ...], int]] | None = None  # the sample's boxes, and box -> index

    @classmethod
    def from_config(cls, config: RunConfig) -> SceneOracleAgent:
        return cls()

    def begin_sample(self, sample: Sample) -> None:
        if not isinstance(sample.scene, dict) or "objects" not in sample.scene:
            raise UserError(
                f"sample {sample.id} has no CLEVR scene annotations; the scene_oracle needs a dataset with scenes"
            )
        self._sample = sample
        self._own = None

    # ---- scene access ------------------------------------------------------------------
    @property
    def scene(self) -> dict:
        if self._sample is None:
            raise RuntimeError("SceneOracleAgent.begin_sample(sample) must be called before score/answer")
        return self._sample.scene  # type: ignore[return-value]

    def _scene_boxes(self) -> list[Box]:
        objects = self.scene["objects"]  # raises before begin_sample
        assert self._sample is not None
        if self._sample.boxes is not None:
            if len(self._sample.boxes) != len(objects):
                raise ValueError(
                    f"sample {self._sample.id} has {len(self._sample.boxes)} boxes for {len(objects)} scene objects; "
                    "the scene_oracle needs one box per scene object, in scene order"
                )
            return [list(map(float, b)) for b in self._sample.boxes]
        if all("bbox" in o for o in objects):
            return [list(map(float, o["bbox"])) for o in objects]
        raise ValueError(f"sample {self._sample.id}: no boxes to match against the scene objects")

    def object_indices(self, boxes: list[Box]) -> list[int]:
        """The scene object index of each box (its own index for one of the scene's own boxes, else best IoU)."""
        if not boxes:
            return []
        if self._own is None:
            own_boxes = self._scene_boxes()
            index: dict[tuple[float, ...], int] = {}
            for i, o in enumerate(own_boxes):
                index.setdefault(tuple(o), i)
            self._own = (own_boxes, index)
        own, index = self._own
        out = []
        for b in boxes:
            hit = index.get(tuple(map(float, b)))
            if hit is not None:
                out.append(hit)
                continue
            overlaps = [box_iou(list(map(float, b)), o) for o in own]
            best = max(range(len(own)), key=overlaps.__getitem__) if own else -1
            if best < 0 or overlaps[best] <= 0.0:
                raise ValueError(f"box {b} overlaps no scene object; the scene_oracle cannot answer about it")
            out.append(best)
        return out

    # ---- questions ---------------------------------------------------------------------------
    def _unsupported(self, question: str, arity: int) -> ValueError:
        return ValueError(f"scene_oracle cannot answer {question!r} with arity {arity} (outside its CLEVR vocabulary)")

    def _has_values(self, obj: dict, values: tuple[str, ...]) -> bool:
        return all(obj[VALUE_TO_ATTRIBUTE[v]] == v for v in values)

    def _values(self, question: str, idx: list[int], arity: int) -> Any:
        """p(yes) of ``question`` over the objects ``idx`` (nested lists of 0.0/1.0; a float for arity 0)."""
        objects = self.scene["objects"]
        values, relation, same, presence = _parse(question)
        if arity in (0, 1) and (relation is not None or same is not None):
            raise self._unsupported(question, arity)
        if arity == 0:
            if not values and not presence:
                raise self._unsupported(question, arity)
            return float(any(self._has_values(o, values) for o in objects))
        if arity == 1:
            if not values and not presence:
                raise self._unsupported(question, arity)
            return [float(self._has_values(objects[i], values)) for i in idx]
        if arity == 2:
            pair = self._pair(question)
            return [[pair(i, j) for j in idx] for i in idx]
        raise ValueError(f"arity must be 0, 1 or 2, got {arity}")

    def _pair(self, question: str) -> Callable[[int, int], float]:
        """p(yes) of the relation ``question`` as a function of (subject object, object object)."""
        values, relation, same, _ = _parse(question)
        if values or (relation is None) == (same is None):
            raise self._unsupported(question, 2)
        objects = self.scene["objects"]
        if same is not None:
            return lambda i, j: float(i != j and objects[i][same] == objects[j][same])
        related = self.scene["relationships"][relation]
        return lambda i, j: float(i in related[j])

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[tuple[Box, ...]], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict]]:
        """Each box tuple on its own (the lazy relations' pairs), read off the scene."""
        distinct = list({tuple(map(float, b)): list(map(float, b)) for t in tuples for b in t}.values())
        of = dict(zip((tuple(b) for b in distinct), self.object_indices(distinct) if arity > 0 else [], strict=True))
        objs = [[of[tuple(map(float, b))] for b in t] for t in tuples]
        rows = []
        for q in questions:
            if arity == 0:
                rows.append([self._values(q, [], 0)] * len(tuples))
            elif arity == 1:
                rows.append(self._values(q, [o[0] for o in objs], 1))
            else:
                pair = self._pair(q)
                rows.append([pair(i, j) for i, j in objs])
        values = torch.from_numpy(np.array(rows, dtype=np.float32).reshape(len(questions), len(tuples)))
        return values, [{} for _ in questions]

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        idx = self.object_indices(boxes) if arity > 0 else []
        shape = {0: (), 1: (len(idx),), 2: (len(idx), len(idx))}.get(arity, ())
        rows = [self._values(q, idx, arity) for q in questions]
        return torch.from_numpy(np.array(rows, dtype=np.float32).reshape(len(questions), *shape))

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        attribute = find_attribute(_MARKER.sub(" ", question.lower()))
        if box is None or attribute is None or not re.search(r"\bwhat\b", question.lower()):
            raise ValueError(
                f"scene_oracle cannot answer {question!r} (it answers 'What <attribute> is ...?' about a box)"
            )
        (i,) = self.object_indices([box])
        return str(self.scene["objects"][i][attribute])


class GroundTruthDetector(Detector):
    """Returns the sample's ground-truth boxes (label "object", score 1.0), ignoring names."""

    name = "gt"
    cacheable = False  # the boxes are the sample's, not a function of the image

    def __init__(self) -> None:
        self._sample: Sample | None = None

    @classmethod
    def from_config(cls, config: RunConfig) -> GroundTruthDetector:
        return cls()

    def begin_sample(self, sample: Sample) -> None:
        self._sample = sample

    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        if self._sample is None:
            raise RuntimeError("GroundTruthDetector.begin_sample(sample) must be called before detect")
        if self._sample.boxes is None:
            raise UserError(
                f"sample {self._sample.id} has no ground-truth boxes; od_model 'gt' needs a dataset with boxes"
            )
        boxes = [list(map(float, b)) for b in self._sample.boxes]
        return Detection(boxes=boxes, scores=[1.0] * len(boxes), labels=["object"] * len(boxes))
