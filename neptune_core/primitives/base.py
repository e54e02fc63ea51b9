"""What a primitive is: one :class:`Primitive` declaration, and the context it runs in.

A primitive call crosses two sides. In the sandbox (the program's side) ``bind`` checks the
program's arguments and turns them into a *request* of plain values (str, int, float, bool,
None, lists of them), and ``wrap`` turns the reply into what the program gets back (e.g. a
ProbabilisticTensor). In the parent (the side holding the models) ``run`` answers the request
through the :class:`CallContext`: it calls the VisionAgent and records the trace entry. With
``executor.isolation: "process"`` the request and the reply cross a pipe; with
``"in_process"`` they are passed directly (and gradients survive). Either way the same three
functions run, so both modes give the same rows.
"""

from __future__ import annotations

import ast
import inspect
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from neptune_core.executor.guards import AgentError, SizeLimitError, call_limit_error
from neptune_core.types import Box
from vision_agents.calls import count

if TYPE_CHECKING:
    from PIL import Image

    from neptune_core.config import ExecutorConfig
    from neptune_core.executor.lazy_score import LazyEntry
    from probabilistic_tensor import LazyPolicy, Semantics
    from vision_agents.base import VisionAgent
    from vision_agents.perception import Perception


@dataclass(frozen=True)
class Limits:
    """What ``bind`` may need to know, on either side: the number of boxes and the question cap.

    ``n``: boxes of the (first) image. ``counts``: boxes per image when the sample has several
    images (empty: one image, ``n`` boxes); ``image=k`` arguments are checked against it.
    """

    n: int
    max_question_chars: int
    counts: tuple[int, ...] = ()

    @property
    def images(self) -> int:
        """How many images the sample has."""
        return len(self.counts) or 1

    @classmethod
    def of(cls, n: int | Sequence[int], max_question_chars: int) -> Limits:
        """The limits of a run with ``n`` boxes, or a sequence of box counts, one per image."""
        counts = tuple(int(k) for k in n) if isinstance(n, (tuple, list)) else ()
        return cls(n=counts[0] if counts else int(n), max_question_chars=int(max_question_chars), counts=counts)  # type: ignore[arg-type]

    def boxes_in(self, image: int) -> int:
        """The number of boxes of image ``image`` (checked by the caller: 0 <= image < images)."""
        return self.counts[image] if self.counts else self.n


@dataclass
class SandboxRun:
    """What a sandbox process knows of the run it is executing, for ``Primitive.predict``: the limits,
    the lazy relations' mass threshold (None: relations are evaluated at once) and the handles given out."""

    limits: Limits
    mass_threshold: float | None
    handles: int = 0


def check_question(primitive: str, question: Any, limits: Limits, what: str = "question") -> None:
    """A non-empty string of at most ``executor.max_question_chars`` characters."""
    if not isinstance(question, str) or not question.strip():
        raise TypeError(f"{primitive}() {what} must be a non-empty string, got {question!r:.80}")
    if len(question) > limits.max_question_chars:
        raise SizeLimitError(
            f"{primitive}() {what} has {len(question)} characters; the limit is {limits.max_question_chars} "
            "(executor.max_question_chars)"
        )


def rounded(values: Any) -> Any:
    """Probabilities (a float or nested lists of floats, from ``tolist()``) rounded to 4 places, for the trace."""
    if isinstance(values, list):
        if values and isinstance(values[0], list):
            return [rounded(v) for v in values]
        return [round(float(v), 4) for v in values]
    return round(float(values), 4)


_UNSET = object()


def trace_probs(data: torch.Tensor) -> Any:
    """A primitive's probabilities for its trace entry: :func:`rounded` values of ``data`` (as float32)."""
    if data.dtype is not torch.float32:
        data = data.float()
    values = data.tolist() if data.is_cpu else data.cpu().tolist()
    if type(values) is list and (not values or type(values[0]) is float):  # one row (most calls): floats already
        return [round(v, 4) for v in values]
    return rounded(values)


def _coordinates(boxes: list[Box]) -> str:
    """Each box's length and coordinates exactly, as doubles, in a short text (a faster ``repr``; a
    box is the same box for an agent whether its coordinates are ints or floats)."""
    return array("d", [v for box in boxes for v in (len(box), *box)]).tobytes().hex()


def _no_audit(call: ast.Call) -> list[str]:
    return []


