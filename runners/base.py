"""The one run loop every task shares: load -> program -> detect -> execute -> record.

A task differs from another only by its config, its loader, its prompts, or by
overriding one method here (usually :meth:`Runner.judge`, which turns a program's
value into a prediction and decides whether it is correct).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from analysis.normalize import answers_match
from analysis.summary import summarize
from neptune_core.config import RunConfig
from neptune_core.executor import Executor, to_answer
from neptune_core.types import ErrorRecord, Program, Sample
from probabilistic_tensor import LazyPolicy
from runners.ordering import group_by_image
from runners.results import ResultsWriter, read_results
from runners.rundir import prepare_run_dir
from runners.verifiers import VerifyStage
from vision_agents import build_detector, build_vision_agent
from vision_agents.base import Detector, MemoizedAgent, VisionAgent
from vision_agents.calls import counting
from vision_agents.detection_cache import CachedDetector, detector_settings

log = logging.getLogger(__name__)


class Runner:
    """Runs one config over its dataset and writes results.jsonl + summary.json.

    Components are built from the config's registries unless passed in (tests pass fakes).
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        agent: VisionAgent | None = None,
        detector: Detector | None = None,
        generator: Any = None,
        verify: VerifyStage | None = None,
    ) -> None:
        self.config = config
        self._agent = agent
        self._detector = detector
        self._generator = generator
        self._verify = verify
        lazy = LazyPolicy(config.calls.mass_threshold) if config.calls.lazy_relations else None
        self.executor = Executor(config.executor, config.semantics, lazy=lazy)
        self.config_hash = config.config_hash()
        self.samples: list[Sample] | None = None  # the samples of the last run()
        self._prefetched: dict[str, Program] = {}  # programs generated ahead by process_all
        self._pending: dict[str, Any] = {}  # verifier work started ahead by process_all

    # ---- components, built lazily (model loading happens on first use) ------------
    @property
    def agent(self) -> MemoizedAgent:
        if not isinstance(self._agent, MemoizedAgent):
            inner = self._agent or build_vision_agent(self.config)
            self._agent = MemoizedAgent(inner, images=self.config.calls.memo_images)
        return self._agent

    @property
    def detector(self) -> Detector:
        if not isinstance(self._detector, CachedDetector):
            inner = self._detector or build_detector(self.config)
            cfg = self.config
            self._detector = CachedDetector(
                inner, images=cfg.calls.detection_cache_images, settings=detector_settings(cfg)
            )
        return self._detector

    @property
    def generator(self) -> Any:
        if self._generator is None:
            from code_generator import build_generator

            self._generator = build_generator(self.config)
        return self._generator

    @property
    def verify(self) -> VerifyStage:
        """The verify stage (runners/verifiers): output verifiers and ensemble member evaluation."""
        if self._verify is None:
            self._verify = VerifyStage.from_config(self.config)
        return self._verify

    def load_samples(self) -> list[Sample]:
        from local_datasets import load_samples

        return load_samples(self.config)

    # ---- one sample -----------------------------------------------------------------
    def judge(self, sample: Sample, value: Any, boxes: list[list[float]]) -> tuple[Any, bool | None]:
        """Turn the program's returned value into (prediction, correct). VQA: answer strings."""
        pred = str(to_answer(value))
        gold = sample.answer
        return pred, (None if gold is None else answers_match(pred, str(gold)))

    def process(self, sample: Sample) -> dict[str, Any]:
        """Run one sample end to end; any failure is recorded on its line, never raised.

        Uses the sample's program if :meth:`process_all` generated it ahead, else generates it.
        The row's ``model_calls`` counts the model calls the sample caused (vision_agents/calls.py).
        """
        with counting() as calls:
            row = self._process(sample)
        row["model_calls"] = calls.to_dict()
        return row

    def _process(self, sample: Sample) -> dict[str, Any]:
        timings: dict[str, float] = {}
        row: dict[str, Any] = {
            "id": sample.id,
            "question": sample.question,
            "gold": sample.answer,
            "pred": None,
            "correct": False if sample.answer is not None else None,
            "family": sample.family,
            "functions": sample.meta.get("functions", []),
            "program": None,
            "program_origin": None,
            "boxes": None,
            "error": None,
            "trace": [],
            "timings": timings,
            "config_hash": self.config_hash,
        }
        t_total = time.perf_counter()
        stage = "setup"
        try:
            stage = "image"
            image = sample.load_image()
            self.agent.begin_sample(sample)
            self.detector.begin_sample(sample)
            # verifiers' own work (e.g. captioning) runs beside program generation and execution
            pending = self._pending.pop(sample.id) if sample.id in self._pending else self.verify.start(sample, image)

            stage = "program"
            program = self._prefetched.pop(sample.id, None)
            if program is None:
                t0 = time.perf_counter()
                program = self.generator.program_for(sample)
                timings["program"] = _ms(t0)
            else:
                timings["program"] = float(program.info.get("prefetch_ms", 0.0))
            row["program"] = program.source
            row["program_origin"] = program.origin
            if program.key:
                row["program_key"] = program.key

            stage = "detect"
            t0 = time.perf_counter()
            detection = self.detector.detect(image, program.object_names)
            timings["detect"] = _ms(t0)
            boxes = [[round(float(v), 2) for v in b] for b in detection.boxes]
            row["boxes"] = boxes
            if detection.info:  # e.g. each ensemble member's boxes
                row["detection"] = detection.info

            stage = "execute"
            t0 = time.perf_counter()
            outcome = self.executor.run(program.source, self.agent, image, boxes)
            timings["execute"] = _ms(t0)
            row["trace"] = outcome.trace
            if outcome.error is not None:
                row["error"] = {**outcome.error.to_dict(), "stage": stage}
            else:
                stage = "judge"
                row["pred"], row["correct"] = self.judge(sample, outcome.value, boxes)
                stage = "verify"
                self.verify.finish(self, pending, sample, image, program, outcome.value, boxes, row)
        except Exception as exc:  # a bad sample is recorded and the run goes on
            row["error"] = {**ErrorRecord.from_exception(exc).to_dict(), "stage": stage}
        timings["total"] = _ms(t_total)
        return row

    def process_all(self, samples: list[Sample]) -> Iterator[dict[str, Any]]:
        """Result rows for ``samples``, in order.

        When the generator can generate many programs at once (``programs_for``, e.g. the LLM
        generator with ``code_gen_concurrency`` requests in flight), the programs of the next
        chunk of samples are generated together first; each row still records its own path.
        """
        many = getattr(self.generator, "programs_for", None)
        chunk = max(1, 4 * self.config.code_gen_concurrency) if many is not None else 1
        for start in range(0, len(samples), chunk):
            part = samples[start : start + chunk]
            if self.verify.active:  # start it before the chunk's programs are generated
                for sample in part:
                    try:
                        self._pending[sample.id] = self.verify.start(sample, sample.load_image())
                    except Exception:  # process() retries and records the error on the sample's row
                        log.debug("verify stage could not start for %s", sample.id, exc_info=True)
            if many is not None and len(part) > 1:
                t0 = time.perf_counter()
                try:
                    programs = list(many(part))
                except Exception as exc:  # each sample then generates, and records, its own
                    log.warning(
                        "generating %d programs together failed (%s); one by one instead", len(part), exc, exc_info=True
                    )
                else:
                    for sample, program in zip(part, programs, strict=True):
                        program.info["prefetch_ms"] = round(_ms(t0) / len(part), 3)
                        self._prefetched[sample.id] = program
            for sample in part:
                yield self.process(sample)
            self._prefetched.clear()
            self._pending.clear()

    # ---- the loop ---------------------------------------------------------------------
    def run(self, run_dir: Path | None = None, samples: Iterable[Sample] | None = None) -> dict[str, Any]:
        """Process every sample not yet in ``run_dir/results.jsonl``; write and return the summary."""
        run_dir = run_dir or prepare_run_dir(self.config)
        results_path = run_dir / "results.jsonl"
        # build every component first, so a bad name or a missing key fails before any work
        _ = (self.generator, self.detector, self.agent)
        self.verify.preflight()
        samples = list(samples) if samples is not None else self.load_samples()
        self.samples = samples
        with ResultsWriter(results_path) as writer:
            todo = [s for s in samples if s.id not in writer.done_ids]
            if self.config.calls.group_by_image:  # an image's questions share its memo and detections
                todo = group_by_image(todo)
            bar = tqdm(
                desc=f"{self.config.dataset}",
                unit="q",
                dynamic_ncols=True,
                initial=len(samples) - len(todo),
                total=len(samples),
            )
            for row in self.process_all(todo):
                writer.write(row)
                bar.update(1)
            bar.close()
        return finish_run(run_dir, [s.id for s in samples])


def finish_run(run_dir: Path, sample_ids: list[str] | None = None) -> dict[str, Any]:
    """Summarise ``run_dir/results.jsonl`` (restricted to ``sample_ids`` if given) into summary.json."""
    rows, _ = read_results(run_dir / "results.jsonl")
    if sample_ids is not None:
        wanted = set(sample_ids)
        rows = [r for r in rows if r["id"] in wanted]
    summary = summarize(rows)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)
