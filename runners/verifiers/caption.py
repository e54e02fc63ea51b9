"""VLAgent's caption verifier.

Image questions. Triggered when the program's confidence is below
``verify.caption.confidence_threshold`` (see ``CaptionVerifyConfig``). The captioner
describes the image and the LLM says whether the caption settles the question and what
answer it implies; these two steps do not depend on the program, so with
``concurrent: true`` they run while the program is generated and executed. Then
VLAgent's rule: no clue in the caption -> keep; the caption's answer agrees -> keep
(consistent); it disagrees -> the LLM is asked for the explicit words of the caption
that support it, and the answer is replaced only when it quotes words that really are in
the caption; otherwise keep.

Referring expressions (VLAgent's HC-RefLOCO procedure). The program's top
``max_candidates`` boxes are captioned; the LLM names the candidate whose caption best
matches the description (none: verification is skipped); if the prediction overlaps it
(IoU >= ``overlap_iou``) it is kept; otherwise the LLM rates both captions against the
description (0-10) and the prediction moves only when the candidate scores at least
``min_score_gap`` higher. These steps need the boxes and the program's scores, so they
run after execution.

The row's ``verify.caption`` holds the status, the reason, the caption(s), the LLM's
verdicts and the timings of each step.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from PIL import Image

from analysis.normalize import answers_match
from neptune_core.executor import to_answer
from neptune_core.types import Sample, box_iou
from runners.verifiers import Decision, Verifier, VerifyContext, box_distribution, confidence
from runners.verifiers import llm_verdict as llm
from runners.verifiers.box import chosen_box
from vision_agents.prompting import normalize_answer

if TYPE_CHECKING:
    from code_generator.llm_client import ChatClient
    from neptune_core.config import RunConfig
    from neptune_core.verify_config import CaptionVerifyConfig
    from vision_agents.captioners import Captioner


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def quoted_in(clue: str, caption: str) -> bool:
    """Whether the quoted clue's words occur, in order and adjacent, in the caption."""
    c = _words(clue)
    return bool(c) and f" {c} " in f" {_words(caption)} "