@dataclass(frozen=True)
class Primitive:
    """One primitive, declared once.

    ``name``: what programs call. ``doc``: the prompt's description (keep it short and exact).
    ``returns``: the return type as the prompt shows it. ``bind(limits, *program_args)`` ->
    request dict (sandbox side; its signature after ``limits`` is the primitive's signature and
    must accept its own output as keywords). ``run(ctx, request)`` -> reply (parent side: model
    call, ``ctx.record(entry)``). ``wrap(request, reply, semantics)`` -> what the program gets.
    ``audit(call_node)`` -> problems for the program auditor (code_generator/checks.py).
    ``render(entry)`` -> HTML of its trace entry for the report (None: a generic table).
    ``needs``: a feature the run must have for the prompt to list the primitive ("" always;
    "depth": a ``depth_model``; see ``program_features`` in neptune_core/primitives/__init__.py).
    ``reuse``: the reply depends only on the request, the image(s) and the boxes while the agent's
    memo holds them (:meth:`CallContext.reply_scope`), so a sandbox process may answer a repeated
    request from its own copy instead of asking again; the parent still runs the call afterwards
    (trace entry, counts), as if asked (neptune_core/executor/child.py). A reply that is a handle
    (a lazy relation's) is never reused.
    ``predict(request, run)``: the reply the sandbox can give itself, or None to ask (a lazy
    relation's handle: its index and size are known there, :class:`SandboxRun`); the call is then
    reported like a reused one, and the parent checks that its own reply is the same.
    ``known(ctx, request)``: for a ``reuse`` primitive, what ``run`` would record and count when the
    agent's memo already holds the reply (:class:`KnownCall`), found without calling the agent, or
    None (then ``run`` is called): how a parent records a call its sandbox answered from a kept reply.
    ``wrap`` may take a fourth argument, ``forward(name, request) -> reply``: a value that asks
    the parent for more later (a lazy relation fetching pairs) sends follow-up requests through
    it, like a primitive call (counted, timed as primitive time, checked again by the parent).
    """

    name: str
    doc: str
    returns: str
    bind: Callable[..., dict[str, Any]]
    run: Callable[[CallContext, dict[str, Any]], Any]
    wrap: Callable[[dict[str, Any], Any, Semantics], Any]
    audit: Callable[[ast.Call], list[str]] = _no_audit
    render: Callable[[dict[str, Any]], str] | None = None
    needs: str = ""
    reuse: bool = False
    predict: Callable[[dict[str, Any], SandboxRun], Any] | None = None
    known: Callable[[CallContext, dict[str, Any]], KnownCall | None] | None = None
    _sig: inspect.Signature = field(init=False, repr=False, compare=False)
    _positional: tuple[int, int] = field(init=False, repr=False, compare=False)
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _required: frozenset[str] = field(init=False, repr=False, compare=False)
    forwards: bool = field(init=False, repr=False, compare=False)  # wrap takes ``forward``

    def __post_init__(self) -> None:
        object.__setattr__(self, "forwards", len(inspect.signature(self.wrap).parameters) >= 4)
        params = list(inspect.signature(self.bind).parameters.values())[1:]
        required = sum(1 for p in params if p.default is inspect.Parameter.empty)
        object.__setattr__(self, "_sig", inspect.Signature(params))
        object.__setattr__(self, "_positional", (required, len(params)))
        object.__setattr__(self, "_names", frozenset(p.name for p in params))
        object.__setattr__(self, "_required", frozenset(p.name for p in params if p.default is p.empty))

    @property
    def signature(self) -> str:
        """``name(arg: type = default, ...) -> returns``, from ``bind``'s own signature."""
        return f"{self.name}{str(self._sig).replace(chr(39), '')} -> {self.returns}"

    def request(self, limits: Limits, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``bind`` with the program's arguments; a wrong call names the primitive."""
        low, high = self._positional
        if kwargs and not args and self._required <= kwargs.keys() <= self._names:
            pass  # a request dict (all keywords, all known): Python binds it as is
        elif kwargs or not low <= len(args) <= high:  # the common all-positional call needs no binding check
            try:
                self._sig.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"{self.name}(): {e}") from None
        return self.bind(limits, *args, **kwargs)

    def checked(self, limits: Limits, request: Any) -> dict[str, Any]:
        """A request from a sandbox process, checked again as ``bind`` checks a program's arguments."""
        if not isinstance(request, dict) or not all(isinstance(k, str) for k in request):
            raise TypeError(f"{self.name}(): malformed request")
        return self.request(limits, (), request)

    def call(self, ctx: CallContext, request: Any, *, trusted: bool = False) -> Any:
        """Parent side: count the call, check the request again unless it comes from this process
        (``trusted``: in-process isolation; a sandbox process is never trusted), run."""
        ctx.count_call(self.name)
        if not trusted:
            request = self.checked(ctx.limits, request)
        t0 = time.perf_counter()
        try:
            return self.run(ctx, request)
        finally:
            ctx.seconds += time.perf_counter() - t0


