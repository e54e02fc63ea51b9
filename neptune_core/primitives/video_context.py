"""What the frame primitives run against: the frames of a video sample and its video agent.

The runner (runners/run_video.py) decodes the frames a program may see (the chosen chunks,
in time order), runs the detector on each, and hands the executor a :class:`FrameSet`; the
executor's :class:`VideoCallContext` carries it to the primitives' ``run`` (parent side).
Frame ``t`` of a program is ``frames.times[t]`` seconds into the video; the object variable
``x`` of a frame-level score indexes the boxes found in each frame on its own (the same ``x``
in two frames need not be the same object), padded with p = 0 up to the most boxes in a frame,
so ``exists``/``count`` over ``x`` mean "in that frame".

Helpers here are shared by the frame primitives (score_frames, query_frame, locate, clip,
query_video, choose): :func:`video_of` (a clear error on an image sample), the memoised
per-frame scores (:meth:`VideoCallContext.frame_scores`), frame indices and masks from a
program's arguments, and the soft first / last occurrence of an event.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from neptune_core.executor.guards import AgentError
from neptune_core.primitives.base import CallContext
from probabilistic_tensor import ProbabilisticTensor

if TYPE_CHECKING:
    from PIL import Image

    from neptune_core.config import ExecutorConfig
    from neptune_core.types import Box, Sample
    from vision_agents.base import VisionAgent
    from vision_agents.video_agents import VideoAgent

FRAME_VAR = "t"
OBJECT_VARS = ("x", "y")


@dataclass
class FrameSet:
    """The frames a program sees, in time order, and what was found in each.

    ``samples[k]``: a Sample standing for frame k (its image, its boxes and, in the synthetic
    world, its scene) for backends that read per-sample state (the scene oracle, ``gt`` boxes).
    ``spans``: the chosen chunks (seconds), for backends that take a clip as video.
    """

    times: list[float]
    images: list[Image.Image]
    boxes: list[list[Box]]
    samples: list[Sample] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)
    video: Any = None  # the VideoRef

    def __len__(self) -> int:
        return len(self.times)

    @property
    def max_boxes(self) -> int:
        return max((len(b) for b in self.boxes), default=0)

    def key_index(self) -> int:
        """The frame ``score``/``query`` see on a video sample: the middle one."""
        return (len(self.times) - 1) // 2


class VideoCallContext(CallContext):
    """A CallContext for a video sample: ``frames`` and the ``video_agent`` that perceives them.

    ``score``/``query`` see the key frame (:meth:`FrameSet.key_index`) with its boxes; the frame
    primitives see every frame. Per-frame scores are memoised per (question, arity).
    """

    def __init__(
        self,
        agent: VisionAgent,
        frames: FrameSet,
        video_agent: VideoAgent,
        config: ExecutorConfig,
    ) -> None:
        k = frames.key_index()
        super().__init__(agent, frames.images[k], frames.boxes[k], config)
        self.frames = frames
        self.video_agent = video_agent
        self._scores: dict[tuple[str, int], tuple[torch.Tensor, list[dict[str, Any]]]] = {}

    def frame_scores(self, question: str, arity: int) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """p(yes) per frame, shape ``(T,) + (N,) * arity`` (N = most boxes in a frame, padded with 0)."""
        key = (question, arity)
        if key not in self._scores:
            agent = self.video_agent
            out, infos = self.agent_call(
                "score_frames", question, lambda: agent.score_frames(self.frames, question, arity)
            )
            shape = (len(self.frames),) + (self.frames.max_boxes,) * arity
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape or len(infos) != len(self.frames):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else out.__class__.__name__
                raise AgentError(f"video agent '{agent.name}' returned {got} for score_frames(); expected {shape}")
            self._scores[key] = (out, infos)
        return self._scores[key]


def video_of(ctx: CallContext, primitive: str) -> VideoCallContext:
    """``ctx`` as a video context; a ValueError (the program's error) on an image sample."""
    if not isinstance(ctx, VideoCallContext):
        raise ValueError(f"{primitive}() needs a video sample; this sample is an image (use score/query)")
    if not len(ctx.frames):
        raise ValueError(f"{primitive}(): the video has no frames to look at")
    return ctx


def _weights(values: Any, primitive: str, what: str) -> list[float]:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in values):
        raise ValueError(f"{primitive}() {what} must hold probabilities in [0, 1]")
    return [float(v) for v in values]


