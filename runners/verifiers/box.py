"""Box verification for referring expressions (NePTune's "+ verification").

The program picks a box; the VisionAgent is asked whether the box is what the whole
expression describes (``verify.box.question_template``, the box marked in red). When
p(yes) < ``accept_threshold`` the next box by the program's own probabilities is asked,
up to ``max_candidates`` boxes; the first accepted one becomes the answer. When none is
accepted the program's choice stands. Every step (box, program probability, p(yes),
accepted) is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neptune_core.executor import to_answer
from runners.verifiers import KEEP, Decision, Verifier, VerifyContext, box_distribution

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


def chosen_box(value: Any, n: int) -> int | None:
    """The box index a value picks (a distribution's argmax or an index), None if it picks none."""
    try:
        choice = to_answer(value)
    except ValueError:
        return None
    if isinstance(choice, str) and choice.lstrip("-").isdigit():
        choice = int(choice)
    if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < n:
        return None
    return choice


class BoxVerifier(Verifier):
    """Ask the VLM about the chosen box; move down the program's ranking while it says no."""

    name = "box"

    def __init__(self, accept_threshold: float = 0.5, max_candidates: int = 3, question_template: str = "") -> None:
        self.accept_threshold = accept_threshold
        self.max_candidates = max_candidates
        self.question_template = question_template or "Is the object in the red box {expression}?"

    @classmethod
    def from_config(cls, config: RunConfig) -> BoxVerifier:
        b = config.verify.box
        return cls(b.accept_threshold, b.max_candidates, b.question_template)

    def question(self, expression: str) -> str:
        return self.question_template.format(expression=" ".join(expression.split()).rstrip(" .?!"))

    def verify(self, ctx: VerifyContext, started: Any) -> Decision:
        n = len(ctx.boxes)
        chosen = chosen_box(ctx.value, n) if ctx.refexp else None
        if chosen is None:
            return Decision({"status": "not_applicable", "reason": "the answer is not a box choice"})
        dist = box_distribution(ctx.value, n)
        others = sorted((i for i in range(n) if i != chosen), key=lambda i: -dist[i]) if dist is not None else []
        order = [chosen, *others][: self.max_candidates]
        question = self.question(ctx.sample.question)
        steps: list[dict[str, Any]] = []
        accepted: int | None = None
        for idx in order:
            probs, _ = ctx.agent.score_with_info(ctx.image, [ctx.boxes[idx]], [question], 1)
            p = float(probs.reshape(-1)[0])
            ok = p >= self.accept_threshold
            steps.append(
                {
                    "candidate": idx,
                    "box": [round(float(v), 2) for v in ctx.boxes[idx]],
                    "program_p": None if dist is None else round(dist[idx], 4),
                    "p_yes": round(p, 4),
                    "accepted": ok,
                }
            )
            if ok:
                accepted = idx
                break
        record: dict[str, Any] = {"question": question, "threshold": self.accept_threshold, "steps": steps}
        if accepted == chosen:
            return Decision({**record, "status": "accepted", "chosen": chosen})
        if accepted is None:
            why = (
                "no other candidates (the program gave no scores)" if dist is None else f"none of {len(order)} accepted"
            )
            return Decision(
                {**record, "status": "none_accepted", "chosen": chosen, "reason": f"{why}; kept the program's choice"}
            )
        return Decision({**record, "status": "moved", "chosen": accepted, "from": chosen}, value=accepted)


__all__ = ["KEEP", "BoxVerifier", "chosen_box"]
