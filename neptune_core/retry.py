"""One retry loop for every call to an OpenAI-compatible server (code generator, judge, VLM).

The ``openai`` client's own retries are switched off by the callers; they wrap each request
in :func:`call_with_retries`, which asks :func:`classify` whether a failure is worth another
try: 429 (with its ``Retry-After``), 408, 409, 5xx, timeouts and dropped connections are;
any other HTTP status (400, 401, 403, 404, 422, ...) is not and is raised at once. A caller
adds its own transient failures with ``extra_retryable`` (e.g. ``ValueError`` for a body that
is not JSON, or an exception it raises itself for a reply it cannot use).

How long to wait is a :class:`RetryPolicy`: exponential backoff from ``backoff_s``, doubling,
capped at ``max_backoff_s``, optionally jittered, and one of two ways to honour Retry-After
(``retry_after_mode``): "follow" waits what the server asked for (plus up to ``backoff_s``),
shorter or longer than our own backoff; "floor" waits at least that long, but never more than
``max_backoff_s``. A Retry-After above ``max_retry_after_s`` ends the retries at once instead
of stalling the run. When the tries run out, :class:`RetriesExhausted` carries the last error.

``openai`` is imported only inside :func:`classify`, so importing this module is cheap.
"""

from __future__ import annotations

import datetime
import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from neptune_core.errors import ConfigError

T = TypeVar("T")

MAX_RETRY_AFTER_S = 600.0  # default: a server asking for a longer pause fails the request instead of hanging the run

RETRYABLE_STATUSES = frozenset({408, 409, 429})  # plus every 5xx


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between tries of one request (``retries`` = tries after the first)."""

    retries: int = 5
    backoff_s: float = 1.0  # first wait; doubles per retry
    max_backoff_s: float = 60.0  # cap on our own backoff
    jitter: bool = True  # scale each backoff by a random factor in [0.5, 1)
    retry_after_mode: Literal["follow", "floor"] = "follow"
    max_retry_after_s: float | None = MAX_RETRY_AFTER_S  # a longer Retry-After: give up now; None = no limit

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError(
                f"backoff must be >= 0, got backoff_s={self.backoff_s}, max_backoff_s={self.max_backoff_s}"
            )
        if self.retry_after_mode not in ("follow", "floor"):
            raise ConfigError(f"retry_after_mode must be 'follow' or 'floor', got {self.retry_after_mode!r}")

    def delay(
        self, attempt: int, retry_after: float | None = None, *, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait before try ``attempt + 1`` (attempt counts from 0), given the server's Retry-After."""
        wait = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        if self.jitter:
            wait *= 0.5 + rand() / 2
        if retry_after is None:
            return wait
        if self.retry_after_mode == "follow":  # the server's word wins over our own (shorter or longer) backoff
            return max(retry_after, min(wait, retry_after + self.backoff_s))
        return min(self.max_backoff_s, max(wait, retry_after))  # "floor": at least Retry-After, up to the cap


class RetriesExhausted(Exception):
    """The last try failed with a retryable error (or the server asked for too long a pause); ``last`` is that error."""

    def __init__(self, last: BaseException, attempts: int, reason: str = "") -> None:
        self.last = last
        self.attempts = attempts
        self.reason = reason or f"failed {attempts} times"
        super().__init__(f"{self.reason}; last: {type(last).__name__}: {' '.join(str(last).split())[:200]}")


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (>= 0): a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; an HTTP date is always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())


def classify(exc: BaseException) -> tuple[bool, float | None]:
    """(worth another try, Retry-After seconds or None) for an exception from the ``openai`` client."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in RETRYABLE_STATUSES or status >= 500:
            return True, parse_retry_after(exc.response.headers.get("retry-after"))
        return False, None
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True, None
    return False, None


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, Exception, float], None] | None = None,
    extra_retryable: tuple[type[BaseException], ...] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, tried up to ``policy.retries + 1`` times.

    An error that is neither retryable per :func:`classify` nor an instance of
    ``extra_retryable`` is re-raised at once, unchanged. When the last try fails, or a
    Retry-After exceeds ``policy.max_retry_after_s``, raises :class:`RetriesExhausted`
    (from the last error). ``on_retry(attempt, error, wait_s)`` runs before each wait.
    """
    for attempt in range(policy.retries + 1):
        try:
            return fn()
        except Exception as exc:
            retry, retry_after = classify(exc)
            if not retry and isinstance(exc, extra_retryable):
                retry = True
            if not retry:
                raise
            if attempt == policy.retries:
                raise RetriesExhausted(exc, attempt + 1) from exc
            if retry_after is not None and policy.max_retry_after_s is not None:
                if retry_after > policy.max_retry_after_s:
                    reason = f"server asked to retry after {retry_after:.0f}s (limit {policy.max_retry_after_s:.0f}s)"
                    raise RetriesExhausted(exc, attempt + 1, reason) from exc
            wait = policy.delay(attempt, retry_after)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")
