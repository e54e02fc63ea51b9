"""A chat-completions client for any OpenAI-compatible server, with our own retry policy.

The ``openai`` client's built-in retries are switched off; :class:`ChatClient` retries
429 (honouring ``Retry-After``), 408, 409, 5xx, timeouts, connection errors and bodies
that are not JSON with exponential backoff and jitter (the shared loop of
:mod:`neptune_core.retry`; a Retry-After above :data:`MAX_RETRY_AFTER_S` fails the
request instead), and bounds the number of requests in flight with a semaphore, so one
client can be shared by many threads.

When a request has used up its retries on a connection error or a timeout, the server is
taken to be down: later requests are tried once, without retries, until one succeeds, so
a server that dies mid-run costs each remaining sample one failed connection instead of
a full backoff (those samples fall back, are not final, and the next run redoes them).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from typing import Any

from code_generator.providers import Endpoint
from neptune_core.failures import is_transient_exception
from neptune_core.retry import MAX_RETRY_AFTER_S, RetriesExhausted, RetryPolicy, call_with_retries, parse_retry_after

__all__ = ["MAX_RETRY_AFTER_S", "ChatClient", "EmptyResponseError", "LLMError", "RetryPolicy", "parse_retry_after"]

log = logging.getLogger(__name__)


class LLMError(RuntimeError):
    """A request failed for good (after retries, or with an error that retrying cannot fix).

    ``transient``: the failure may pass (retries ran out on 429 / 5xx / timeouts / dropped
    connections / junk bodies, or the server refused the key or did not know the model,
    which a fixed setup cures); False for a request the server will always refuse (400, 422).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class EmptyResponseError(LLMError):
    """The server answered, but with no usable text."""


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
        # openai looks up the legacy ``httpx`` module in sys.modules on every response; if another
        # library (spaCy's dependencies) imports httpx for the first time in a concurrent thread, that
        # lookup can see it half-initialised. Import it fully here, before any request thread runs.
        with contextlib.suppress(ImportError):
            importlib.import_module("httpx")

        if concurrency < 1:
            raise ValueError(f"code_gen_concurrency must be >= 1, got {concurrency}")
        self.endpoint = endpoint
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.policy = policy or RetryPolicy()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._client_lock = threading.Lock()
        self._openai_client: Any = (
            None  # made on the first request: a run whose programs are cached never imports openai
        )
        self.requests_sent = 0
        self._count_lock = threading.Lock()
        self.server_down = False  # set after a request exhausted its retries on connection errors / timeouts

    @property
    def _openai(self) -> Any:
        import openai

        return openai

    @property
    def _client(self) -> Any:
        with self._client_lock:
            if self._openai_client is None:
                self._openai_client = self._openai.OpenAI(
                    api_key=self.endpoint.api_key,
                    base_url=self.endpoint.base_url,
                    timeout=self.timeout_s,
                    max_retries=0,
                )
            return self._openai_client

    def _send(self, messages: list[dict[str, str]]) -> Any:
        """One request; a reply that is not a chat completion raises ValueError (retried, like a non-JSON body)."""
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
        return response

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The assistant's reply text; retries transient failures; raises :class:`LLMError` when it gives up."""
        down = self.server_down
        try:
            response = call_with_retries(
                lambda: self._send(messages),
                RetryPolicy(0) if down else self.policy,
                on_retry=_log_retry,
                extra_retryable=(ValueError,),  # a body that is not JSON
            )
        except RetriesExhausted as exc:
            if isinstance(exc.last, self._openai.APIConnectionError) and not down:  # timeouts included
                self.server_down = True
                log.warning(
                    "LLM server %s unreachable after %d tries; until it answers again, each request is tried "
                    "once (affected samples fall back and are redone by the next run)",
                    self.endpoint.base_url,
                    exc.attempts,
                )
            message = f"LLM request to {self.endpoint.base_url} failed: {_describe(exc.last)}"
            raise LLMError(message, transient=True) from exc.last
        except self._openai.OpenAIError as exc:  # not retryable (400, 401, 404, ...)
            message = f"LLM request to {self.endpoint.base_url} failed: {_describe(exc)}"
            raise LLMError(message, transient=is_transient_exception(exc)) from exc
        self.server_down = False
        return _text_of(response)


def _log_retry(attempt: int, exc: Exception, wait: float) -> None:
    log.warning("LLM request failed (%s); retry %d in %.2fs", _describe(exc), attempt + 1, wait)


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