def frame_argument(value: Any, primitive: str, what: str = "frame") -> int | list[float]:
    """A program's frame argument for a request: an int index, or (from a tensor over "t") its values."""
    if isinstance(value, ProbabilisticTensor):
        if value.vars != (FRAME_VAR,):
            raise ValueError(f"{primitive}() {what} tensor must be over the frame variable 't', got vars {value.vars}")
        if value.kind != "prob":
            raise TypeError(f"{primitive}() {what} tensor must hold probabilities, not a soft number")
        return [float(v) for v in value.data.detach().cpu().tolist()]
    if isinstance(value, list):  # a request checked again in the parent
        return _weights(value, primitive, what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{primitive}() {what} must be a frame index (int) or a tensor over 't', got {value!r:.80}")
    return value


def mask_argument(value: Any, primitive: str) -> list[float] | None:
    """A program's clip argument (None: every frame; a tensor over 't': the frames where it is > 0.5)."""
    if value is None:
        return None
    if isinstance(value, list):  # a request checked again in the parent
        return _weights(value, primitive, "clip")
    if not isinstance(value, ProbabilisticTensor) or value.vars != (FRAME_VAR,) or value.kind != "prob":
        raise TypeError(f"{primitive}() clip must be None or a tensor over the frame variable 't' (e.g. from clip())")
    return [float(v) for v in value.data.detach().cpu().tolist()]


def resolve_frame(video: VideoCallContext, frame: int | list[float], primitive: str) -> int:
    """The frame index a request names: its int (negative counts from the end), or its distribution's argmax."""
    n = len(video.frames)
    if isinstance(frame, list):
        weights = frame
        if len(weights) != n:
            raise ValueError(f"{primitive}() got a tensor over {len(weights)} frames; the video has {n}")
        return int(max(range(n), key=lambda i: weights[i]))
    k = int(frame)
    if not -n <= k < n:
        raise IndexError(f"{primitive}() frame {k} is out of range for {n} frames")
    return k % n


def frames_in(video: VideoCallContext, mask: list[float] | None, primitive: str) -> list[int]:
    """The frame indices a clip mask selects (None: all)."""
    n = len(video.frames)
    if mask is None:
        return list(range(n))
    if len(mask) != n:
        raise ValueError(f"{primitive}() got a clip over {len(mask)} frames; the video has {n}")
    chosen = [i for i, v in enumerate(mask) if v > 0.5]
    if not chosen:
        raise ValueError(f"{primitive}(): the clip holds no frame (every value of its mask is <= 0.5)")
    return chosen


def first_occurrence(p: torch.Tensor) -> torch.Tensor:
    """Soft first frame where an event holds: ``q_t = p_t * prod_{s<t} (1 - p_s)`` (differentiable)."""
    before = torch.cumprod(torch.cat([torch.ones(1, dtype=p.dtype), 1 - p[:-1]]), 0)
    return p * before


def last_occurrence(p: torch.Tensor) -> torch.Tensor:
    """Soft last frame where an event holds (first occurrence, reading the video backwards)."""
    return first_occurrence(p.flip(0)).flip(0)


def times_of(video: VideoCallContext, indices: list[int]) -> list[float]:
    return [round(video.frames.times[i], 3) for i in indices]


# ---- for the primitives' audits (static checks of a program's calls) ---------------------
def arg_of(call: ast.Call, pos: int, name: str) -> ast.expr | None:
    """The argument at position ``pos`` or keyword ``name`` of a call node (None: not given)."""
    if len(call.args) > pos:
        return call.args[pos]
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def audit_call(call: ast.Call, name: str, params: tuple[str, ...], required: int = 1) -> list[str]:
    """Problems common to every frame primitive: a missing question, unknown keywords, too many arguments."""
    where = f"line {call.lineno}"
    problems = []
    if arg_of(call, 0, params[0]) is None:
        problems.append(f"{where}: {name}(...) needs {params[0]}")
    if required > 1 and any(arg_of(call, i, p) is None for i, p in enumerate(params[:required])):
        problems.append(f"{where}: {name} needs ({', '.join(params[:required])})")
    extra = [kw.arg for kw in call.keywords if kw.arg not in params]
    if extra or len(call.args) > len(params):
        problems.append(f"{where}: {name} takes ({', '.join(params)}); got {extra or 'extra arguments'}")
    return problems


def audit_literal(call: ast.Call, name: str, pos: int, param: str, allowed: tuple[Any, ...]) -> list[str]:
    """A problem when argument ``param`` is given and is not one of the literal ``allowed`` values."""
    node = arg_of(call, pos, param)
    if node is None or (
        isinstance(node, ast.Constant) and node.value in allowed and type(node.value) is type(allowed[0])
    ):
        return []
    listed = ", ".join(repr(a) for a in allowed)
    return [f"line {call.lineno}: {name}'s {param} must be one of the literals {listed}, got {ast.unparse(node)}"]


__all__ = [
    "FRAME_VAR",
    "arg_of",
    "audit_call",
    "audit_literal",
    "OBJECT_VARS",
    "FrameSet",
    "VideoCallContext",
    "first_occurrence",
    "frame_argument",
    "frames_in",
    "last_occurrence",
    "mask_argument",
    "resolve_frame",
    "times_of",
    "video_of",
]
