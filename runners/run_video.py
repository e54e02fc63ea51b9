"""Video question answering (NeXT-QA, the synthetic video world): the shared loop over frames.

One sample: open the video (frames decoded lazily by timestamp, neptune_core/video.py) ->
choose what to watch (VLAgent's long-video chunk selection, runners/chunk_selection.py) ->
program -> decode the chosen frames and run the detector on each -> execute (the frame
primitives see every frame, ``score``/``query`` the middle one) -> judge the multiple-choice
answer. The row holds every decision: ``video`` (the file, the chunks, each selection round's
captions and LLM votes, the frame times, the boxes per frame) next to the usual fields.

Frames, detections and the video agent's own caches are kept across the samples of one video
(questions about a video come one after another), in small LRU caches. The judge takes what the
program returned: a tensor over the options (``choose``), an option index, a letter, or an
option's text. Usage: ``python run.py --config configs/demo-video.json``.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from typing import Any

from analysis.normalize import answers_match
from local_datasets.multiple_choice import LETTERS
from neptune_core.config import RunConfig
from neptune_core.errors import UserError
from neptune_core.executor import Executor, to_answer
from neptune_core.executor.executor import ExecutionOutcome, _outcome
from neptune_core.executor.program import run_program
from neptune_core.primitives.video_context import FrameSet, VideoCallContext
from neptune_core.types import Box, ErrorRecord, Sample
from neptune_core.video import VideoError, VideoReader, probe
from probabilistic_tensor import ProbabilisticTensor
from runners.base import Runner, _ms, _timed_program
from runners.chunk_selection import ChunkSelector, Selection, program_times
from runners.outcomes import finalize_row, program_fields
from runners.row_guard import bound_row

CACHE_FRAMES = 512  # decoded frames kept (about 100 KB each at 240x160)


class VideoExecutor(Executor):
    """The executor with a video sample's frames: a :class:`VideoCallContext` instead of an image's."""

    def run_video(self, source: str, agent: Any, frames: FrameSet, video_agent: Any) -> ExecutionOutcome:
        from neptune_core.primitives import get_primitive

        ctx = VideoCallContext(agent, frames, video_agent, self.config)
        if self.isolation == "process":
            result = self.sandbox.run(source, ctx)
        else:
            result = run_program(
                source,
                len(ctx.boxes),
                self.config,
                self.semantics,
                lambda name, request, _s: get_primitive(name).call(ctx, request, trusted=True),
            )
        return _outcome(result, ctx)


def option_index(value: Any, options: list[str]) -> int:
    """The option a program's value picks: a tensor over the options (argmax), an index, a letter, or an option's text."""
    n = len(options)
    if isinstance(value, ProbabilisticTensor) and len(value.vars) == 1 and len(value) != n:
        raise ValueError(f"the program returned a tensor over {len(value)} values for {n} options")
    choice = value if isinstance(value, int) and not isinstance(value, bool) else to_answer(value)
    if isinstance(choice, str):
        text = choice.strip().strip(".").strip()
        hits = [i for i, o in enumerate(options) if answers_match(text, o)]
        if len(hits) == 1:  # an option's text (before digits and letters: options may be numbers)
            return hits[0]
        letter = re.fullmatch(r"\(?([a-z])\)?", text)
        if letter and LETTERS.index(letter.group(1).upper()) < n:
            return LETTERS.index(letter.group(1).upper())
        if not text.isdigit():
            raise ValueError(f"the program's answer {choice!r:.80} names none of the {n} options")
        choice = int(text)
    if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < n:
        raise ValueError(f"the program chose option {choice!r:.40}, but there are {n} options")
    return choice


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key: Any, make: Any) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class VideoRunner(Runner):
    """Multiple-choice video QA on the shared loop (see the module docstring)."""

    def __init__(self, config: RunConfig, **components: Any) -> None:
        selector = components.pop("selector", None)
        video_agent = components.pop("video_agent", None)
        super().__init__(config, **components)
        self.executor = VideoExecutor(config.executor, config.semantics)
        self._selector: ChunkSelector | None = selector
        self._video_agent = video_agent
        self._frames = _LRU(CACHE_FRAMES)
        self._detections = _LRU(CACHE_FRAMES)
        self._reader: VideoReader | None = None

    # ---- components ---------------------------------------------------------------------
    @property
    def video_agent(self) -> Any:
        if self._video_agent is None:
            from vision_agents.video_agents import build_video_agent

            self._video_agent = build_video_agent(self.agent.inner, self.config)
        return self._video_agent

    @property
    def selector(self) -> ChunkSelector:
        if self._selector is None:
            self._selector = ChunkSelector.from_config(self.config)
        return self._selector

    def _needs_selection(self, sample: Sample) -> bool:
        v = self.config.video
        if not v.chunk_selection or sample.video is None:
            return False
        ref = sample.video if sample.video.known else probe(sample.video)
        return len(ChunkSelector.chunks_of(ref.duration, v)) > 1

    def prepare(self, samples: Any = None, **kwargs: Any) -> list[Sample]:
        if self.config.verify.verifiers:
            raise UserError("verify.verifiers are not supported on video samples yet; remove the verify section")
        first = not self._prepared
        out = super().prepare(samples, **kwargs)
        if first and kwargs.get("check_models", True):
            _ = self.video_agent
            if self.config.video.chunk_selection and any(self._might_select(s) for s in out[:20]):
                self.selector.preflight()  # the captioner loads, every judge answers: before the first sample
        return out

    def _might_select(self, sample: Sample) -> bool:
        try:
            return self._needs_selection(sample)
        except VideoError:  # a missing or broken file is that sample's error, later
            return False

    def invocation_stats(self, processed: int) -> dict[str, Any]:
        stats = super().invocation_stats(processed)
        if self._selector is not None:
            stats["selection_llm_requests"] = self._selector.requests_sent
        return stats

    # ---- judging ------------------------------------------------------------------------
    def judge(self, sample: Sample, value: Any, boxes: list[Box]) -> tuple[Any, bool | None]:
        options = sample.meta.get("options")
        if not options:
            return super().judge(sample, value, boxes)
        index = option_index(value, list(options))
        gold = sample.meta.get("answer_index")
        return options[index], (None if gold is None else index == int(gold))

    # ---- frames ---------------------------------------------------------------------------
    def _open(self, sample: Sample) -> VideoReader:
        ref = probe(sample.video)
        if self._reader is None or self._reader.ref.path != ref.path:
            if self._reader is not None:
                self._reader.close()
            self._reader = VideoReader(ref, max_side=self.config.video.frame_max_side)
        return self._reader

    def _frame(self, reader: VideoReader, t: float) -> Any:
        return self._frames.get_or((reader.ref.path, round(t, 4)), lambda: reader.frame_at(t))

    def frame_sample(self, sample: Sample, t: float, image: Any) -> Sample:
        """The Sample standing for the frame at ``t``: its image and, in the synthetic world, its scene and boxes."""
        scene = boxes = None
        if isinstance(sample.scene, dict) and "frames" in sample.scene:
            from local_datasets.synthetic.video_world import frame_scene

            scene = frame_scene(sample.scene, t)
            boxes = [list(map(float, o["bbox"])) for o in scene["objects"]]
        return Sample(
            id=f"{sample.id}@{t:.3f}", question=sample.question, image=image, boxes=boxes, scene=scene, meta=sample.meta
        )

    def _select(self, sample: Sample, reader: VideoReader) -> Selection:
        if self._needs_selection(sample):
            return self.selector.select(sample, reader, lambda t, im: self.frame_sample(sample, t, im))
        v = self.config.video
        spans = ChunkSelector.chunks_of(reader.duration, v)
        record = {
            "duration": round(reader.duration, 3),
            "chunks": [[round(s, 3), round(e, 3)] for s, e in spans],
            "decision": "chunk selection off: frames over the whole video"
            if len(spans) > 1
            else "one chunk: the whole video",
        }
        return Selection(spans, program_times(spans, v.frames_per_chunk, v.max_frames), record)

    def _frameset(self, sample: Sample, reader: VideoReader, selection: Selection, names: list[str]) -> FrameSet:
        images = [self._frame(reader, t) for t in selection.times]
        samples = [self.frame_sample(sample, t, im) for t, im in zip(selection.times, images, strict=True)]
        boxes: list[list[Box]] = []
        for t, fs in zip(selection.times, samples, strict=True):
            if not names:
                boxes.append([])
                continue

            def detect(fs: Sample = fs) -> list[Box]:
                self.detector.begin_sample(fs)
                found = self.detector.detect(fs.image, names)
                return [[round(float(v), 2) for v in b] for b in found.boxes]

            boxes.append(self._detections.get_or((reader.ref.path, round(t, 4), tuple(names)), detect))
        return FrameSet(list(selection.times), images, boxes, samples, list(selection.spans), reader.ref)

    # ---- one sample -------------------------------------------------------------------------
    def _process(self, sample: Sample) -> dict[str, Any]:
        row = self.new_row(sample)
        timings: dict[str, float] = row["timings"]
        if sample.meta.get("options"):
            row["options"] = list(sample.meta["options"])
        t_total = time.perf_counter()
        ahead_ms = 0.0
        stage = "setup"
        try:
            stage = "video"
            if sample.video is None:
                raise ValueError(f"sample {sample.id} has no video")
            reader = self._open(sample)
            row["video"] = {**reader.ref.to_dict()}

            stage = "select"
            t0 = time.perf_counter()
            selection = self._select(sample, reader)
            timings["select"] = _ms(t0)
            row["video"]["selection"] = selection.record
            row["video"]["frames"] = [round(t, 3) for t in selection.times]

            stage = "program"
            pending = self._prefetched.pop(sample.id, None)
            program, timings["program"] = pending.result() if pending is not None else _timed_program(self, sample)
            ahead_ms = timings["program"] if pending is not None else 0.0
            row["program"] = program.source
            row["program_origin"] = program.origin
            if program.key:
                row["program_key"] = program.key
            row.update(program_fields(program))

            stage = "detect"
            t0 = time.perf_counter()
            frames = self._frameset(sample, reader, selection, list(program.object_names))
            timings["detect"] = _ms(t0)
            key = frames.key_index()
            row["boxes"] = frames.boxes[key]
            row["video"]["boxes"] = frames.boxes
            self.agent.begin_sample(frames.samples[key])

            stage = "execute"
            t0 = time.perf_counter()
            outcome = self.executor.run_video(program.source, self.agent, frames, self.video_agent)
            timings["execute"] = _ms(t0)
            row["trace"] = outcome.trace
            if outcome.error is not None:
                row["error"] = {**outcome.error.to_dict(), "stage": stage}
            else:
                stage = "judge"
                row["pred"], row["correct"] = self.judge(sample, outcome.value, frames.boxes[key])
        except Exception as exc:  # a bad sample is recorded and the run goes on
            row["error"] = {**ErrorRecord.from_exception(exc).to_dict(), "stage": stage}
            if isinstance(getattr(exc, "transient", None), bool):
                row["error"]["transient"] = exc.transient  # type: ignore[attr-defined]
        timings["total"] = round(_ms(t_total) + ahead_ms, 3)
        return finalize_row(bound_row(row, self.config.executor.max_row_bytes))

    def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return super().run(*args, **kwargs)
        finally:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


__all__ = ["VideoExecutor", "VideoRunner", "option_index"]
