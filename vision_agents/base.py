"""The two perception contracts: VisionAgent (yes/no scores and open answers) and
Detector (boxes). Backends subclass these and are built with ``from_config``.

Two optional hooks every backend may override:

- ``preflight()``: called once before the first sample; load (or open and validate)
  weights, reach a server. A backend that cannot work raises a ``UserError`` whose one
  line says what is wrong and how to fix it. Default: nothing.
- ``score_with_info`` / ``answer_with_info``: the result plus what the backend wants
  recorded on the trace entry of that call (for example an unknown concept, or each
  ensemble member's output). Default: the plain result and an empty dict.
- ``use_marker(marker)``: how objects are to be marked (config ``marking``: box outlines, mask
  outlines or overlays, crops; vision_agents/object_marking.py). Agents that draw marks (or, like
  the classic agent, read an object's region) keep it; the default ignores it.
- ``score_tuples_with_info``: p(yes) for an explicit list of box tuples (a lazy relation
  asks only for the (subject, object) pairs a program uses). Default: ``score`` on the
  distinct boxes of the tuples, never more than the full call; a backend that scores each
  tuple on its own (every marking VLM does) overrides it to evaluate exactly those.

A score depends only on the image, the question and the box tuple it is about (not on
the other boxes of the call): that is what lets :class:`MemoizedAgent` share evaluations
between calls, questions and samples on the same image.
"""

from __future__ import annotations

import functools
import itertools
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from neptune_core.types import Box, Detection, Sample
from vision_agents.calls import count
from vision_agents.memo import ImageLRU, image_fingerprint

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from vision_agents.object_marking import ObjectMarker

BoxTuple = tuple[Box, ...]  # the boxes one evaluation is about: () whole image, (box,), (subject, object)


def box_key(box: Box | None) -> tuple[float, ...] | None:
    """A hashable key of a box (its coordinates as floats)."""
    return None if box is None else tuple(map(float, box))


