"""The LLM judge of ``--evaluate``: does a predicted answer mean the same as the gold one?

Any OpenAI-compatible chat endpoint, reached with the ``openai`` client. Providers
(``--judge_provider``) with their key and default model: deepseek (DEEPSEEK_API_KEY,
deepseek-chat), openai (OPENAI_API_KEY, no default: pass ``--judge_model``), vllm (no key;
the model is asked from the server when not given). ``judge.base_url`` in the config points
any provider at another server.

The judge is used only when one is configured (:func:`judge_requested`): a provider, a model
or ``judge.base_url`` given explicitly, or the default provider's key in the environment.
Before the first verdict :meth:`LLMJudge.preflight` checks the endpoint, the key and the
model once (:mod:`neptune_core.endpoints`). The judge is asked for a short structured
answer ("verdict: yes" / "verdict: no") and :func:`parse_verdict` reads it from the whole
reply, tolerantly ("The gold answer is correct" is a yes).

Requests are retried (the shared loop of :mod:`neptune_core.retry`) on 429, 408, 409,
5xx, timeouts, dropped connections, bodies that are not JSON and replies without a
verdict, with exponential backoff without jitter (``judge.backoff_s``, doubling, capped at
``judge.max_backoff_s``; a Retry-After header is honoured up to the cap); any other HTTP
error (400, 401, ...) fails at once. A reply that never holds a verdict raises
:class:`NoVerdictError` (that row is unjudged); a judge that stops answering raises
:class:`JudgeUnavailableError` (the rows not yet asked are unjudged). Verdicts are stored
in an append-only JSONL cache (:class:`VerdictCache`) so an outage or a rerun never loses
a verdict already made.

Add a provider: one line in :data:`JUDGE_PROVIDERS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from neptune_core.config import JudgeConfig
from neptune_core.errors import UserError
from neptune_core.registry import did_you_mean
from neptune_core.retry import RetriesExhausted, RetryPolicy, call_with_retries

# provider -> (default base URL, environment variable with the key (None = no key), default model ("" = none))
JUDGE_PROVIDERS: dict[str, tuple[str, str | None, str]] = {
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "deepseek-chat"),
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY", ""),
    "vllm": ("http://localhost:8000/v1", None, ""),
}
DEFAULT_JUDGE_PROVIDER = "deepseek"

SYSTEM_PROMPT = (
    "You grade answers to questions about images. Given the question, the gold answer and a "
    "predicted answer, decide whether the prediction means the same as the gold answer "
    "(synonyms, plurals, number words and extra words that do not change the meaning are fine). "
    "Reply with exactly one line: 'verdict: yes' or 'verdict: no'."
)
_YES = {"yes", "correct", "true", "right", "same", "equivalent", "matches", "match", "accept", "accepted"}
_NO = {"no", "incorrect", "false", "wrong", "different", "differs", "mismatch", "reject", "rejected"}
_VERDICT = re.compile(r"\bverdict\W{0,4}(yes|no|correct|incorrect|true|false)\b")
_NEGATED = re.compile(
    r"\b(?:not|isn't|isnt|aren't|doesn't|doesnt|does not|do not|cannot|can't)\s+(?:\w+\s+){0,2}?"
    r"(?:correct|right|the same|same|equivalent|match|matches|mean the same|accepted)\b"
)


class JudgeUnavailableError(UserError):
    """The judge endpoint kept failing after all retries, or refused the request outright."""


class NoVerdictError(ValueError):
    """The judge kept answering, but never with a readable verdict: that row stays unjudged."""


@dataclass(frozen=True)
class JudgeEndpoint:
    provider: str
    model: str
    base_url: str
    api_key: str

    def __repr__(self) -> str:  # never print the key
        return f"JudgeEndpoint({self.provider!r}, {self.model!r}, {self.base_url!r}, api_key=<hidden>)"


def judge_requested(
    provider: str | None, model: str | None, settings: JudgeConfig, env: dict[str, str] | None = None
) -> bool:
    """Whether ``--evaluate`` should use an LLM judge: a provider, a model or ``judge.base_url`` was
    given, or the default provider's key is in the environment. Otherwise exact match only."""
    env = dict(os.environ) if env is None else env
    if provider or model or settings.base_url:
        return True
    key_env = JUDGE_PROVIDERS[DEFAULT_JUDGE_PROVIDER][1]
    return bool(key_env and env.get(key_env, "").strip())


