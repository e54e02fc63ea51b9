"""Preflight of an OpenAI-compatible endpoint: reachable, key accepted, model served.

:func:`check_endpoint` is what the LLM program generator, the OpenAI-compatible VLM and
the ``--evaluate`` judge call once before any work. It sends two cheap requests, without
retries and under one short deadline (:data:`PREFLIGHT_TIMEOUT_S` in all):

1. ``GET <base_url>/models``. Connection refused or no answer: unreachable. 401/403: the
   key. 404 on a URL without ``/v1``: the path (the fix is to add ``/v1``). A body that is
   not a model list: not an OpenAI-compatible server (a wrong port). When the server lists
   its models, the model must be one of them (llama.cpp, for one, serves any name it is
   sent with the model it loaded, so a typo would otherwise go unnoticed).
2. One chat completion of one token for the model (with the caller's extra arguments,
   e.g. an image and logprobs for a VLM). This checks the key where ``/models`` is public
   (OpenRouter), and the model name where ``/models`` is missing.

Any failure raises :class:`EndpointUnavailableError` (a ``UserError``: run.py prints it on
one line and exits 2) naming what was checked, the base URL, and the setting to change.
A 429 is taken as "reachable, key accepted" (the run's own retries wait for the rate limit).
Requests carry :data:`PROBE_TEXT`, so a server log (or a test) can tell them apart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from neptune_core.errors import UserError

PREFLIGHT_TIMEOUT_S = 8.0  # both requests together; a dead server fails at once (connection refused)
MODELS_TIMEOUT_S = 3.0
PROBE_TEXT = "NePTune preflight check: reply with the single word OK."


class EndpointUnavailableError(UserError):
    """An endpoint the run needs cannot be used; the message says which setting to fix."""


@dataclass
class EndpointCheck:
    """What to check and how to tell the user to fix it.

    ``what`` names the component ("LLM program generator (provider 'vllm')"); ``url_setting``,
    ``model_setting`` and ``key_hint`` say what to change. ``model`` empty: the server must
    serve exactly one model, which is returned by :func:`check_endpoint`.
    """

    what: str
    base_url: str
    api_key: str
    model: str
    url_setting: str
    model_setting: str
    key_hint: str
    chat_content: Any = PROBE_TEXT  # the user message (a VLM sends an image with it)
    chat_kwargs: dict[str, Any] = field(default_factory=dict)
    validate: Callable[[Any], str | None] | None = None  # the chat reply -> a problem, or None when usable
    timeout_s: float = PREFLIGHT_TIMEOUT_S


def _first_line(text: str, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def _error_message(body: bytes | str) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body's first characters."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    try:
        data = json.loads(text)
    except ValueError:
        return _first_line(text, 120)
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return _first_line(err["message"], 160)
    if isinstance(err, str):
        return _first_line(err, 160)
    return _first_line(text, 120)


def _fail(check: EndpointCheck, problem: str, fix: str) -> EndpointUnavailableError:
    return EndpointUnavailableError(f"{check.what} at {check.base_url}: {problem}; {fix}")


def _unreachable(check: EndpointCheck, exc: BaseException, timeout: float) -> EndpointUnavailableError:
    import httpx

    if isinstance(exc, httpx.TimeoutException) or type(exc).__name__ == "APITimeoutError":
        problem = f"no answer within {timeout:.0f} s"
    else:
        problem = f"cannot connect ({_first_line(str(exc) or type(exc).__name__, 120)})"
    return _fail(check, problem, f"start the server, or fix {check.url_setting} (host, port and the /v1 path)")


def _list_models(check: EndpointCheck, deadline: float) -> tuple[list[str] | None, int]:
    """(the served model ids, or None when the server has no model list; the HTTP status of ``/models``)."""
    import httpx

    url = check.base_url.rstrip("/") + "/models"
    timeout = max(0.5, min(MODELS_TIMEOUT_S, deadline - time.monotonic()))
    try:
        resp = httpx.get(url, headers={"Authorization": f"Bearer {check.api_key}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise _unreachable(check, exc, timeout) from None
    if resp.status_code in (401, 403):
        raise _fail(
            check, f"the API key was refused (HTTP {resp.status_code}: {_error_message(resp.content)})", check.key_hint
        )
    if resp.status_code == 404:
        if not check.base_url.rstrip("/").endswith("/v1"):
            raise _fail(
                check,
                f"GET {url} answered 404 (not an OpenAI-compatible path)",
                f"OpenAI-compatible servers answer under /v1: set {check.url_setting} to "
                f"{check.base_url.rstrip('/')}/v1",
            )
        return None, 404
    if resp.status_code >= 400:
        return None, resp.status_code  # no usable list (some servers only serve chat): the chat request decides
    try:
        data = resp.json()
        ids = [str(m["id"]) for m in data["data"]]
    except (ValueError, KeyError, TypeError):
        raise _fail(
            check,
            f"GET {url} did not answer with a model list (HTTP {resp.status_code}, "
            f"{resp.headers.get('content-type', 'no content type')}): not an OpenAI-compatible server",
            f"fix {check.url_setting} (wrong port or path?)",
        ) from None
    return ids, resp.status_code


def _probe_chat(check: EndpointCheck, model: str, deadline: float, models_status: int) -> Any:
    import openai

    timeout = max(1.0, deadline - time.monotonic())
    client = openai.OpenAI(base_url=check.base_url, api_key=check.api_key, timeout=timeout, max_retries=0)
    try:
        return client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": check.chat_content}],
            max_tokens=1,
            temperature=0.0,
            **check.chat_kwargs,
        )
    except (openai.APITimeoutError, openai.APIConnectionError) as exc:
        raise _unreachable(check, exc, timeout) from None
    except openai.RateLimitError:
        return None  # reachable, key accepted; the run's retries wait for the rate limit
    except openai.APIStatusError as exc:
        status, message = exc.status_code, _error_message(exc.response.content)
        if status in (401, 403):
            raise _fail(check, f"the API key was refused (HTTP {status}: {message})", check.key_hint) from None
        if status == 404 and not check.base_url.rstrip("/").endswith("/v1"):
            raise _fail(
                check,
                f"a chat request answered 404 ({message})",
                f"OpenAI-compatible servers answer under /v1: set {check.url_setting} to "
                f"{check.base_url.rstrip('/')}/v1",
            ) from None
        if status == 404 and models_status == 404 and "model" not in message.lower():
            raise _fail(
                check,
                f"neither GET /models nor a chat request found a route (HTTP 404: {message})",
                f"this is not an OpenAI-compatible server: fix {check.url_setting} (wrong port or path?)",
            ) from None
        if status in (400, 404, 422):
            raise _fail(
                check,
                f"a one-token request for model '{model}' was refused (HTTP {status}: {message})",
                f"check {check.model_setting} (is this model served here?)",
            ) from None
        raise _fail(
            check, f"the server answered HTTP {status} ({message})", "try again when the server works"
        ) from None
    except openai.APIResponseValidationError:
        raise _fail(
            check, "a chat request did not get a chat completion back", f"fix {check.url_setting} (wrong port or path?)"
        ) from None


def check_endpoint(check: EndpointCheck) -> str:
    """Check ``check``'s endpoint (see the module docstring); return the model name to use."""
    deadline = time.monotonic() + check.timeout_s
    served, models_status = _list_models(check, deadline)
    model = check.model
    if served is not None:
        listed = ", ".join(served[:12]) + (f" and {len(served) - 12} more" if len(served) > 12 else "")
        if not model:
            if len(served) != 1:
                raise _fail(
                    check, f"the server lists {len(served)} models ({listed})", f"name one in {check.model_setting}"
                )
            model = served[0]
        elif model not in served:
            raise _fail(
                check,
                f"model '{model}' is not served (the server lists: {listed or 'none'})",
                f"set {check.model_setting} to a listed model",
            )
    elif not model:
        raise _fail(check, "the server does not list its models", f"name the model in {check.model_setting}")
    response = _probe_chat(check, model, deadline, models_status)
    if response is not None and not getattr(response, "choices", None):
        raise _fail(
            check, "a chat request got an answer without choices", f"fix {check.url_setting} (wrong port or path?)"
        )
    if response is not None and check.validate is not None:
        problem = check.validate(response)
        if problem:
            raise _fail(check, problem, f"serve a model that can, or change {check.model_setting}")
    return model
