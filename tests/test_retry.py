"""neptune_core.retry: Retry-After parsing, which openai errors are retried, backoff, and the loop itself."""

from __future__ import annotations

import email.utils
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from neptune_core.errors import ConfigError
from neptune_core.retry import (
    RetriesExhausted,
    RetryPolicy,
    call_with_retries,
    classify,
    parse_retry_after,
)

REQUEST = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")


def status_error(status: int, retry_after: str | None = None) -> openai.APIStatusError:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    response = httpx.Response(status, headers=headers, request=REQUEST)
    return openai.APIStatusError(f"HTTP {status}", response=response, body=None)


class Script:
    """A callable that raises the given exceptions in turn, then returns "ok"; counts its calls."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def run(fn: Script, policy: RetryPolicy, **kw) -> tuple[str, list[float]]:
    waits: list[float] = []
    return call_with_retries(fn, policy, sleep=waits.append, **kw), waits


FIXED = RetryPolicy(retries=4, backoff_s=1.0, max_backoff_s=5.0, jitter=False)


# ---- parse_retry_after ------------------------------------------------------------------
@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), ("0.25", 0.25), ("-4", 0.0), (" 7 ", 7.0)])
def test_parse_retry_after_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date() -> None:
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 27 <= parse_retry_after(future) <= 30
    naive = email.utils.formatdate(time.time() + 30)  # "-0000": no zone named, read as GMT
    assert 27 <= parse_retry_after(naive) <= 30
    assert parse_retry_after(email.utils.formatdate(time.time() - 300, usegmt=True)) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "Mon, 99 Foo 2024", "nan"])
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


# ---- classify -----------------------------------------------------------------------------
@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retryable(status: int) -> None:
    assert classify(status_error(status)) == (True, None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_statuses_are_not(status: int) -> None:
    assert classify(status_error(status, retry_after="1")) == (False, None)


def test_retry_after_read_from_429_and_5xx() -> None:
    assert classify(status_error(429, "7")) == (True, 7.0)
    assert classify(status_error(503, "1.5")) == (True, 1.5)
    retryable, seconds = classify(status_error(429, email.utils.formatdate(time.time() + 60, usegmt=True)))
    assert retryable and 57 <= seconds <= 60
    assert classify(status_error(429, "later")) == (True, None)
    response = httpx.Response(429, request=REQUEST)  # the client's own subclass, as the server makes it
    assert classify(openai.RateLimitError("slow down", response=response, body=None)) == (True, None)


def test_timeouts_and_connection_errors_are_retryable_other_errors_not() -> None:
    assert classify(openai.APITimeoutError(request=REQUEST)) == (True, None)
    assert classify(openai.APIConnectionError(request=REQUEST)) == (True, None)
    junk = openai.APIResponseValidationError(response=httpx.Response(200, request=REQUEST), body="x")
    assert classify(junk) == (False, None)
    assert classify(ValueError("not json")) == (False, None)
    assert classify(KeyError("x")) == (False, None)


# ---- RetryPolicy.delay ------------------------------------------------------------------------
def test_delay_doubles_up_to_the_cap_without_jitter() -> None:
    assert [FIXED.delay(a) for a in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_scales_each_wait_into_half_to_full() -> None:
    policy = RetryPolicy(retries=3, backoff_s=2.0, max_backoff_s=10.0)
    assert policy.jitter
    assert policy.delay(1, rand=lambda: 0.0) == 2.0 and policy.delay(1, rand=lambda: 0.999) == pytest.approx(3.998)
    waits = [policy.delay(3) for _ in range(300)]  # base 16, capped at 10
    assert all(5.0 <= w < 10.0 for w in waits) and max(waits) - min(waits) > 2.0


def test_follow_mode_waits_what_the_server_asks() -> None:
    policy = RetryPolicy(retries=5, backoff_s=1.0, max_backoff_s=60.0, jitter=False)
    assert policy.retry_after_mode == "follow"
    assert policy.delay(5, retry_after=2.0) == 3.0  # own backoff 32 s, shortened to Retry-After + backoff_s
    assert policy.delay(0, retry_after=0.0) == 1.0
    assert policy.delay(0, retry_after=120.0) == 120.0  # longer than max_backoff_s: still honoured
    jittered = RetryPolicy(backoff_s=1.0)
    assert all(2.0 <= jittered.delay(4, retry_after=2.0) <= 3.0 for _ in range(100))


def test_floor_mode_is_a_lower_bound_capped_at_max_backoff() -> None:
    policy = RetryPolicy(retries=5, backoff_s=1.0, max_backoff_s=10.0, jitter=False, retry_after_mode="floor")
    assert policy.delay(3, retry_after=2.0) == 8.0  # own backoff wins when longer
    assert policy.delay(0, retry_after=4.0) == 4.0
    assert policy.delay(0, retry_after=3600.0) == 10.0


@pytest.mark.parametrize(
    "kw", [{"retries": -1}, {"backoff_s": -0.1}, {"max_backoff_s": -1}, {"retry_after_mode": "always"}]
)
def test_bad_policy_is_a_config_error(kw: dict) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kw)


# ---- call_with_retries ----------------------------------------------------------------------
def test_transient_failures_are_retried_with_growing_waits() -> None:
    fn = Script(status_error(500), openai.APITimeoutError(request=REQUEST), status_error(409))
    out, waits = run(fn, FIXED)
    assert out == "ok" and fn.calls == 4 and waits == [1.0, 2.0, 4.0]


def test_non_retryable_error_is_raised_at_once_unchanged() -> None:
    error = status_error(401)
    fn = Script(error)
    waits: list[float] = []
    with pytest.raises(openai.APIStatusError) as info:
        call_with_retries(fn, FIXED, sleep=waits.append)
    assert info.value is error and fn.calls == 1 and waits == []
    fn = Script(KeyError("bug"))
    with pytest.raises(KeyError):
        call_with_retries(fn, FIXED, sleep=waits.append)
    assert fn.calls == 1 and waits == []


def test_exhausted_retries_carry_the_last_error() -> None:
    last = status_error(503)
    fn = Script(status_error(500), status_error(502), last, status_error(500))
    waits: list[float] = []
    with pytest.raises(RetriesExhausted, match="failed 3 times") as info:
        call_with_retries(fn, RetryPolicy(retries=2, backoff_s=0.5, jitter=False), sleep=waits.append)
    assert info.value.last is last and info.value.__cause__ is last and info.value.attempts == 3
    assert fn.calls == 3 and waits == [0.5, 1.0]


def test_retry_after_is_honoured() -> None:
    fn = Script(status_error(429, "4"), status_error(503, "0"))
    out, waits = run(fn, RetryPolicy(retries=3, backoff_s=0.01, max_backoff_s=0.1))
    assert out == "ok" and 4.0 <= waits[0] <= 4.01 and 0.0 <= waits[1] <= 0.01


def test_too_long_retry_after_gives_up_unless_unlimited() -> None:
    fn = Script(status_error(429, "900"))
    with pytest.raises(RetriesExhausted, match="retry after 900s") as info:
        run(fn, RetryPolicy(retries=3, jitter=False))  # default limit: 600 s
    assert fn.calls == 1 and info.value.attempts == 1
    fn = Script(status_error(429, "900"))
    out, waits = run(fn, RetryPolicy(retries=3, max_backoff_s=60.0, retry_after_mode="floor", max_retry_after_s=None))
    assert out == "ok" and waits == [60.0]


def test_extra_retryable_and_on_retry() -> None:
    seen: list[tuple[int, str, float]] = []
    fn = Script(ValueError("not json"), status_error(500))
    with pytest.raises(ValueError):  # not retryable by default
        run(Script(ValueError("not json")), FIXED)
    out, waits = run(fn, FIXED, extra_retryable=(ValueError,), on_retry=lambda a, e, w: seen.append((a, str(e), w)))
    assert out == "ok" and fn.calls == 3
    assert seen == [(0, "not json", 1.0), (1, "HTTP 500", 2.0)] and waits == [1.0, 2.0]


def test_zero_retries_is_one_try() -> None:
    fn = Script(status_error(500))
    with pytest.raises(RetriesExhausted):
        run(fn, RetryPolicy(retries=0))
    assert fn.calls == 1


def test_importing_the_module_does_not_import_openai() -> None:
    code = "import sys, neptune_core.retry; assert 'openai' not in sys.modules, 'openai imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
