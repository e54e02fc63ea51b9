"""LLM providers: where each one lives and which environment variable holds its key.

Every provider speaks the OpenAI chat-completions protocol and is reached with the
``openai`` package. Add a provider with one line in :data:`PROVIDERS`. Keys come from
the environment or a ``.env`` file (loaded explicitly by :func:`load_dotenv_file`,
never at import); they are never logged or written anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from neptune_core.errors import UserError


@dataclass(frozen=True)
class ProviderSpec:
    """A provider's default endpoint and the environment variable with its key (None: no key needed)."""

    name: str
    base_url: str
    key_env: str | None


PROVIDERS: dict[str, ProviderSpec] = {
    "openrouter": ProviderSpec("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "deepseek": ProviderSpec("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "openai": ProviderSpec("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "vllm": ProviderSpec("vllm", "http://127.0.0.1:8000/v1", None),
}

# A local server needs no key; the openai client still wants a non-empty string.
_NO_KEY = "not-needed"
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "[::1]")


class MissingAPIKeyError(UserError):
    """The provider's API key is not set."""


@dataclass(frozen=True)
class Endpoint:
    """What a client needs: the base URL and the key (never printed: see ``__repr__``)."""

    provider: str
    base_url: str
    api_key: str

    def __repr__(self) -> str:
        return f"Endpoint(provider={self.provider!r}, base_url={self.base_url!r}, api_key=<hidden>)"


def load_dotenv_file(path: str | os.PathLike | None = None) -> bool:
    """Load ``.env`` (from ``path``, else the current directory upwards) into the environment.

    Variables already set in the environment win. Call once at the start of a run.
    Returns whether a file was found.
    """
    from dotenv import find_dotenv, load_dotenv

    found = str(path) if path is not None else find_dotenv(usecwd=True)
    if not found or not Path(found).is_file():
        return False
    return bool(load_dotenv(found, override=False))


def _is_local(url: str) -> bool:
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    return host in _LOCAL_HOSTS


def resolve_endpoint(provider: str, base_url: str = "", env: dict[str, str] | None = None) -> Endpoint:
    """The endpoint for ``provider`` (``base_url`` overrides its default URL).

    Raises :class:`MissingAPIKeyError` naming the variable when a remote provider has no key,
    and a :class:`UserError` for an unknown provider. A local ``base_url`` needs no key.
    """
    env = dict(os.environ) if env is None else env
    if provider not in PROVIDERS:
        if not base_url:
            known = ", ".join(sorted(PROVIDERS))
            raise UserError(
                f"unknown code_gen_provider '{provider}'; known: {known} (or set code_gen_base_url for any "
                "OpenAI-compatible server)"
            )
        spec = ProviderSpec(provider, base_url, None)
    else:
        spec = PROVIDERS[provider]
    url = (base_url or spec.base_url).rstrip("/")
    if spec.key_env is None:
        return Endpoint(spec.name, url, env.get("OPENAI_API_KEY") or _NO_KEY)
    key = env.get(spec.key_env, "").strip()
    if not key:
        if _is_local(url):
            return Endpoint(spec.name, url, _NO_KEY)
        raise MissingAPIKeyError(
            f"code_gen_provider '{provider}' needs the environment variable {spec.key_env} "
            "(set it in the environment or in a .env file)"
        )
    return Endpoint(spec.name, url, key)
