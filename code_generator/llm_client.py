"""A chat-completions client for any OpenAI-compatible server, with our own retry policy.

The ``openai`` client's built-in retries are switched off; :class:`ChatClient` retries
429 (honouring ``Retry-After``), 5xx, timeouts and connection errors with exponential
backoff and jitter, and bounds the number of requests in flight with a semaphore, so
one client can be shared by many threads.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from code_generator.providers import Endpoint

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 600.0  # a server asking for a longer pause makes the request fail instead of hanging the run


class LLMError(RuntimeError):
    """A request failed for good (after retries, or with an error that retrying cannot fix)."""


class EmptyResponseError(LLMError):
    """The server answered, but with no usable text."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between tries of one request."""

    retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (attempt counts from 0)."""
        base = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        jittered = base * (0.5 + random.random() / 2)
        if retry_after is not None:  # the server's word wins over our own (shorter or longer) backoff
            return max(retry_after, min(jittered, retry_after + self.backoff_s))
        return jittered


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChatClient:
    """Sends chat requests to one endpoint and model; thread-safe; at most ``concurrency`` in flight."""

    def __init__(
        self,
        endpoint: Endpoint,
        model: str,
        *,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        timeout_s: float = 120.0,
        concurrency: int = 8,
        policy: RetryPolicy | None = None,
    ) -> None:
        import openai

        if concurrency < 1:
            raise ValueError(f"code_gen_concurrency must be >= 1, got {concurrency}")
        self.endpoint = endpoint
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.policy = policy or RetryPolicy()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=endpoint.api_key, base_url=endpoint.base_url, timeout=timeout_s, max_retries=0
        )
        self.requests_sent = 0
        self._count_lock = threading.Lock()

    def _retryable(self, exc: Exception) -> tuple[bool, float | None]:
        """(should retry, Retry-After seconds) for an exception from the openai client."""
        oa = self._openai
        if isinstance(exc, oa.APIStatusError):
            status = exc.status_code
            if status == 429 or status == 408 or status >= 500:
                return True, parse_retry_after(exc.response.headers.get("retry-after"))
            return False, None
        if isinstance(exc, (oa.APITimeoutError, oa.APIConnectionError)):
            return True, None
        return False, None

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The assistant's reply text; retries transient failures; raises :class:`LLMError` when it gives up."""
        last: Exception | None = None
        for attempt in range(self.policy.retries + 1):
            try:
                with self._slots:
                    with self._count_lock:
                        self.requests_sent += 1
                    response = self._client.chat.completions.create(
                        model=self.model,
                        messages=messages,  # type: ignore[arg-type]
                        temperature=self.temperature,
                        max_tokens=self.max_tokens,
                    )
                if isinstance(response, (str, bytes)) or not hasattr(response, "choices"):
                    raise ValueError(f"not a chat completion: {str(response)[:80]!r}")
                return _text_of(response)
            except (self._openai.OpenAIError, ValueError) as exc:  # ValueError: a body that is not JSON
                retry, retry_after = (True, None) if isinstance(exc, ValueError) else self._retryable(exc)
                last = exc
                if not retry or attempt == self.policy.retries:
                    break
                if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
                    break
                wait = self.policy.delay(attempt, retry_after)
                log.warning("LLM request failed (%s); retry %d in %.2fs", _describe(exc), attempt + 1, wait)
                time.sleep(wait)
        assert last is not None
        raise LLMError(f"LLM request to {self.endpoint.base_url} failed: {_describe(last)}") from last


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValueError) and not isinstance(exc, LLMError):
        return f"malformed response ({type(exc).__name__}: {str(exc)[:120]})"
    status = getattr(exc, "status_code", None)
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}" + (f" {status}" if status else "") + (f": {text}" if text else "")


def _text_of(response: Any) -> str:
    """The first choice's text; a response without one raises :class:`EmptyResponseError`."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise EmptyResponseError("LLM response has no choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None) if message is not None else None
    if not isinstance(content, str) or not content.strip():
        raise EmptyResponseError("LLM response has empty content")
    return content
