"""The LLM judge of ``--evaluate``: does a predicted answer mean the same as the gold one?

Any OpenAI-compatible chat endpoint, reached with the ``openai`` client. Providers
(``--judge_provider``) and their keys: deepseek (DEEPSEEK_API_KEY), openai
(OPENAI_API_KEY), vllm (no key). ``judge.base_url`` in the config points any provider at
another server. Requests are retried (the shared loop of :mod:`neptune_core.retry`) on
429, 408, 409, 5xx, timeouts, dropped connections, bodies that are not JSON and replies
that are neither yes nor no, with exponential backoff without jitter (``judge.backoff_s``,
doubling, capped at ``judge.max_backoff_s``; a Retry-After header is honoured up to
the cap); any other HTTP error (400, 401, ...) fails at once. Verdicts are stored in an
append-only JSONL cache (:class:`VerdictCache`) so an outage or a rerun never loses a
verdict already made.

Add a provider: one line in :data:`JUDGE_PROVIDERS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from neptune_core.config import JudgeConfig
from neptune_core.errors import UserError
from neptune_core.registry import did_you_mean
from neptune_core.retry import RetriesExhausted, RetryPolicy, call_with_retries

# provider -> (default base URL, environment variable with the key; None = no key)
JUDGE_PROVIDERS: dict[str, tuple[str, str | None]] = {
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "vllm": ("http://localhost:8000/v1", None),
}

SYSTEM_PROMPT = (
    "You grade answers to questions about images. Given the question, the gold answer and a "
    "predicted answer, decide whether the prediction means the same as the gold answer "
    "(synonyms, plurals, number words and extra words that do not change the meaning are fine). "
    "Reply with exactly one word: yes or no."
)
_YES = {"yes", "correct", "true"}
_NO = {"no", "incorrect", "false"}


class JudgeUnavailableError(UserError):
    """The judge endpoint kept failing after all retries, or refused the request outright."""


@dataclass(frozen=True)
class JudgeEndpoint:
    provider: str
    model: str
    base_url: str
    api_key: str

    def __repr__(self) -> str:  # never print the key
        return f"JudgeEndpoint({self.provider!r}, {self.model!r}, {self.base_url!r}, api_key=<hidden>)"


def resolve_judge(provider: str, model: str, settings: JudgeConfig, env: dict[str, str] | None = None) -> JudgeEndpoint:
    """The endpoint for ``--judge_provider``; a missing key is a one-line error naming its variable."""
    env = dict(os.environ) if env is None else env
    if provider not in JUDGE_PROVIDERS:
        known = sorted(JUDGE_PROVIDERS)
        raise UserError(
            f"unknown --judge_provider '{provider}'{did_you_mean(provider, known)}; known: {', '.join(known)}"
        )
    default_url, key_env = JUDGE_PROVIDERS[provider]
    url = (settings.base_url or default_url).rstrip("/")
    if key_env is None:
        return JudgeEndpoint(provider, model, url, "not-needed")
    key = env.get(key_env, "").strip()
    if not key:
        raise UserError(
            f"--judge_provider {provider} needs the environment variable {key_env} (environment or .env file)"
        )
    return JudgeEndpoint(provider, model, url, key)


def parse_verdict(text: str | None) -> bool | None:
    """True / False from the reply's first word; None when it is neither."""
    words = "".join(c if c.isalnum() else " " for c in (text or "").lower()).split()
    if not words:
        return None
    return True if words[0] in _YES else False if words[0] in _NO else None


class _NotAVerdict(ValueError):
    """The judge replied, but neither yes nor no: asked again like any transient failure."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _NotAVerdict):
        return str(exc)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


class LLMJudge:
    """Asks the judge model for one verdict at a time (thread-safe; share one per evaluation)."""

    def __init__(self, endpoint: JudgeEndpoint, settings: JudgeConfig) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.policy = RetryPolicy(
            settings.retries,
            settings.backoff_s,
            settings.max_backoff_s,
            jitter=False,
            retry_after_mode="floor",  # Retry-After lengthens our backoff, up to max_backoff_s
            max_retry_after_s=None,  # ... and a longer one is capped, not a reason to give up
        )
        self.client = openai.OpenAI(
            base_url=endpoint.base_url, api_key=endpoint.api_key, timeout=settings.timeout_s, max_retries=0
        )
        self._lock = threading.Lock()
        self.requests = 0  # HTTP requests sent, retries included

    def _ask(self, question: str, gold: str, pred: str) -> str | None:
        with self._lock:
            self.requests += 1
        reply = self.client.chat.completions.create(
            model=self.endpoint.model,
            temperature=0.0,
            max_tokens=5,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {
                    "role": "user",
                    "content": f"Question: {question}\nGold answer: {gold}\nPredicted answer: {pred}\n"
                    "Is the predicted answer correct?",
                },
            ],
        )
        return reply.choices[0].message.content if reply.choices else None

    def _ask_verdict(self, question: str, gold: str, pred: str) -> bool:
        text = self._ask(question, gold, pred)
        parsed = parse_verdict(text)
        if parsed is None:
            raise _NotAVerdict(f"reply is neither yes nor no: {str(text)[:80]!r}")
        return parsed

    def verdict(self, question: str, gold: str, pred: str) -> bool:
        """Whether ``pred`` is a correct answer; raises :class:`JudgeUnavailableError` after the last retry."""
        where = f"judge {self.endpoint.model} at {self.endpoint.base_url}"
        try:
            return call_with_retries(
                lambda: self._ask_verdict(question, gold, pred),
                self.policy,
                extra_retryable=(openai.APIResponseValidationError, ValueError),  # junk body or reply: ask again
            )
        except RetriesExhausted as e:
            raise JudgeUnavailableError(f"{where} failed {e.attempts} times; last: {_describe(e.last)}") from None
        except openai.APIStatusError as e:  # 400/401/403/404: retrying will not help
            raise JudgeUnavailableError(
                f"{where} refused the request: HTTP {e.status_code} {' '.join(str(e).split())[:200]}"
            ) from None


def verdict_key(sample_id: str, pred: Any, gold: Any, model: str) -> str:
    """Cache key of one verdict: the sample id, the prediction, the gold answer and the judge model."""
    return hashlib.sha256(json.dumps([str(sample_id), str(pred), str(gold), model]).encode()).hexdigest()[:24]


class VerdictCache:
    """Append-only JSONL of verdicts (``{"key", "id", "pred", "gold", "model", "correct"}``), flushed per line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.verdicts: dict[str, bool] = {}
        if self.path.exists():
            data = self.path.read_bytes()
            for raw in data.splitlines():
                try:
                    rec = json.loads(raw)
                    self.verdicts[rec["key"]] = bool(rec["correct"])
                except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                    continue  # a line cut by a crash: that verdict is simply asked again
            if data and not data.endswith(b"\n"):
                with self.path.open("ab") as f:
                    f.write(b"\n")

    def get(self, key: str) -> bool | None:
        return self.verdicts.get(key)

    def put(self, key: str, record: dict[str, Any], correct: bool) -> None:
        with self._lock:
            self.verdicts[key] = correct
            with self.path.open("a") as f:
                f.write(json.dumps({"key": key, **record, "correct": correct}) + "\n")
                f.flush()
