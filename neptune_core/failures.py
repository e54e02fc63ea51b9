"""Which failures are transient: they came from the world, not from the sample.

A dropped connection, a timeout, a rate limit, a server or model that was unavailable, an
interruption: trying the same sample again later may well succeed, so a row that failed
this way, or fell back because of such a failure, is not final (:mod:`runners.outcomes`)
and the next run of the same command redoes it.

Failures are recognised by exception type *name* (plus the HTTP status where the exception
carries one), so a failure that crossed a process boundary as a recorded type name is
classified the same way. Add a transient failure type: one name in :data:`TRANSIENT_TYPES`.
"""

from __future__ import annotations

import re
from typing import Any

TRANSIENT_TYPES = frozenset(
    {
        # the openai client (any OpenAI-compatible server)
        "APIConnectionError",
        "APITimeoutError",
        "RateLimitError",
        "InternalServerError",
        "ConflictError",
        "AuthenticationError",  # a key revoked mid-run: setup, redone once fixed (preflight checks it)
        "PermissionDeniedError",
        "NotFoundError",  # the model was unloaded from the server
        # httpx / requests / the standard library
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ReadError",
        "RemoteProtocolError",
        "Timeout",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "TimeoutError",
        # models and hubs
        "ModelUnavailableError",
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "OutOfMemoryError",  # torch.cuda.OutOfMemoryError: another process held the GPU
        # our own retry loop giving up, and interruptions
        "RetriesExhausted",
        "KeyboardInterrupt",
        "Interrupted",
    }
)
_TRANSIENT_STATUS = frozenset({401, 403, 404, 408, 409, 429})  # plus every 5xx
_NAME_IN_MESSAGE = re.compile(r"\b(" + "|".join(sorted(TRANSIENT_TYPES)) + r")\b")
# errors that only wrap another one: their message names the inner type ("... failed in score(...): X: ...")
_WRAPPERS = frozenset({"AgentError", "LLMError"})


def is_transient_exception(exc: BaseException | None) -> bool:
    """True when ``exc`` or anything in its cause chain is a transient failure."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        marked = getattr(exc, "transient", None)
        if isinstance(marked, bool):  # the raiser knew (e.g. code_generator.llm_client.LLMError)
            return marked
        if type(exc).__name__ in TRANSIENT_TYPES or isinstance(exc, (ConnectionError, TimeoutError)):
            return True
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and (status in _TRANSIENT_STATUS or status >= 500):
            return True
        exc = exc.__cause__ if exc.__cause__ is not None else (None if exc.__suppress_context__ else exc.__context__)
    return False


def is_transient_error(error: dict[str, Any]) -> bool:
    """True when a recorded error (``{"type", "message", ...}``) is a transient failure."""
    if "transient" in error:
        return bool(error["transient"])
    kind = str(error.get("type", ""))
    if kind in TRANSIENT_TYPES:
        return True
    return kind in _WRAPPERS and bool(_NAME_IN_MESSAGE.search(str(error.get("message", ""))))
