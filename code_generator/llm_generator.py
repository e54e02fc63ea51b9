"""The LLM program generator: cache -> LLM -> extract -> check -> repair or re-ask -> fallback.

``LLMProgramGenerator.from_config(config).program_for(sample)`` returns a
:class:`~neptune_core.types.Program` whose ``origin`` says which path was taken:
"cache" (found in the program cache), "generated" (the first reply passed the checks),
"repaired" (after an automatic repair or an error-feedback round), "fallback" (no
usable program: the whole question goes to the VLM about the whole image). It never
raises for a bad reply or a failed request; ``program.info`` holds the details: each
round's raw reply and problems, and for a fallback ``info["fallback"]`` = ``{"reason",
"transient"}`` (transient: a request failed for a reason that may pass, such as a server
that is down; the runner redoes such a row next time). A fallback after a failed request is
never cached; one after replies that never gave a valid program is (and ``retry_fallbacks``,
set by ``--retry_failed``, generates it afresh).

:meth:`LLMProgramGenerator.preflight` checks the endpoint once (reachable, key, model
name) before a run, and only when some program the run needs is not in the cache.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from code_generator.cache import ProgramCache, cache_key
from code_generator.checks import check_program
from code_generator.extraction import ExtractionError, extract
from code_generator.llm_client import ChatClient, EmptyResponseError, LLMError, RetryPolicy
from code_generator.nlp import normalise_object_names
from code_generator.prompting import (
    BOX_TASKS,
    DATASET_TASKS,
    VIDEO_TASKS,
    YES_NO_TASKS,
    PromptBuilder,
    RenderedPrompt,
    task_for_sample,
)
from code_generator.providers import load_dotenv_file, resolve_endpoint
from code_generator.repairs import repair
from neptune_core.config import RunConfig
from neptune_core.endpoints import EndpointCheck, check_endpoint
from neptune_core.failures import is_transient_exception
from neptune_core.primitives import program_features
from neptune_core.types import Program, Sample

log = logging.getLogger(__name__)


def fallback_source(question: str, task: str) -> str:
    """A direct program: the whole question to the VLM (refexp: score every box against the expression;
    a yes/no family: p(yes) of the question about the (first) image; a video question: its options to choose())."""
    question = " ".join(question.split())
    if task in VIDEO_TASKS:
        from local_datasets.multiple_choice import split_options

        bare, options = split_options(question)
        if len(options) >= 2:
            return f"def execute(score, query, n):\n    return choose({json.dumps(bare)}, {json.dumps(options)})\n"
        return f"def execute(score, query, n):\n    return query_video({json.dumps(question)})\n"
    if task in BOX_TASKS:
        ask = f"Is this {question.rstrip('.?')}?"
        return f"def execute(score, query, n):\n    return score({json.dumps(ask)}, 1)\n"
    if task in YES_NO_TASKS:
        ask = question if question.endswith("?") else f"Is this true: {question}"
        return f"def execute(score, query, n):\n    return score({json.dumps(ask)}, 0)\n"
    return f"def execute(score, query, n):\n    return query({json.dumps(question)}, None)\n"


class LLMProgramGenerator:
    """Programs from an OpenAI-compatible LLM, with a shared content-keyed cache."""

    def __init__(
        self,
        config: RunConfig,
        client: ChatClient,
        *,
        cache: ProgramCache | None = None,
        prompts: PromptBuilder | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.cache = cache
        self.prompts = prompts or PromptBuilder(features=program_features(config))
        self.default_task = DATASET_TASKS.get(config.dataset)  # None: each sample's own (task_for_sample)
        self._stats_lock = threading.Lock()
        self.stats: dict[str, int] = {}
        self.concurrency = config.code_gen_concurrency  # program_for may run in this many threads at once
        self.retry_fallbacks = False  # True (--retry_failed): a cached fallback is generated afresh

    @classmethod
    def from_config(cls, config: RunConfig) -> LLMProgramGenerator:
        """Load .env, resolve the provider (a missing key fails here, before any work) and open the cache."""
        load_dotenv_file()
        endpoint = resolve_endpoint(config.code_gen_provider, config.code_gen_base_url)
        client = ChatClient(
            endpoint,
            config.code_gen_model_name,
            temperature=config.code_gen_temperature,
            max_tokens=config.code_gen_max_tokens,
            timeout_s=config.code_gen_timeout_s,
            concurrency=config.code_gen_concurrency,
            policy=RetryPolicy(config.code_gen_http_retries, config.code_gen_backoff_s, config.code_gen_max_backoff_s),
        )
        cache = ProgramCache(config.program_cache_address) if config.program_cache_address else None
        return cls(config, client, cache=cache)

    # ---- keys ------------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """Generation settings that change the program (part of the cache key)."""
        c = self.config
        return {
            "temperature": c.code_gen_temperature,
            "max_tokens": c.code_gen_max_tokens,
            "max_retries": c.code_gen_max_retries,
            "provider": c.code_gen_provider,
        }

    def key_for(self, question: str, prompt: RenderedPrompt) -> str:
        return cache_key(question, prompt.text, self.config.code_gen_model_name, self.settings)

    @property
    def cacheable(self) -> bool:
        """Only deterministic generations are cached."""
        return self.cache is not None and self.config.code_gen_temperature == 0

    # ---- the one entry point -----------------------------------------------------------
    def program_for(self, sample: Sample | str, task: str | None = None) -> Program:
        """The program for a sample (or a bare question); never raises for LLM or program trouble."""
        question, task, prompt = self._prompt_for(sample, task)
        key = self.key_for(question, prompt)
        program = self._from_cache(key, question, task) if self.cache is not None else None
        if program is None:
            program, deterministic = self._generate(question, prompt, key)
            if self.cacheable and deterministic:
                assert self.cache is not None
                self.cache.put(key, self._entry(question, task, program))
        if not program.object_names:
            from code_generator.nlp import object_names

            program.object_names = object_names(question)
            program.info["object_names_from"] = "spacy"
        self._count(program.origin)
        return program

    def programs_for(self, samples: Sequence[Sample | str], task: str | None = None) -> list[Program]:
        """Programs for many samples, ``code_gen_concurrency`` at a time, in input order."""
        workers = max(1, min(self.config.code_gen_concurrency, len(samples)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda s: self.program_for(s, task), samples))

    # ---- paths -----------------------------------------------------------------------
    def _from_cache(self, key: str, question: str, task: str) -> Program | None:
        assert self.cache is not None
        entry = self.cache.get(key)
        source = entry.get("program") if entry else self.cache.get_legacy(question)
        if not isinstance(source, str):
            return None
        if entry and entry.get("origin") == "fallback" and self.retry_fallbacks:
            return None
        problems = check_program(source)
        if problems:  # the checks got stricter since it was stored: generate afresh
            log.warning("cached program for %r fails the checks now (%s); regenerating", question, problems[0])
            return None
        names = list(entry.get("object_names") or []) if entry else []
        info: dict[str, Any] = {"task": task, "cached_origin": entry.get("origin") if entry else "legacy"}
        if entry and entry.get("origin") == "fallback":
            reason = entry.get("fallback_reason") or "no valid program (stored as a fallback in the program cache)"
            info["fallback"] = {"reason": f"cached: {reason}", "transient": False}
        return Program(source, origin="cache", object_names=names, key=key, info=info)

    def _prompt_for(self, sample: Sample | str, task: str | None) -> tuple[str, str, RenderedPrompt]:
        """(question, prompt family, rendered prompt) for a sample or a bare question."""
        question = sample if isinstance(sample, str) else sample.question
        if task is None:
            task = task_for_sample(sample, self.default_task) if isinstance(sample, Sample) else self.default_task
        task = task or "vqa"
        return question, task, self.prompts.render(task, question)

    def cached(self, sample: Sample | str, task: str | None = None) -> bool:
        """Whether :meth:`program_for` would answer ``sample`` from the cache, without the LLM."""
        if self.cache is None:
            return False
        question, _, prompt = self._prompt_for(sample, task)
        entry = self.cache.get(self.key_for(question, prompt))
        if entry is None:
            return self.cache.get_legacy(question) is not None
        return not (entry.get("origin") == "fallback" and self.retry_fallbacks)

    # ---- preflight ---------------------------------------------------------------------
    def endpoint_check(self) -> EndpointCheck:
        """What :meth:`preflight` checks: this generator's endpoint, key and model."""
        from code_generator.providers import PROVIDERS

        endpoint = self.client.endpoint
        spec = PROVIDERS.get(self.config.code_gen_provider)
        key_env = spec.key_env if spec is not None else None
        key_hint = (
            f"set {key_env} (environment or .env)"
            if key_env
            else "this server wants a key: set OPENAI_API_KEY (environment or .env)"
        )
        return EndpointCheck(
            what=f"LLM program generator (code_gen_provider '{self.config.code_gen_provider}')",
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            model=self.config.code_gen_model_name,
            url_setting="code_gen_base_url",
            model_setting="code_gen_model_name",
            key_hint=key_hint,
        )

    def preflight(self, samples: Sequence[Sample]) -> bool:
        """Check the endpoint when a program for ``samples`` is not cached; returns whether it checked.

        Raises :class:`~neptune_core.endpoints.EndpointUnavailableError` (one line) when the
        server cannot be reached, refuses the key, or does not serve the model.
        """
        if all(self.cached(s) for s in samples):
            return False
        if self.cache is not None:
            self.cache.check_writable()
        check_endpoint(self.endpoint_check())
        return True

    def _generate(self, question: str, prompt: RenderedPrompt, key: str) -> tuple[Program, bool]:
        """(program, deterministic): deterministic is False when a request failed (worth retrying later)."""
        messages = list(prompt.messages)
        info: dict[str, Any] = {"task": prompt.task, "model": self.config.code_gen_model_name, "rounds": []}
        for attempt in range(self.config.code_gen_max_retries + 1):
            try:
                reply = self.client.complete(messages)
            except EmptyResponseError as e:
                reply, problems = "", [str(e)]
            except LLMError as e:
                transient = is_transient_exception(e)
                info["rounds"].append({"error": str(e), "transient": transient})
                info["error"] = str(e)
                info["fallback"] = {"reason": f"LLM request failed: {e}", "transient": transient}
                # a failed request is not cached, so a later run (or --retry_failed) asks again
                return self._fallback(question, prompt, key, info), False
            else:
                problems = []
            names: list[str] | None = None
            if not problems:
                try:
                    got = extract(reply)
                except ExtractionError as e:
                    problems = [str(e)]
                else:
                    names = normalise_object_names(got.object_names) if got.object_names else None
                    source, fixes = repair(got.source)
                    problems = check_program(source)
                    if not problems:
                        info["rounds"].append({"ok": True, "reply": _raw(reply), "repairs": fixes, "notes": got.notes})
                        origin = "generated" if attempt == 0 and not fixes else "repaired"
                        info["attempts"] = attempt + 1
                        return Program(source, origin=origin, object_names=names or [], key=key, info=info), True
            info["rounds"].append({"reply": _raw(reply), "problems": problems})
            messages += [
                {"role": "assistant", "content": reply or "(empty reply)"},
                {"role": "user", "content": self.prompts.repair_message(problems)},
            ]
        info["error"] = "no valid program after {} attempts: {}".format(
            self.config.code_gen_max_retries + 1, "; ".join(info["rounds"][-1].get("problems", []))
        )
        info["fallback"] = {"reason": info["error"], "transient": False}
        return self._fallback(question, prompt, key, info), True

    def _fallback(self, question: str, prompt: RenderedPrompt, key: str, info: dict[str, Any]) -> Program:
        log.warning("program generation fell back to a direct question for %r: %s", question, info.get("error"))
        return Program(fallback_source(question, prompt.task), origin="fallback", key=key, info=info)

    # ---- bookkeeping -------------------------------------------------------------------
    def _entry(self, question: str, task: str, program: Program) -> dict[str, Any]:
        entry = {
            "question": question,
            "task": task,
            "program": program.source,
            "object_names": program.object_names,
            "origin": program.origin,
            "model": self.config.code_gen_model_name,
            "provider": self.config.code_gen_provider,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        replies = [r["reply"] for r in program.info.get("rounds", []) if r.get("reply")]
        if replies:
            entry["reply"] = replies[-1]  # the raw reply the program came from
        if "fallback" in program.info:
            entry["fallback_reason"] = program.info["fallback"]["reason"]
        return entry

    def _count(self, origin: str) -> None:
        with self._stats_lock:
            self.stats[origin] = self.stats.get(origin, 0) + 1


_MAX_REPLY_CHARS = 20_000


def _raw(reply: str) -> str:
    """A raw LLM reply as kept on the row and in the cache (cut only if absurdly long)."""
    return reply if len(reply) <= _MAX_REPLY_CHARS else reply[:_MAX_REPLY_CHARS] + " [...cut]"