class CaptionVerifier(Verifier):
    """See the module docstring."""

    name = "caption"

    def __init__(self, captioner: Captioner, client: ChatClient, cfg: CaptionVerifyConfig) -> None:
        self.captioner = captioner
        self.client = client
        self.cfg = cfg

    @classmethod
    def from_config(cls, config: RunConfig) -> CaptionVerifier:
        from runners.verifiers.llm_verdict import build_client
        from vision_agents import build_captioner

        return cls(build_captioner(config), build_client(config), config.verify.caption)

    def preflight(self) -> None:
        self.captioner.preflight()

    # ---- the program-independent part (may run concurrently) ---------------------------
    def look(self, sample: Sample, image: Image.Image) -> dict[str, Any]:
        """Caption the image and ask the LLM what the caption implies for the question."""
        t0 = time.perf_counter()
        caption = self.captioner.caption(image, sample=sample)
        t1 = time.perf_counter()
        out: dict[str, Any] = {"caption": caption}
        try:
            out["verdict"] = llm.caption_answer(self.client, caption, sample.question)
        except llm.VerdictError as e:
            out["verdict_error"] = str(e)
        out["timings"] = {"caption_ms": _ms(t0, t1), "llm_ms": _ms(t1, time.perf_counter())}
        return out

    def start(self, sample: Sample, image: Image.Image, pool: ThreadPoolExecutor, refexp: bool) -> Any:
        if refexp or not self.cfg.concurrent:
            return None
        return pool.submit(self.look, sample, image)

    # ---- the decision --------------------------------------------------------------------
    def _trigger(self, conf: float | None) -> str | None:
        """Why verification is skipped, or None when it runs."""
        thr = self.cfg.confidence_threshold
        if conf is None:
            return "the answer has no soft value" if self.cfg.when_no_confidence == "skip" else None
        return f"confident ({conf:.3f} >= {thr})" if thr < 1.0 and conf >= thr else None

    def verify(self, ctx: VerifyContext, started: Any) -> Decision:
        if ctx.refexp:
            return self.verify_refexp(ctx)
        conf = confidence(ctx.value, len(ctx.boxes))
        record: dict[str, Any] = {"confidence": conf, "threshold": self.cfg.confidence_threshold}
        skip = self._trigger(conf)
        if skip is not None:
            if isinstance(started, Future):
                started.cancel()
            return Decision({**record, "status": "skipped", "reason": skip, "concurrent": started is not None})
        look = started.result() if isinstance(started, Future) else self.look(ctx.sample, ctx.image)
        record.update(look, concurrent=started is not None)
        answer = str(to_answer(ctx.value))
        record["answer_before"] = answer
        if "verdict" not in look:
            return Decision({**record, "status": "kept", "reason": f"unusable LLM verdict: {look['verdict_error']}"})
        verdict = look["verdict"]
        implied = normalize_answer(verdict["answer"])
        if not verdict["settles"] or not implied:
            return Decision({**record, "status": "kept", "reason": "the caption does not settle the question"})
        if answers_match(answer, implied):
            return Decision({**record, "status": "kept", "reason": "the caption agrees with the answer"})
        t0 = time.perf_counter()
        try:
            clue = llm.explicit_clue(self.client, look["caption"], ctx.sample.question, answer, implied)
        except llm.VerdictError as e:
            return Decision({**record, "status": "kept", "reason": f"unusable LLM verdict on the clue: {e}"})
        record["clue"] = clue
        record["timings"] = {**record.get("timings", {}), "clue_llm_ms": _ms(t0, time.perf_counter())}
        if not clue["explicit"]:
            return Decision({**record, "status": "kept", "reason": "the caption has no explicit clue for its answer"})
        if not quoted_in(clue["clue"], look["caption"]):
            return Decision({**record, "status": "kept", "reason": "the quoted clue is not in the caption"})
        return Decision(
            {**record, "status": "replaced", "answer_after": implied, "reason": "explicit clue in the caption"},
            value=implied,
        )

    def verify_refexp(self, ctx: VerifyContext) -> Decision:
        n = len(ctx.boxes)
        chosen = chosen_box(ctx.value, n)
        if chosen is None:
            return Decision({"status": "not_applicable", "reason": "the answer is not a box choice"})
        dist = box_distribution(ctx.value, n)
        conf = None if dist is None else max(dist)
        record: dict[str, Any] = {"confidence": conf, "threshold": self.cfg.confidence_threshold, "chosen": chosen}
        skip = self._trigger(conf)
        if skip is not None:
            return Decision({**record, "status": "skipped", "reason": skip})
        others = sorted((i for i in range(n) if i != chosen), key=lambda i: -dist[i]) if dist is not None else []
        candidates = [chosen, *others][: self.cfg.max_candidates]
        t0 = time.perf_counter()
        captions = {i: self.captioner.caption(ctx.image, ctx.boxes[i], sample=ctx.sample) for i in candidates}
        t1 = time.perf_counter()
        record["captions"] = {str(i): c for i, c in captions.items()}
        timings = {"caption_ms": _ms(t0, t1)}
        record["timings"] = timings
        description = ctx.sample.question
        try:
            best = llm.best_candidate(self.client, description, captions)
        except llm.VerdictError as e:
            return Decision({**record, "status": "kept", "reason": f"unusable LLM verdict: {e}"})
        timings["match_llm_ms"] = _ms(t1, time.perf_counter())
        record["match"] = best
        if best["best"] is None:
            return Decision({**record, "status": "skipped", "reason": "no candidate's caption matches the description"})
        target = int(best["best"])
        overlap = box_iou(ctx.boxes[chosen], ctx.boxes[target])
        record["overlap"] = round(overlap, 4)
        if overlap >= self.cfg.overlap_iou:
            return Decision(
                {**record, "status": "kept", "reason": "the prediction overlaps the best-matching candidate"}
            )
        t2 = time.perf_counter()
        try:
            scores = llm.compare_alignment(self.client, description, captions[chosen], captions[target])
        except llm.VerdictError as e:
            return Decision({**record, "status": "kept", "reason": f"unusable LLM verdict on the comparison: {e}"})
        timings["compare_llm_ms"] = _ms(t2, time.perf_counter())
        record["comparison"] = scores
        gap = scores["candidate"] - scores["predicted"]
        if gap >= self.cfg.min_score_gap:
            return Decision(
                {**record, "status": "moved", "from": chosen, "to": target, "reason": f"aligns {gap:g} points better"},
                value=target,
            )
        return Decision({**record, "status": "kept", "reason": f"the candidate is not clearly better (gap {gap:g})"})


def _ms(t0: float, t1: float) -> float:
    return round((t1 - t0) * 1000.0, 3)
