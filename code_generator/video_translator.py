"""Programs over frames for the synthetic video world's questions (``program_generator: "symbolic_video"``).

Each question of local_datasets/synthetic/video_questions.py carries a small structured program
(``{"op", "target", "options"}``); :func:`translate_video` writes it as a NePTune program that
asks only frame-level questions ("Is there a red cube?", "Is the red cube moving?", "Is the red
cube touching the blue sphere?", "Is there an object in the red box?") and composes them over
the frame variable "t" with locate / clip and the algebra. It never reads the answer: the
reference executor computes that from the annotation's events, the program from what the video
agent sees frame by frame, so the two agree only when perception and program are right.
The program returns the index of the chosen option.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neptune_core.errors import UserError
from neptune_core.types import Program, Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

OBJECT_NAMES = ["object"]  # what the detector looks for (every object of the world)

_PICK = "    return max(range(len(scores)), key=lambda i: scores[i].item())\n"


def _there(d: str) -> str:
    return json.dumps(f"Is there a {d}?")


def _moving(d: str) -> str:
    return json.dumps(f"Is the {d} moving?")


def _enter_first(p: dict[str, Any]) -> str:
    return (
        "    scores = []\n"
        "    firsts = []\n"
        "    for d in options:\n"
        '        there = score_frames("Is there a " + d + "?")\n'
        '        scores.append(~there[0] & there.exists("t"))  # absent at the start, present later: it enters\n'
        '        firsts.append(locate("Is there a " + d + "?", "first"))\n'
        "    # among the options that enter, the one whose entrance comes before every other's\n"
        "    for i in range(len(options)):\n"
        "        for j in range(len(options)):\n"
        "            if i != j:\n"
        '                earlier = firsts[i].contract(clip(firsts[j], "before"))\n'
        "                scores[i] = scores[i] & scores[j].implies(earlier)\n" + _PICK
    )


def _left_before(p: dict[str, Any]) -> str:
    return (
        f'    before = clip(locate({_there(p["target"])}, "first"), "before")  # frames before the target enters\n'
        "    scores = []\n"
        "    for d in options:\n"
        '        there = score_frames("Is there a " + d + "?")\n'
        "        # it was there, and only before the target came: it left before then\n"
        '        scores.append(there.exists("t") & (before | ~there).forall("t") & ~there[-1])\n' + _PICK
    )


def _moving_while(p: dict[str, Any]) -> str:
    return (
        f'    when = locate({_there(p["target"])}, "first")  # the frame the target enters\n'
        "    scores = []\n"
        "    for d in options:\n"
        '        scores.append(score_frames("Is the " + d + " moving?").contract(when))\n' + _PICK
    )


def _entered_after(p: dict[str, Any]) -> str:
    return (
        f'    after = clip(locate({_moving(p["target"])}, "first"), "after")  # once the target moves\n'
        "    scores = []\n"
        "    for d in options:\n"
        '        there = score_frames("Is there a " + d + "?")\n'
        '        came = ~there[0] & there.exists("t")\n'
        '        scores.append(came & locate("Is there a " + d + "?", "first").contract(after))\n' + _PICK
    )


def _why_moving(p: dict[str, Any]) -> str:
    target = p["target"]
    return (
        f'    start = clip(locate({_moving(target)}, "first"), "around", 2)  # when the target starts moving\n'
        "    scores = []\n"
        "    for d in options:\n"
        f'        touch = score_frames("Is the " + d + " touching the {target}?")\n'
        '        scores.append((touch & start).exists("t"))  # it touches the target just then: it hit it\n' + _PICK
    )


def _count_when(p: dict[str, Any]) -> str:
    return (
        f'    k = locate({_there(p["target"])}, "last").argmax()  # the last frame with the target\n'
        '    counts = score_frames("Is there an object in the red box?", 1).count("x")\n'
        "    c = round(counts[k].item())\n"
        "    return min(range(len(options)), key=lambda i: abs(int(options[i]) - c))\n"
    )


_BODIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "enter_first": _enter_first,
    "left_before": _left_before,
    "moving_while": _moving_while,
    "entered_after": _entered_after,
    "why_moving": _why_moving,
    "count_when": _count_when,
}


def translate_video(program: dict[str, Any]) -> str:
    """Python source of the program over frames for one synthetic video question."""
    op = program.get("op")
    if op not in _BODIES:
        raise ValueError(f"unknown video question program op {op!r}; known: {', '.join(_BODIES)}")
    options = json.dumps(list(program["options"]))
    return f"def execute(score, query, n):\n    options = {options}\n" + _BODIES[op](program)


def is_video_program(program: Any) -> bool:
    return isinstance(program, dict) and program.get("op") in _BODIES


class SymbolicVideoGenerator:
    """Translates each synthetic video question's structured program into a program over frames."""

    name = "symbolic_video"

    @classmethod
    def from_config(cls, config: RunConfig) -> SymbolicVideoGenerator:
        return cls()

    def check_samples(self, samples: list[Sample]) -> None:
        """Called once after loading: data without these programs fails before the first sample."""
        if samples and not any(is_video_program(s.program) for s in samples):
            raise UserError(
                f"none of the {len(samples)} samples has a synthetic video question program; program_generator "
                "'symbolic_video' needs dataset 'video_synthetic' (use program_generator 'llm' for other videos)"
            )

    def program_for(self, sample: Sample) -> Program:
        if not is_video_program(sample.program):
            raise UserError(
                f"sample {sample.id} has no synthetic video question program; program_generator 'symbolic_video' "
                "needs dataset 'video_synthetic' (use program_generator 'llm' for other videos)"
            )
        return Program(source=translate_video(sample.program), origin="symbolic", object_names=list(OBJECT_NAMES))


__all__ = ["SymbolicVideoGenerator", "is_video_program", "translate_video"]