class VisionAgent(ABC):
    """A model that answers yes/no questions about marked boxes, and open questions.

    Subclasses implement :meth:`score` and :meth:`answer`; they may override
    :meth:`begin_sample` when they need per-sample state.
    """

    name: str = "vision_agent"
    memoises_itself: bool = False  # True: memoises (and counts) its own models, e.g. an ensemble's members

    @property
    def shares_across_samples(self) -> bool:
        """Whether its answers depend only on (image, question, boxes), so questions on one image share a memo.

        Default: True unless the agent overrides :meth:`begin_sample` (it may read the sample);
        such an agent says True itself when what it reads is the same for every question on an image.
        """
        return type(self).begin_sample is VisionAgent.begin_sample

    @classmethod
    def from_config(cls, config: RunConfig) -> VisionAgent:
        """Build the backend from the run config. Load weights lazily, not here."""
        return cls()

    def begin_sample(self, sample: Sample) -> None:  # noqa: B027 (an optional hook)
        """Called by the runner before each sample. Default: nothing."""

    def preflight(self) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample; raise a UserError if the backend cannot work."""

    def use_marker(self, marker: ObjectMarker) -> None:  # noqa: B027 (an optional hook)
        """The run's marking (style, segmenter). Default: ignored (the agent draws no marks, e.g. an oracle)."""

    def memo_scope(self, image: Image.Image) -> str | None:
        """A key naming the results this agent holds for ``image``: while it stays the same, the same
        call gives the same result (a sandbox process may then reuse replies, see ``Primitive.reuse``).
        Default: None, no such promise (:class:`MemoizedAgent` makes it)."""
        return None

    @abstractmethod
    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        """Return p(yes) for every question and every box tuple.

        ``arity`` 0: the whole image, shape ``(Q,)``. ``arity`` 1: box i marked in red,
        shape ``(Q, n)``. ``arity`` 2: box i in red (subject) and box j in green (object),
        shape ``(Q, n, n)``. Values in [0, 1]; the tensor may carry gradients.
        """

    @abstractmethod
    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        """A short, normalised open answer about ``box`` (marked in red), or the whole image if None."""

    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """:meth:`score` plus one dict per question for the trace (empty: nothing to record)."""
        return self.score(image, boxes, questions, arity), [{} for _ in questions]

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[BoxTuple], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """p(yes) for every question and every box tuple, shape ``(Q, len(tuples))``, plus one dict per question.

        Each tuple holds ``arity`` boxes (subject first, then object; ``()`` for arity 0).
        Default: :meth:`score_with_info` on the distinct boxes of ``tuples``, the values picked
        out; the evaluations beyond the tuples asked for are counted as model calls.
        """
        q = len(questions)
        if arity == 0:
            out, infos = self.score_with_info(image, [], questions, 0)
            return out.reshape(q, 1).expand(q, len(tuples)), infos
        index: dict[tuple[float, ...], int] = {}
        boxes: list[Box] = []
        for t in tuples:
            for b in t:
                if box_key(b) not in index:
                    index[box_key(b)] = len(boxes)
                    boxes.append(b)
        out, infos = self.score_with_info(image, boxes, questions, arity)
        cols = [torch.tensor([index[box_key(t[a])] for t in tuples], dtype=torch.long) for a in range(arity)]
        extra = q * (len(boxes) ** arity - len({tuple(box_key(b) for b in t) for t in tuples}))
        if extra > 0:
            count(arity=arity, box_evals=extra)
        return out[(slice(None), *cols)], infos

    def answer_with_info(self, image: Image.Image, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        """:meth:`answer` plus a dict for the trace (empty: nothing to record)."""
        return self.answer(image, box, question), {}


def score_tuples(
    agent: VisionAgent, image: Image.Image, tuples: list[BoxTuple], questions: list[str], arity: int
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """``agent.score_tuples_with_info``, unless a subclass changed ``score`` below the class that defines it.

    (A subclass that overrides ``score`` or ``score_with_info`` of a backend, e.g. to swap left
    and right, would otherwise be bypassed by the backend's own tuple scoring: then the
    default, which goes through ``score_with_info``, is used.)
    """
    if _scores_own_tuples(type(agent)):
        return agent.score_tuples_with_info(image, tuples, questions, arity)
    return VisionAgent.score_tuples_with_info(agent, image, tuples, questions, arity)


_NUMPY_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


def _tensor(rows: list[list[float]], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.tensor(rows, dtype=dtype, device=device)``; through numpy where it can (a few times faster
    for the small lists of a call)."""
    np_dtype = _NUMPY_DTYPES.get(dtype)
    if np_dtype is None or device.type != "cpu":
        return torch.tensor(rows, dtype=dtype, device=device)
    return torch.from_numpy(np.array(rows, dtype=np_dtype))


@functools.cache
def _scores_own_tuples(cls: type) -> bool:
    """Whether ``cls``'s ``score_tuples_with_info`` comes from a class at or below the one defining its ``score``."""
    mro = cls.__mro__

    def first(*names: str) -> int:
        return next(i for i, c in enumerate(mro) if any(n in c.__dict__ for n in names))

    return first("score_tuples_with_info") <= first("score", "score_with_info")


class Detector(ABC):
    """Proposes boxes for the object names a program needs.

    ``cacheable``: the boxes depend only on (image, object names, the detector's settings),
    so the run may reuse them for every question on the image. Default: True unless the
    detector overrides :meth:`begin_sample` (it reads the sample, like the ground-truth one).
    ``counts_own_calls``: the detector counts its model calls itself (an ensemble counts
    each member's), so a cache in front of it does not.
    """

    name: str = "detector"
    counts_own_calls: bool = False

    @property
    def cacheable(self) -> bool:
        return type(self).begin_sample is Detector.begin_sample

    @classmethod
    def from_config(cls, config: RunConfig) -> Detector:
        return cls()

    def begin_sample(self, sample: Sample) -> None:  # noqa: B027 (an optional hook)
        """Called by the runner before each sample. Default: nothing."""

    def preflight(self) -> None:  # noqa: B027 (an optional hook)
        """Called once before the first sample; raise a UserError if the backend cannot work."""

    @abstractmethod
    def detect(self, image: Image.Image, object_names: list[str]) -> Detection:
        """Boxes (xyxy pixels), scores and labels for ``object_names`` in ``image``."""


class _ImageMemo:
    """What one image's calls returned: score entries, the latest info per question, answers.

    ``serial`` names this store: a store is never reused once dropped (cleared, evicted), so the
    serial changes whenever remembered results may."""

    __slots__ = ("scores", "like", "infos", "answers", "rows", "serial")
    _serials = itertools.count()

    def __init__(self) -> None:
        self.serial = next(_ImageMemo._serials)
        # (question, arity, box keys of the call) -> the call's whole result for that question (a copy of
        # the entries below, kept so that a repeated call is one lookup)
        self.rows: dict[tuple, torch.Tensor] = {}
        # (question, arity) -> {box tuple key: p(yes)}: plain floats for results without gradients (in the
        # dtype and on the device of ``like``), 0-d tensors in the store of results that carry them
        self.scores: dict[tuple[str, int], dict[tuple, Any]] = {}
        self.like: tuple[torch.dtype, torch.device] = (torch.get_default_dtype(), torch.device("cpu"))
        self.infos: dict[tuple[str, int], dict[str, Any]] = {}  # (question, arity) -> info of its latest call
        self.answers: dict[tuple, tuple[str, dict[str, Any]]] = {}  # (box key, question) -> (answer, info)


def _served(questions: list[str], grid: tuple, arity: int) -> int:
    """The entries a call of ``questions`` over the boxes ``grid`` (box keys) is served from the memo."""
    return len(set(questions)) * (1 if arity == 0 else len(set(grid)) ** arity)


class MemoizedAgent(VisionAgent):
    """Wraps a VisionAgent so that an evaluation reaches the model once per image, not once per call.

    Entries are memoised one by one, keyed by (image, question, arity, box tuple), and shared
    by every call, question and sample on the same image (the image is identified by its
    pixels, :func:`vision_agents.memo.image_fingerprint`). The memos of the ``images`` most
    recently used images are kept (0: one memo per sample, cleared at :meth:`begin_sample`; so too
    for an agent whose answers may depend on the sample, see ``shares_across_samples``).
    Results that carry gradients (``vlm_trainable``) are kept for the current sample only, so
    no sample backpropagates into another's graph. Each result keeps the trace info of the
    call that produced it (the latest call's info for a question, when a call was partly served).
    A call served whole from the memo may return a view of the kept values: read it, do not write to it.

    Forwarded evaluations and answers are counted as model calls and served ones as memo hits
    (:mod:`vision_agents.calls`); ``calls`` counts the calls forwarded to the wrapped agent.
    An agent that memoises its own models (``memoises_itself``: an ensemble, whose members
    are each a MemoizedAgent) is passed through untouched, so its per-entry info stays aligned.
    """

    def __init__(self, inner: VisionAgent, *, images: int = 8) -> None:
        self.inner = inner
        self.name = inner.name
        self.images = images
        self._memo: ImageLRU[_ImageMemo] = ImageLRU(images, _ImageMemo)
        self._graph_images: dict[str, _ImageMemo] = {}  # this sample's results that carry gradients
        self.calls = 0

    @property
    def memoises_itself(self) -> bool:  # type: ignore[override]
        return True

    @property
    def shares_across_samples(self) -> bool:
        return self.inner.shares_across_samples

    def begin_sample(self, sample: Sample) -> None:
        if self.images == 0 or not self.inner.shares_across_samples:
            self._memo.clear()
        self._graph_images.clear()
        self.inner.begin_sample(sample)

    def preflight(self) -> None:
        self.inner.preflight()

    def use_marker(self, marker: ObjectMarker) -> None:
        self.inner.use_marker(marker)
        self.clear()  # evaluations made under another marking are not this marking's

    def clear(self) -> None:
        """Forget everything memoised (call it after the wrapped model's weights change, e.g. a training step)."""
        self._memo.clear()
        self._graph_images.clear()

    def memo_scope(self, image: Image.Image) -> str | None:
        """This image's memo store (a new one after a clear or an eviction), unless results are not
        shared between calls: an agent that memoises itself, a memo per sample, or results with gradients."""
        if self.inner.memoises_itself or self.images == 0 or not self.shares_across_samples:
            return None
        if torch.is_grad_enabled():
            return None
        return f"memo:{self._stores(image)[0].serial}"

    def _stores(self, image: Image.Image) -> tuple[_ImageMemo, _ImageMemo]:
        key = image_fingerprint(image)
        graph = self._graph_images.get(key)
        if graph is None:
            graph = self._graph_images[key] = _ImageMemo()
        return self._memo.get(key), graph

    # ---- scores ------------------------------------------------------------------------
    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        if self.inner.memoises_itself:
            return self.inner.score_with_info(image, boxes, questions, arity)
        memo, graph = self._stores(image)
        grid = tuple(map(box_key, boxes))
        if not graph.scores:  # a call made before: its rows, counted as the entries they hold
            rows = [memo.rows.get((q, arity, grid)) for q in questions]
            if questions and all(r is not None for r in rows):
                served = _served(questions, grid, arity)
                if served > 0:
                    count(memo_hits=served)
                infos = [memo.infos.get((q, arity), {}) for q in questions]
                # one question (most calls): a view of the kept row, no new tensor (callers do not write to it)
                return (rows[0].unsqueeze(0) if len(rows) == 1 else torch.stack(rows)), infos  # type: ignore[union-attr,arg-type]
        n = len(boxes)
        tuples = list(itertools.product(boxes, repeat=arity))  # every box tuple, in grid order
        keys = list(itertools.product(grid, repeat=arity)) if arity > 0 else None
        values, infos = self._score(image, tuples, questions, arity, grid=boxes, keys=keys, stores=(memo, graph))
        values = values.reshape(len(questions), *((n,) * arity))
        if not values.requires_grad and not graph.scores:
            values = values.clone()  # the memo's own copy (a backend may reuse its output), given out as on a hit
            for i, q in enumerate(questions):
                memo.rows[(q, arity, grid)] = values[i]
        return values, infos

    def held(
        self, image: Image.Image, boxes: list[Box], question: str, arity: int
    ) -> tuple[torch.Tensor, int, dict[str, Any]] | None:
        """What ``score_with_info(image, boxes, [question], arity)`` gives from the memo, without calling
        it (nothing is counted): the row, the memo hits the call counts and the info; None when that
        call would ask the model (or pass through to an agent that memoises itself)."""
        if self.inner.memoises_itself:
            return None
        memo, graph = self._stores(image)
        grid = tuple(map(box_key, boxes))
        row = None if graph.scores else memo.rows.get((question, arity, grid))
        if row is None:
            return None
        return row, _served([question], grid, arity), memo.infos.get((question, arity), {})

    def warm(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> list[torch.Tensor | None]:
        """Each question's memoised row over ``boxes`` (None where the memo keeps none: results with
        gradients, an agent that memoises itself), after evaluating the questions not memoised yet in
        one forwarded call. Counts that call's evaluations but no memo hits: the calls the rows are
        for count those (neptune_core/executor/score_ahead.py)."""
        memo, _ = self._stores(image)
        grid = tuple(map(box_key, boxes))
        todo = [q for q in dict.fromkeys(questions) if (q, arity, grid) not in memo.rows]
        if todo:
            self.score_with_info(image, boxes, todo, arity)
        return [memo.rows.get((q, arity, grid)) for q in questions]

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[BoxTuple], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        if self.inner.memoises_itself:
            return self.inner.score_tuples_with_info(image, tuples, questions, arity)
        return self._score(image, tuples, questions, arity, grid=None)

    def _score(
        self,
        image: Image.Image,
        tuples: list[BoxTuple],
        questions: list[str],
        arity: int,
        grid: list[Box] | None,
        keys: list[tuple] | None = None,
        stores: tuple[_ImageMemo, _ImageMemo] | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Every (question, tuple) entry, from the memo where known; the others in one forwarded call.
        ``keys``, ``stores``: the tuples' box keys and the image's stores, when the caller has them."""
        memo, graph = stores if stores is not None else self._stores(image)
        if arity == 0:  # a whole-image score may depend on the boxes (e.g. the best box's): keyed by them
            keys = [("all", *(box_key(b) for b in grid or []))] * len(tuples)
        elif keys is None:
            keys = [tuple(map(box_key, t)) for t in tuples]
        distinct = dict.fromkeys(keys)
        uniq_q = list(dict.fromkeys(questions))

        def known(q: str) -> tuple[dict[tuple, Any], dict[tuple, Any]]:
            """The plain entries of ``q`` and those with gradients (these win)."""
            return memo.scores.get((q, arity), {}), graph.scores.get((q, arity), {})

        def missing(q: str) -> list[tuple]:
            plain, grad = known(q)
            if not plain and not grad:  # a question new to this image (most calls that get here)
                return list(distinct)
            return [k for k in distinct if k not in plain and k not in grad]

        gaps = {q: missing(q) for q in uniq_q}
        missing_q = [q for q in uniq_q if gaps[q]]
        fresh_info: dict[str, dict[str, Any]] = {}
        forwarded = 0
        whole: torch.Tensor | None = None  # the backend's own answer to exactly this call, when it made one
        if missing_q:
            if all(len(gaps[q]) == len(distinct) for q in missing_q):
                todo = list(distinct)
            else:
                gap = set().union(*(gaps[q] for q in missing_q))
                todo = [k for k in distinct if k in gap]
            self.calls += 1
            if grid is not None and len(todo) == len(distinct):  # nothing known: the backend's own full call
                out, infos = self.inner.score_with_info(image, grid, missing_q, arity)
                flat = out.reshape(len(missing_q), -1)
                todo = keys
                whole = flat if missing_q == questions else None
            else:
                by_key = dict(zip(keys, tuples, strict=True))
                flat, infos = score_tuples(self.inner, image, [by_key[k] for k in todo], missing_q, arity)
            if tuple(flat.shape) != (len(missing_q), len(todo)) or len(infos) != len(missing_q):
                raise ValueError(
                    f"vision agent '{self.inner.name}' returned {tuple(flat.shape)} for {len(missing_q)} questions x "
                    f"{len(todo)} box tuples"
                )
            forwarded = len(missing_q) * len(set(todo))
            count(arity=arity, box_evals=forwarded)
            if flat.requires_grad:
                for qi, q in enumerate(missing_q):
                    graph.scores.setdefault((q, arity), {}).update(zip(todo, flat[qi], strict=True))
            else:
                memo.like = (flat.dtype, flat.device)
                for q, row in zip(missing_q, flat.detach().tolist(), strict=True):
                    memo.scores.setdefault((q, arity), {}).update(zip(todo, row, strict=True))
            store = graph if flat.requires_grad else memo
            for qi, q in enumerate(missing_q):
                store.infos[(q, arity)] = infos[qi]
                fresh_info[q] = infos[qi]
        served = len(uniq_q) * len(distinct) - forwarded
        if served > 0:
            count(memo_hits=served)
        out_infos = [
            fresh_info[q] if q in fresh_info else graph.infos.get((q, arity), memo.infos.get((q, arity), {}))
            for q in questions
        ]
        if whole is not None and not whole.requires_grad:
            return whole, out_infos  # what the rows below would rebuild from the memo, value for value
        dtype, device = memo.like
        if not keys:
            return torch.zeros(len(questions), 0, dtype=dtype, device=device), out_infos
        if not any(known(q)[1] for q in uniq_q):  # plain values only: one tensor
            rows = [[plain[k] for k in keys] for plain in (known(q)[0] for q in questions)]
            return _tensor(rows, dtype, device), out_infos

        def entry(q: str, k: tuple) -> torch.Tensor:
            plain, grad = known(q)
            return grad[k] if k in grad else torch.tensor(plain[k], dtype=dtype, device=device)

        return torch.stack([torch.stack([entry(q, k) for k in keys]) for q in questions]), out_infos

    def score(self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int) -> torch.Tensor:
        return self.score_with_info(image, boxes, questions, arity)[0]

    # ---- answers -----------------------------------------------------------------------
    def answer_with_info(self, image: Image.Image, box: Box | None, question: str) -> tuple[str, dict[str, Any]]:
        if self.inner.memoises_itself:
            return self.inner.answer_with_info(image, box, question)
        memo, _ = self._stores(image)
        key = (box_key(box), question)
        if key in memo.answers:
            count(memo_hits=1)
        else:
            self.calls += 1
            count(queries=1)
            memo.answers[key] = self.inner.answer_with_info(image, box, question)
        return memo.answers[key]

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        return self.answer_with_info(image, box, question)[0]
