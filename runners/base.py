"""The one run loop every task shares: load -> program -> detect -> execute -> record.

A task differs from another only by its config, its loader, its prompts, or by
overriding one method here (usually :meth:`Runner.judge`, which turns a program's
value into a prediction and decides whether it is correct).
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from analysis.normalize import answers_match
from analysis.summary import summarize
from local_datasets.sampling import save_selection
from neptune_core.config import RunConfig
from neptune_core.executor import Executor, to_answer
from neptune_core.types import ErrorRecord, Program, Sample
from probabilistic_tensor import LazyPolicy
from runners.multi_image import detect_each, images_field, rounded_boxes
from runners.ordering import group_by_image
from runners.outcomes import finalize_row, is_done, program_fields
from runners.prefetch import ahead
from runners.preflight import preflight
from runners.results import ResultsWriter, compact_results, read_results
from runners.row_guard import bound_row
from runners.rundir import prepare_run_dir, run_dir_for
from runners.verifiers import VerifyStage
from vision_agents import build_detector, build_vision_agent
from vision_agents.base import Detector, MemoizedAgent, VisionAgent
from vision_agents.calls import counting
from vision_agents.detection_cache import CachedDetector, detector_settings
from vision_agents.perception import Perception

log = logging.getLogger(__name__)

IDLE_GENERATION_MS = 50.0  # programs that take longer are not generated while a sandbox process runs


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
        perception: Perception | None = None,
    ) -> None:
        self.config = config
        self._perception = perception
        self._agent = agent
        self._detector = detector
        self._generator = generator
        self._verify = verify
        lazy = LazyPolicy(config.calls.mass_threshold) if config.calls.lazy_relations else None
        self.executor = Executor(config.executor, config.semantics, lazy=lazy)
        self.config_hash = config.config_hash()
        self.samples: list[Sample] | None = None  # the samples of the last run()
        self._prefetched: dict[str, Future] = {}  # programs being generated ahead by process_all
        self._following: Sample | None = None  # the sample process_all processes next (see _generate_ahead)
        self._generate_in_idle = True  # until a program takes longer than IDLE_GENERATION_MS
        self._pending: dict[str, Any] = {}  # verifier work started ahead by process_all
        self._prepared = False

    # ---- components, built lazily (model loading happens on first use) ------------
    @property
    def perception(self) -> Perception:
        """Masks, depths and marking (vision_agents/perception.py): segmenter, depth_model, marking, depth."""
        if self._perception is None:
            self._perception = Perception.from_config(self.config)
        return self._perception

    @property
    def agent(self) -> MemoizedAgent:
        if not isinstance(self._agent, MemoizedAgent):
            inner = self._agent or build_vision_agent(self.config)
            inner.use_marker(self.perception.marker)  # how objects are marked for it (box, masks, crop)
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
        """The config's samples; a generator with ``check_samples`` (one that needs the samples'
        own programs) checks them here, so "no sample has a program" fails before the first one."""
        from local_datasets import load_samples

        samples = load_samples(self.config)
        check = getattr(self.generator, "check_samples", None)
        if check is not None:
            check(samples)
        return samples

    # ---- one sample -----------------------------------------------------------------
    def judge(self, sample: Sample, value: Any, boxes: list[list[float]]) -> tuple[Any, bool | None]:
        """Turn the program's returned value into (prediction, correct). VQA: answer strings."""
        pred = str(to_answer(value))
        gold = sample.answer
        return pred, (None if gold is None else answers_match(pred, str(gold)))

    def metric_fields(self, sample: Sample, row: dict[str, Any]) -> dict[str, Any]:
        """What a benchmark's official metric needs on the row beyond ``correct`` (its ``metric`` field,
        analysis/benchmarks.py), for every row, errors included. Default: nothing."""
        return {}

    def process(self, sample: Sample) -> dict[str, Any]:
        """Run one sample end to end; any failure is recorded on its line, never raised.

        Uses the sample's program if :meth:`process_all` generated it ahead, else generates it.
        The row's ``model_calls`` counts the model calls the sample caused (vision_agents/calls.py).
        """
        # autograd only where a run asks for it (vlm_trainable): results that carry gradients are kept
        # per sample by the memo (vision_agents.base.MemoizedAgent), so a backend with trainable
        # weights (the classic heads) would otherwise share nothing between an image's questions
        with counting() as calls, torch.set_grad_enabled(self.config.vlm_trainable):
            row = self._process(sample)
        row["model_calls"] = calls.to_dict()
        return row

    def new_row(self, sample: Sample) -> dict[str, Any]:
        """A sample's row before any stage has run (every task's rows start from this)."""
        return {
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
            "timings": {},
            "config_hash": self.config_hash,
        }

    def _process(self, sample: Sample) -> dict[str, Any]:
        following, self._following = self._following, None
        row = self.new_row(sample)
        timings: dict[str, float] = row["timings"]
        t_total = time.perf_counter()
        ahead_ms = 0.0
        stage = "setup"
        try:
            stage = "image"
            images = sample.load_images()  # one, or several (runners/multi_image.py)
            image = images[0]
            self.agent.begin_sample(sample)
            self.detector.begin_sample(sample)
            self.perception.begin_sample(sample)
            pending = self._prefetched.pop(sample.id, None)
            if pending is not None and not pending.done():  # a prefetch thread starts the verifiers' work first
                wait_for([pending])
            # verifiers' own work (e.g. captioning) runs beside program generation and execution
            started = self._pending.pop(sample.id) if sample.id in self._pending else self.verify.start(sample, image)

            stage = "program"
            program, timings["program"] = pending.result() if pending is not None else _timed_program(self, sample)
            ahead_ms = timings["program"] if pending is not None else 0.0  # generated before t_total started
            if timings["program"] > IDLE_GENERATION_MS:  # too slow to generate while a sandbox runs (see below)
                self._generate_in_idle = False
            self.executor.prepare(program.source)  # a sandbox process checks it while the boxes come
            row["program"] = program.source
            row["program_origin"] = program.origin
            if program.key:
                row["program_key"] = program.key
            row.update(program_fields(program))

            stage = "detect"
            t0 = time.perf_counter()
            detection, *more = detect_each(self.detector, images, program.object_names)
            timings["detect"] = _ms(t0)
            boxes = rounded_boxes(detection)
            row["boxes"] = boxes
            if detection.info:  # e.g. each ensemble member's boxes
                row["detection"] = detection.info
            more_boxes = [rounded_boxes(d) for d in more]
            if more:
                row["images"] = images_field(sample, [boxes, *more_boxes])

            stage = "segment"  # with a segmenter: every box's mask, once per image and box (marks, depths, report)
            masks = self.perception.mask_record(image, boxes)
            if masks is not None:
                row["masks"] = masks

            stage = "execute"
            t0 = time.perf_counter()
            more_images = list(zip(images[1:], more_boxes, strict=True))
            outcome = self.executor.run(
                program.source,
                self.agent,
                image,
                boxes,
                more_images=more_images,
                perception=self.perception,
                idle=self._generate_ahead(following) if following is not None and self._generate_in_idle else None,
            )
            timings["execute"] = _ms(t0)
            row["trace"] = outcome.trace
            if outcome.error is not None:
                row["error"] = {**outcome.error.to_dict(), "stage": stage}
            else:
                stage = "judge"
                row["pred"], row["correct"] = self.judge(sample, outcome.value, boxes)
                stage = "verify"
                self.verify.finish(self, started, sample, image, program, outcome.value, boxes, row)
        except Exception as exc:  # a bad sample is recorded and the run goes on
            row["error"] = {**ErrorRecord.from_exception(exc).to_dict(), "stage": stage}
        metric = self.metric_fields(sample, row)
        if metric:
            row["metric"] = metric
        timings["total"] = round(_ms(t_total) + ahead_ms, 3)  # program generation included
        return finalize_row(bound_row(row, self.config.executor.max_row_bytes))

    def process_all(self, samples: list[Sample]) -> Iterator[dict[str, Any]]:
        """Result rows for ``samples``, in order, each yielded as soon as its sample is done.

        When the generator can run in several threads (its ``concurrency`` attribute > 1, e.g.
        the LLM generator with ``code_gen_concurrency`` requests in flight), the programs of a
        window of upcoming samples are generated in threads (:mod:`runners.prefetch`) while
        earlier samples run; a sample is processed as soon as its own program is ready, so a row
        never waits for a whole chunk, and each row records its own path and generation time.
        """
        self.executor.start()  # the sandbox process, before any model is loaded
        workers = int(getattr(self.generator, "concurrency", 1) or 1)
        if workers <= 1 or len(samples) <= 1:
            try:
                for i, sample in enumerate(samples):
                    # the next sample's program is generated while this one's runs in a sandbox process
                    self._following = samples[i + 1] if i + 1 < len(samples) else None
                    yield self.process(sample)
            finally:
                self._following = None
                self._prefetched.clear()
            return
        _ = self.verify  # built here, not by the prefetch threads at once
        programs = ahead(self._start_ahead, samples, workers=workers, window=4 * workers)
        try:
            for sample, program in programs:
                self._prefetched[sample.id] = program
                yield self.process(sample)
        finally:
            programs.close()  # cancels what has not started; threads in flight are daemons
            self._prefetched.clear()
            for started in self._pending.values():  # verifier work for samples the loop did not reach
                if started is not None:
                    started.cancel()
            self._pending.clear()

    def _generate_ahead(self, sample: Sample) -> Iterator[None]:
        """In steps, while another sample's program runs in a sandbox process: generate ``sample``'s
        program for :meth:`process` to find (a failure is kept for that sample's row), then tell the
        executor (which plans its scores, and has the sandbox check it next). The program is
        generated in a context of its own: nothing is counted on the current row.

        Only while programs come fast (at most IDLE_GENERATION_MS each, e.g. a translator or a
        program cache): a step cannot be interrupted, so a slow one (an LLM request) would hold back
        the sandbox's calls and the watchdog's decision on a program that runs too long."""
        if sample.id in self._prefetched:
            return
        done: Future[tuple[Program, float]] = Future()
        try:
            done.set_result(contextvars.Context().run(_timed_program, self, sample))
        except Exception as e:  # the sample's own error, raised where process() takes its program
            done.set_exception(e)
        self._prefetched[sample.id] = done
        if done.exception() is None:
            yield
            self.executor.prepare(done.result()[0].source)

    def _start_ahead(self, sample: Sample) -> tuple[Program, float]:
        """Run in a prefetch thread: start the verifiers' own work (e.g. captioning), then generate the program."""
        if self.verify.active:
            try:
                self._pending[sample.id] = self.verify.start(sample, sample.load_image())
            except Exception:  # process() starts it again and records the error on the sample's row
                log.debug("verify stage could not start ahead for %s", sample.id, exc_info=True)
        return _timed_program(self, sample)

    # ---- the loop ---------------------------------------------------------------------
    def prepare(
        self,
        samples: Iterable[Sample] | None = None,
        *,
        existing: Path | None = None,
        retry_failed: bool = False,
        check_generator: bool = True,
        check_models: bool = True,
    ) -> list[Sample]:
        """Build every component, load the samples and run the preflight (:mod:`runners.preflight`).

        A broken setup (bad name, missing data, missing model, unreachable server, bad key)
        raises a one-line UserError here, before any work and before any run directory
        exists. ``existing``: a run directory whose finished samples need nothing (read only).
        Runs once per runner; :meth:`run` calls it when it has not run yet.
        """
        if self._prepared:  # components built and checked once; a later call may bring other samples
            if samples is not None:
                self.samples = list(samples)
            return self.samples or []
        if check_models:
            self.executor.begin()  # the sandbox's fork server boots while the components load and are checked
        _ = (self.generator, self.detector, self.perception, self.agent)  # a bad name or a missing key fails here
        if retry_failed and hasattr(self.generator, "retry_fallbacks"):
            self.generator.retry_fallbacks = True
        self.samples = list(samples) if samples is not None else self.load_samples()
        rows = read_results(existing / "results.jsonl")[0] if existing is not None else []
        done = {r["id"] for r in rows if is_done(r, retry_failed)}
        todo = [s for s in self.samples if s.id not in done]
        preflight(
            self.generator,
            self.detector,
            self.agent,
            todo,
            check_generator=check_generator,
            check_models=check_models and bool(todo),
            perception=self.perception,
        )
        if todo and check_models:
            self.verify.preflight()
        if check_models:
            self.executor.start()  # a sandbox that cannot start is a broken setup too: found here
        self._prepared = True
        return self.samples

    def run(
        self, run_dir: Path | None = None, samples: Iterable[Sample] | None = None, *, retry_failed: bool = False
    ) -> dict[str, Any]:
        """Process every sample whose row in ``run_dir/results.jsonl`` is missing or not final
        (with ``retry_failed``: not ok either); write and return the summary."""
        samples = self.prepare(samples, existing=run_dir or run_dir_for(self.config), retry_failed=retry_failed)
        run_dir = run_dir or prepare_run_dir(self.config)
        save_selection(run_dir, samples)  # the sampler's choice (local_datasets/sampling.py), if one chose
        results_path = run_dir / "results.jsonl"
        self.executor.start()  # the sandbox process (its fork server) before any model is loaded
        with ResultsWriter(results_path, retry_failed=retry_failed) as writer:
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
            failed: dict[str, int] = {}
            for row in self.process_all(todo):
                writer.write(row)
                if row["outcome"] != "ok":
                    failed[row["outcome"]] = failed.get(row["outcome"], 0) + 1
                    bar.set_postfix(failed, refresh=False)
                bar.update(1)
            bar.close()
        self.executor.close()  # the sandbox process (also closed when the runner is garbage-collected)
        return finish_run(run_dir, [s.id for s in samples], invocation=self.invocation_stats(len(todo)))

    def invocation_stats(self, processed: int) -> dict[str, Any]:
        """What this invocation did: samples processed, LLM requests sent, program paths taken."""
        client = getattr(self._generator, "client", None)
        origins = dict(getattr(self._generator, "stats", {}) or {})
        stats: dict[str, Any] = {"processed": processed}
        if client is not None and hasattr(client, "requests_sent"):
            stats["llm_requests"] = client.requests_sent
        if origins:
            stats["program_origins"] = origins
            stats["cache_hits"] = origins.get("cache", 0)
        return stats


def finish_run(
    run_dir: Path, sample_ids: list[str] | None = None, invocation: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Summarise ``run_dir/results.jsonl`` (restricted to ``sample_ids`` if given) into summary.json.

    ``invocation``: what this invocation did (see :meth:`Runner.invocation_stats`), kept as
    ``summary["this_invocation"]``.
    """
    rows = compact_results(run_dir / "results.jsonl")  # redone rows replace their old lines in the file too
    if sample_ids is not None:
        wanted = set(sample_ids)
        rows = [r for r in rows if r["id"] in wanted]
    summary = summarize(rows)
    if invocation is not None:
        summary["this_invocation"] = invocation
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _timed_program(runner: Runner, sample: Sample) -> tuple[Program, float]:
    """The sample's program and the milliseconds it took (run in a pool thread by process_all)."""
    t0 = time.perf_counter()
    program = runner.generator.program_for(sample)
    return program, _ms(t0)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)