def resolve_judge(
    provider: str | None, model: str | None, settings: JudgeConfig, env: dict[str, str] | None = None
) -> JudgeEndpoint:
    """The endpoint for ``--judge_provider``; a missing key is a one-line error naming its variable.

    ``model`` None: the provider's default model ("" for a vllm server: the one it serves).
    """
    env = dict(os.environ) if env is None else env
    provider = provider or DEFAULT_JUDGE_PROVIDER
    if provider not in JUDGE_PROVIDERS:
        known = sorted(JUDGE_PROVIDERS)
        raise UserError(
            f"unknown --judge_provider '{provider}'{did_you_mean(provider, known)}; known: {', '.join(known)}"
        )
    default_url, key_env, default_model = JUDGE_PROVIDERS[provider]
    model = model or default_model
    if not model and key_env is not None:
        raise UserError(f"--judge_provider {provider} needs --judge_model (the model id to ask)")
    url = (settings.base_url or default_url).rstrip("/")
    if key_env is None:
        return JudgeEndpoint(provider, model, url, env.get("OPENAI_API_KEY", "").strip() or "not-needed")
    key = env.get(key_env, "").strip()
    if not key:
        raise UserError(
            f"--judge_provider {provider} needs the environment variable {key_env} (environment or .env file); "
            "without a judge, --evaluate scores by exact match only"
        )
    return JudgeEndpoint(provider, model, url, key)


def parse_verdict(text: str | None) -> bool | None:
    """True / False read from the whole reply; None when it holds no verdict (or contradicts itself).

    In order: a "verdict: yes|no" anywhere; the first word when it is a yes or a no word;
    else the yes and no words of the whole reply, where a negated yes ("is not correct")
    counts as a no. Both kinds at once, or neither: None.
    """
    t = " ".join((text or "").lower().split())
    if not t:
        return None
    m = _VERDICT.search(t)
    if m:
        return m.group(1) in _YES
    words = re.findall(r"[a-z']+", t)
    if not words:
        return None
    if words[0] in _YES or words[0] in _NO:
        return words[0] in _YES
    negated = bool(_NEGATED.search(t))
    rest = _NEGATED.sub(" ", t)
    yes = any(w in _YES for w in re.findall(r"[a-z']+", rest))
    no = negated or any(w in _NO for w in re.findall(r"[a-z']+", rest))
    if yes == no:
        return None
    return yes


class _NotAVerdict(ValueError):
    """The judge replied, but without a verdict: asked again like any transient failure."""


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

    def preflight(self) -> None:
        """Check the endpoint, the key and the model once before any verdict (one line, exit 2, on failure)."""
        from neptune_core.endpoints import EndpointCheck, check_endpoint

        key_env = JUDGE_PROVIDERS[self.endpoint.provider][1]
        model = check_endpoint(
            EndpointCheck(
                what=f"LLM judge (--judge_provider {self.endpoint.provider})",
                base_url=self.endpoint.base_url,
                api_key=self.endpoint.api_key,
                model=self.endpoint.model,
                url_setting="judge.base_url",
                model_setting="--judge_model",
                key_hint=f"set {key_env} (environment or .env)" if key_env else "set OPENAI_API_KEY for this server",
            )
        )
        if model != self.endpoint.model:
            self.endpoint = JudgeEndpoint(self.endpoint.provider, model, self.endpoint.base_url, self.endpoint.api_key)

    def _ask(self, question: str, gold: str, pred: str) -> str | None:
        with self._lock:
            self.requests += 1
        reply = self.client.chat.completions.create(
            model=self.endpoint.model,
            temperature=0.0,
            max_tokens=16,
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
            raise _NotAVerdict(f"reply holds no verdict: {str(text)[:80]!r}")
        return parsed

    def verdict(self, question: str, gold: str, pred: str) -> bool:
        """Whether ``pred`` is a correct answer.

        Raises :class:`NoVerdictError` when every reply lacked a verdict, and
        :class:`JudgeUnavailableError` when the judge stopped answering (after the last retry,
        or at once for a refusal such as 401).
        """
        where = f"judge {self.endpoint.model} at {self.endpoint.base_url}"
        try:
            return call_with_retries(
                lambda: self._ask_verdict(question, gold, pred),
                self.policy,
                extra_retryable=(openai.APIResponseValidationError, ValueError),  # junk body or reply: ask again
            )
        except RetriesExhausted as e:
            if isinstance(e.last, _NotAVerdict):
                raise NoVerdictError(f"{where} gave no verdict in {e.attempts} replies; last: {e.last}") from None
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
