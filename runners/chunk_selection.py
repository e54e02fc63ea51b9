"""VLAgent's long-video optimisation (section 2.2, Appendix B / Figure 7): which parts of a video to watch.

For a video of ``l`` seconds, with at most ``f`` frames per model call (``video.frames_per_chunk``)
and a wanted rate of at least ``v`` fps (``video.min_fps``), the video is cut into
``ceil(v * l / f)`` equal chunks (neptune_core.video.chunk_spans). When there is more than one:

1. sample ``f`` frames per chunk (round r puts them at phase 1/2, 1/4, 3/4, ... of their slots, so
   every round sees new frames), caption them with the configured captioner (the ``captioner``
   registry of vision_agents/captioners.py), one caption per chunk;
2. ask each LLM of ``video.select_models`` (one, or an ensemble) how relevant each chunk is to the
   question (a JSON list of numbers in [0, 1]); a chunk's score is the mean of every vote so far;
3. keep the chunks scoring at least ``video.relevance_threshold``; when none does, or every one
   does (the whole video would have to be watched), resample and ask again, at most
   ``video.max_rounds`` rounds; then take the best-scoring chunk (none stood out) or all of them;
4. the program sees ``f`` frames of each chosen chunk, in time order (at most ``video.max_frames``).

Every decision lands in the row (``row["video"]["selection"]``): the chunks, each round's frame
times, captions, each LLM's reply and scores, the verdict, and what was chosen and why. LLM
requests that fail for a transient reason make the sample's error transient (redone next run);
replies that never parse fall back to the whole video, and the row says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neptune_core.video import chunk_spans, phase_for_round, uniform_times

if TYPE_CHECKING:
    from PIL import Image

    from code_generator.llm_client import ChatClient
    from neptune_core.config import RunConfig
    from neptune_core.types import Sample
    from neptune_core.video import VideoReader
    from neptune_core.video_config import VideoConfig
    from vision_agents.captioners import Captioner

SYSTEM = (
    "You help answer a question about a long video. The video is cut into numbered chunks, and each "
    "chunk is described by captions of a few of its frames. Judge how relevant each chunk is to "
    "answering the question: 1 = needed, 0 = not needed. Reply with one JSON object and nothing else: "
    '{"relevance": [one number between 0 and 1 per chunk, in chunk order]}'
)
MAX_CAPTION_CHARS = 400  # per frame caption, in the prompt and the row


class SelectionError(RuntimeError):
    """No LLM could be asked (every request failed); ``transient`` as in code_generator.llm_client.LLMError."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class Selection:
    """The chosen chunks (seconds, time order), the frame times the program sees, and the record for the row."""

    spans: list[tuple[float, float]]
    times: list[float]
    record: dict[str, Any] = field(default_factory=dict)


def program_times(spans: list[tuple[float, float]], frames_per_chunk: int, max_frames: int) -> list[float]:
    """``frames_per_chunk`` evenly spread frames per chosen chunk, in time order, thinned evenly to ``max_frames``."""
    times = [t for s, e in sorted(spans) for t in uniform_times(s, e, frames_per_chunk)]
    if len(times) > max_frames:
        step = len(times) / max_frames
        times = [times[int((k + 0.5) * step)] for k in range(max_frames)]
    return times


def parse_relevance(reply: str, n: int) -> list[float]:
    """The relevance vector in an LLM reply: ``{"relevance": [...]}`` (numbers; 0-10 scales are rescaled),
    or ``{"chunks": [1, 3]}`` (the relevant chunk numbers). ValueError when the reply has neither."""
    match = re.search(r"\{.*\}", reply, re.S)
    if match is None:
        raise ValueError("no JSON object in the reply")
    obj = json.loads(match.group(0))
    if not isinstance(obj, dict):
        raise ValueError("the reply's JSON is not an object")
    if isinstance(obj.get("relevance"), list):
        values = obj["relevance"]
        if len(values) != n or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"'relevance' must list {n} numbers, got {values!r:.120}")
        scale = 10.0 if max(values, default=0) > 1 else 1.0
        return [min(1.0, max(0.0, float(v) / scale)) for v in values]
    if isinstance(obj.get("chunks"), list):
        chosen = {int(c) for c in obj["chunks"] if isinstance(c, int) and not isinstance(c, bool)}
        return [1.0 if c + 1 in chosen else 0.0 for c in range(n)]
    raise ValueError("the reply has neither 'relevance' nor 'chunks'")


