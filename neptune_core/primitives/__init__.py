"""The perception primitives programs call: ``score`` and ``query`` on images, and on videos the
frame primitives ``score_frames``, ``query_frame``, ``locate``, ``clip``, ``query_video`` and
``choose`` (video_context.py: the frames they see); caption, crop, depth join the same way.

Each primitive is declared ONCE, as a :class:`~neptune_core.primitives.base.Primitive` in its
own module here: its signature and docstring (the prompt's API section is generated from them,
code_generator/prompting.py), its argument checks (``bind``, run in the sandbox), its
parent-side implementation (``run``: the model call and the trace entry), what the program
gets back (``wrap``), the program auditor's static checks (``audit``, code_generator/checks.py)
and the HTML of its trace entry in the report (``render``, analysis/report.py).

Add a primitive: write ``neptune_core/primitives/<name>.py`` ending in
``NAME = Primitive(name="<name>", doc=..., returns=..., bind=..., run=..., wrap=...)`` and add one
line to :data:`_DECLARED` (a primitive of video samples also goes in :data:`VIDEO_PRIMITIVES`, so
the prompts of image tasks do not list it; with ``needs=...`` when only some runs offer it: the prompt
then lists it for those runs only, :func:`program_features`). Programs then call it by name (``score`` and ``query`` are also the
parameters of ``execute(score, query, n)``); a sample with several images or frames passes
``image=`` / ``frame=`` through ``bind`` like any other argument. Then refresh the prompt
snapshots (tests/test_prompts.py).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from neptune_core.errors import UnknownNameError
from neptune_core.registry import did_you_mean, import_target

if TYPE_CHECKING:
    from neptune_core.config import RunConfig
    from neptune_core.primitives.base import Primitive

# name -> "module:ATTRIBUTE", in the order the prompt lists them
_DECLARED: dict[str, str] = {
    "score": "neptune_core.primitives.score:SCORE",
    "query": "neptune_core.primitives.query:QUERY",
    "closer": "neptune_core.primitives.closer:CLOSER",  # needs a depth_model
    "score_frames": "neptune_core.primitives.score_frames:SCORE_FRAMES",
    "query_frame": "neptune_core.primitives.query_frame:QUERY_FRAME",
    "locate": "neptune_core.primitives.locate:LOCATE",
    "clip": "neptune_core.primitives.clip:CLIP",
    "query_video": "neptune_core.primitives.query_video:QUERY_VIDEO",
    "choose": "neptune_core.primitives.choose:CHOOSE",
}
# primitives that only work on video samples (listed only in the prompts of video tasks)
VIDEO_PRIMITIVES: frozenset[str] = frozenset({"score_frames", "query_frame", "locate", "clip", "query_video", "choose"})

# follow-up requests a primitive's value sends later (never callable by programs, not in the prompt)
_INTERNAL: dict[str, str] = {
    "score_pairs": "neptune_core.primitives.score:SCORE_PAIRS",  # a lazy relation's pairs
}

PRIMITIVE_NAMES: tuple[str, ...] = tuple(_DECLARED)
# the parameters of every program's execute(score, query, n), besides n
EXECUTE_PARAMETERS: tuple[str, ...] = ("score", "query")

_loaded: dict[str, Primitive] = {}
_internal: dict[str, Primitive] = {}  # the follow-up requests loaded so far
_lock = threading.Lock()


def all_primitives() -> dict[str, Primitive]:
    """Every declared primitive, by name, in declaration order (imported on first use)."""
    if len(_loaded) != len(_DECLARED):
        with _lock:
            for name, target in _DECLARED.items():
                if name not in _loaded:
                    _loaded[name] = import_target(target)
    return {name: _loaded[name] for name in _DECLARED}


def program_features(config: RunConfig) -> frozenset[str]:
    """What a run offers the primitives that need something (``Primitive.needs``): "depth" with a depth_model."""
    return frozenset({"depth"} if config.depth_model else ())


def offered_primitives(features: frozenset[str] = frozenset()) -> dict[str, Primitive]:
    """The primitives a run with ``features`` lists in its prompt (all of them may be called)."""
    return {name: p for name, p in all_primitives().items() if not p.needs or p.needs in features}


def get_primitive(name: str) -> Primitive:
    """The primitive (or internal follow-up request) called ``name``; an unknown name lists the known ones.
    Called for every primitive call: a loaded one is one dictionary lookup."""
    hit = _loaded.get(name) or _internal.get(name)
    if hit is not None:
        return hit
    if name in _INTERNAL:
        _internal[name] = import_target(_INTERNAL[name])
        return _internal[name]
    if name not in _DECLARED:
        known = list(_DECLARED)
        raise UnknownNameError(f"unknown primitive '{name}'{did_you_mean(name, known)}; known: {', '.join(known)}")
    return all_primitives()[name]


def render_entry(entry: object) -> str:
    """HTML of one trace entry: its primitive's ``render``, else a generic key/value line."""
    from analysis.report_assets import esc

    if not isinstance(entry, dict):
        return f'<span class="muted">{esc(entry)}</span>'
    name = entry.get("primitive")
    if name == "truncated":
        return f'<span class="muted">{esc(entry.get("message", "more calls not recorded"))}</span>'
    render = all_primitives()[name].render if isinstance(name, str) and name in _DECLARED else None
    if render is not None:
        return render(entry)
    fields = ", ".join(f"{esc(k)}={esc(v)}" for k, v in entry.items() if k != "primitive")
    return f'<span class="muted">{fields}</span>'


__all__ = [
    "EXECUTE_PARAMETERS",
    "PRIMITIVE_NAMES",
    "VIDEO_PRIMITIVES",
    "all_primitives",
    "get_primitive",
    "offered_primitives",
    "program_features",
    "render_entry",
]