@dataclass
class KnownCall:
    """What a call of primitive ``name`` records and counts when the agent's memo already holds its
    reply (``Primitive.known``): its trace entry and the memo hits it counts (it reaches no model).
    :meth:`CallContext.replay` puts it on the run as the program's call."""

    name: str
    entry: dict[str, Any]
    memo_hits: int


class CallContext:
    """The parent's side of one program run: the agent, the image(s), the boxes, and the trace.

    ``image`` and ``boxes`` are the first image and its boxes; ``more_images`` the sample's other
    images, each with its own boxes (a primitive's ``image=k`` argument picks one: :meth:`view`).
    ``perception``: the run's masks, depths and marking (vision_agents/perception.py), or None.

    ``record`` keeps at most ``executor.max_trace_entries`` entries and counts the rest;
    ``count_call`` stops a program after ``executor.max_primitive_calls`` calls.
    """

    def __init__(
        self,
        agent: VisionAgent,
        image: Image.Image,
        boxes: list[Box],
        config: ExecutorConfig,
        lazy: LazyPolicy | None = None,
        more_images: Sequence[tuple[Image.Image, list[Box]]] = (),
        perception: Perception | None = None,
    ) -> None:
        self.agent = agent
        self.perception = perception
        self.lazy = lazy  # relations are lazy under this policy (None: evaluated at once)
        self.relations: list[tuple[str, LazyEntry, int]] = []  # lazy relations handed out: question, entry, image
        self.image = image
        self.boxes = list(boxes)
        self.views: list[tuple[Image.Image, list[Box]]] = [
            (image, self.boxes),
            *((im, list(b)) for im, b in more_images),
        ]
        counts = tuple(len(b) for _, b in self.views) if len(self.views) > 1 else ()
        self.limits = Limits(n=len(self.boxes), max_question_chars=int(config.max_question_chars), counts=counts)
        self.max_calls = int(config.max_primitive_calls)
        self.max_entries = int(config.max_trace_entries)
        self.trace: list[dict[str, Any]] = []
        self.omitted = 0
        self.calls = 0
        self.seconds = 0.0  # time inside primitives (not program time)
        self._scope: str | None | object = _UNSET  # reply_scope, once known

    @property
    def several_images(self) -> bool:
        """Whether the sample has more than one image (trace entries then name the image they used)."""
        return len(self.views) > 1

    def view(self, image: int) -> tuple[Image.Image, list[Box]]:
        """Image ``image`` of the sample and its boxes (``image`` was checked by the primitive's bind)."""
        return self.views[image]

    def count_call(self, name: str) -> None:
        self.calls += 1
        if self.calls > self.max_calls:
            raise call_limit_error(name, self.max_calls)

    def reply_scope(self) -> str | None:
        """A key that names what the replies of ``reuse`` primitives depend on besides the request: the
        agent's memo of every image (:meth:`VisionAgent.memo_scope`) and the boxes. None: no such
        guarantee (the agent does not memoise, or its results carry gradients). Taken at the first
        call, for the whole run (the sandbox keeps replies under it from the start)."""
        if self._scope is _UNSET:
            parts: list[str] | None = []
            for image, boxes in self.views:
                scope = self.agent.memo_scope(image)
                if scope is None:
                    parts = None
                    break
                parts.append(f"{scope}|{_coordinates(boxes)}")
            self._scope = None if parts is None else "\n".join(parts)
        return self._scope  # type: ignore[return-value]

    def replay(self, known: KnownCall) -> None:
        """Put a known call on the run as the program's own call: counted (and limited) like any call,
        its trace entry recorded, its memo hits counted."""
        self.count_call(known.name)
        self.record(known.entry)
        count(memo_hits=known.memo_hits)

    def record(self, entry: dict[str, Any]) -> None:
        if len(self.trace) < self.max_entries:
            self.trace.append(entry)
        else:
            self.omitted += 1

    def agent_call(self, what: str, question: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` (a call into the agent); any failure becomes an AgentError naming the call."""
        try:
            return fn()
        except Exception as e:
            raise AgentError(
                f"vision agent '{self.agent.name}' failed in {what}({question[:200]!r}): {e.__class__.__name__}: "
                f"{str(e)[:500]}"
            ) from e

    def finished_trace(self) -> list[dict[str, Any]]:
        """The trace, with a marker entry at the end when entries were left out."""
        if not self.omitted:
            return self.trace
        marker = {
            "primitive": "truncated",
            "omitted": self.omitted,
            "message": f"{self.omitted} more primitive calls not recorded (executor.max_trace_entries = "
            f"{self.max_entries})",
        }
        return [*self.trace, marker]