def _caption_text(captions: list[tuple[float, str]]) -> str:
    parts, last = [], None
    for t, cap in captions:
        cap = " ".join(cap.split())[:MAX_CAPTION_CHARS]
        parts.append(f"{t:.1f}s: " + ("(same as before)" if cap == last else cap))
        last = cap
    return " | ".join(parts)


class ChunkSelector:
    """Chooses the chunks of a long video to watch (see the module docstring)."""

    def __init__(self, config: VideoConfig, captioner: Captioner, judges: list[ChatClient]) -> None:
        if not judges:
            raise ValueError("chunk selection needs at least one LLM")
        self.config = config
        self.captioner = captioner
        self.judges = judges
        self.requests_sent = 0

    @classmethod
    def from_config(cls, config: RunConfig) -> ChunkSelector:
        """The captioner (``video.captioner``) and one chat client per LLM of ``video.select_models``."""
        from code_generator.llm_client import ChatClient, RetryPolicy
        from code_generator.providers import load_dotenv_file, resolve_endpoint
        from neptune_core.config import replace_config
        from vision_agents import CAPTIONERS

        v = config.video
        caption_config = replace_config(
            config,
            {
                "verify.caption.captioner": v.captioner,
                "verify.caption.captioner_model": v.captioner_model,
                "verify.caption.captioner_base_url": v.captioner_base_url,
            },
        )
        captioner = CAPTIONERS.get(v.captioner).from_config(caption_config)
        load_dotenv_file()
        endpoint = resolve_endpoint(
            v.select_provider or config.code_gen_provider, v.select_base_url or config.code_gen_base_url
        )
        models = list(v.select_models) or [config.code_gen_model_name]
        policy = RetryPolicy(config.code_gen_http_retries, config.code_gen_backoff_s, config.code_gen_max_backoff_s)
        judges = [
            ChatClient(endpoint, m, temperature=0.0, max_tokens=512, timeout_s=config.code_gen_timeout_s, policy=policy)
            for m in models
        ]
        return cls(v, captioner, judges)

    @staticmethod
    def chunks_of(duration: float, config: VideoConfig) -> list[tuple[float, float]]:
        """VLAgent's chunks of a video of ``duration`` seconds under ``config`` (video section)."""
        return chunk_spans(duration, config.frames_per_chunk, config.min_fps)

    def chunks(self, duration: float) -> list[tuple[float, float]]:
        return self.chunks_of(duration, self.config)

    def preflight(self) -> None:
        """The captioner loads and every LLM endpoint answers (one cheap request each)."""
        from neptune_core.endpoints import EndpointCheck, check_endpoint

        self.captioner.preflight()
        for judge in self.judges:
            check_endpoint(
                EndpointCheck(
                    what="chunk-selection LLM (video.select_models)",
                    base_url=judge.endpoint.base_url,
                    api_key=judge.endpoint.api_key,
                    model=judge.model,
                    url_setting="video.select_base_url",
                    model_setting="video.select_models",
                    key_hint="set the provider's key (environment or .env)",
                )
            )

    # ---- one video ------------------------------------------------------------------------------
    def _caption_chunk(
        self, reader: VideoReader, span: tuple[float, float], phase: float, frame_sample: Callable[[float, Any], Any]
    ) -> tuple[list[float], str]:
        times = uniform_times(span[0], span[1], self.config.frames_per_chunk, phase)
        images: list[Image.Image] = reader.frames_at(times)
        captions = [
            (t, self.captioner.caption(im, sample=frame_sample(t, im))) for t, im in zip(times, images, strict=True)
        ]
        return [round(t, 3) for t in times], _caption_text(captions)

    def _prompt(self, question: str, spans: list[tuple[float, float]], captions: list[str]) -> list[dict[str, str]]:
        chunks = "\n".join(
            f"Chunk {i + 1} ({s:.1f}-{e:.1f} s): {c}" for i, ((s, e), c) in enumerate(zip(spans, captions, strict=True))
        )
        user = f"Question: {question}\n\n{chunks}\n\nReply with the JSON object for these {len(spans)} chunks."
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    def _votes(self, messages: list[dict[str, str]], n: int) -> list[dict[str, Any]]:
        from code_generator.llm_client import LLMError

        votes = []
        for judge in self.judges:
            vote: dict[str, Any] = {"model": judge.model}
            try:
                self.requests_sent += 1
                reply = judge.complete(messages)
            except LLMError as e:
                vote.update(error=str(e)[:500], transient=bool(e.transient))
            else:
                vote["reply"] = reply[:2000]
                try:
                    vote["relevance"] = [round(v, 4) for v in parse_relevance(reply, n)]
                except (ValueError, TypeError) as e:
                    vote["error"] = f"unusable reply: {e}"[:500]
            votes.append(vote)
        return votes

    def select(self, sample: Sample, reader: VideoReader, frame_sample: Callable[[float, Any], Any]) -> Selection:
        """The chunks of ``reader``'s video to watch for ``sample``'s question (``frame_sample(t, image)``: the
        Sample standing for one frame, for captioners that read annotations)."""
        cfg = self.config
        spans = self.chunks(reader.duration)
        record: dict[str, Any] = {
            "duration": round(reader.duration, 3),
            "frames_per_chunk": cfg.frames_per_chunk,
            "min_fps": cfg.min_fps,
            "chunks": [[round(s, 3), round(e, 3)] for s, e in spans],
            "rounds": [],
        }
        n = len(spans)
        if n == 1:
            record.update(chosen=[0], decision="one chunk: the whole video")
            return Selection(spans, program_times(spans, cfg.frames_per_chunk, cfg.max_frames), record)
        totals, counts = [0.0] * n, [0] * n
        chosen: list[int] = []
        verdict = ""
        for r in range(cfg.max_rounds):
            phase = phase_for_round(r)
            rnd: dict[str, Any] = {"round": r + 1, "phase": phase, "frames": [], "captions": []}
            for span in spans:
                times, caption = self._caption_chunk(reader, span, phase, frame_sample)
                rnd["frames"].append(times)
                rnd["captions"].append(caption)
            rnd["votes"] = self._votes(self._prompt(sample.question, spans, rnd["captions"]), n)
            usable = [v["relevance"] for v in rnd["votes"] if "relevance" in v]
            for vec in usable:
                for c, value in enumerate(vec):
                    totals[c] += value
                    counts[c] += 1
            record["rounds"].append(rnd)
            if not usable:
                rnd["verdict"] = "no usable reply"
                continue
            scores = [totals[c] / counts[c] if counts[c] else 0.0 for c in range(n)]
            rnd["scores"] = [round(s, 4) for s in scores]
            chosen = [c for c in range(n) if scores[c] >= cfg.relevance_threshold]
            verdict = "chosen" if 0 < len(chosen) < n else ("none relevant" if not chosen else "whole video")
            rnd["verdict"] = verdict
            if verdict == "chosen":
                break
        if not any(counts):
            errors = [v for rnd in record["rounds"] for v in rnd["votes"]]
            if errors and all(v.get("transient") for v in errors):
                raise SelectionError(
                    f"chunk selection: every LLM request failed ({errors[-1].get('error', '')[:200]})", transient=True
                )
            chosen = list(range(n))
            record["fallback"] = "no LLM reply could be used in any round: the whole video"
            record["decision"] = record["fallback"]
        else:
            scores = [totals[c] / counts[c] if counts[c] else 0.0 for c in range(n)]
            record["scores"] = [round(s, 4) for s in scores]
            if verdict == "chosen":
                record["decision"] = f"chunks scoring >= {cfg.relevance_threshold:g} in round {len(record['rounds'])}"
            elif verdict == "none relevant":
                chosen = [max(range(n), key=lambda c: scores[c])]
                record["decision"] = f"no chunk stood out in {cfg.max_rounds} rounds: the best-scoring one"
            else:
                chosen = list(range(n))
                record["decision"] = f"every chunk relevant after {len(record['rounds'])} rounds: the whole video"
        record["chosen"] = sorted(chosen)
        picked = [spans[c] for c in sorted(chosen)]
        return Selection(picked, program_times(picked, cfg.frames_per_chunk, cfg.max_frames), record)


__all__ = ["ChunkSelector", "Selection", "SelectionError", "parse_relevance", "program_times"]
