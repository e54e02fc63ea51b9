"""The LLM side of the caption verifier: prompts, and replies parsed into verdicts.

Every question asks for one JSON object; :func:`parse_json_reply` takes the first
``{...}`` of the reply. A reply without a usable object raises :class:`VerdictError`
(the caller records it and keeps the program's answer). Requests go through the shared
:class:`code_generator.llm_client.ChatClient` (retries, bounded concurrency); a request
that fails for good raises ``LLMError`` and the sample becomes an error row.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from code_generator.llm_client import ChatClient, RetryPolicy
from code_generator.providers import load_dotenv_file, resolve_endpoint

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

SYSTEM = "You check the output of a visual reasoning system against image captions. Reply with one JSON object only."


class VerdictError(ValueError):
    """The LLM's reply held no usable verdict."""


def parse_json_reply(text: str, required: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The first JSON object in ``text``, checked to hold ``required`` keys of the given types."""
    match = re.search(r"\{.*\}", text, flags=re.S)
    if match is None:
        raise VerdictError(f"no JSON object in the reply {text[:120]!r}")
    try:
        obj = json.loads(match.group(0))
    except json.JSONDecodeError as e:
        raise VerdictError(f"reply is not valid JSON ({e.msg}): {text[:120]!r}") from None
    if not isinstance(obj, dict):
        raise VerdictError(f"reply is not a JSON object: {text[:120]!r}")
    for key, tp in required.items():
        if key not in obj or not isinstance(obj[key], tp) or (isinstance(obj[key], bool) and bool not in _types(tp)):
            raise VerdictError(f"reply lacks '{key}' of type {_names(tp)}: {text[:160]!r}")
    return obj


def _types(tp: type | tuple[type, ...]) -> tuple[type, ...]:
    return tp if isinstance(tp, tuple) else (tp,)


def _names(tp: type | tuple[type, ...]) -> str:
    return "/".join(t.__name__ for t in _types(tp))


def _ask(client: ChatClient, prompt: str) -> str:
    return client.complete([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}])


# ---- image QA ----------------------------------------------------------------------------
def caption_answer(client: ChatClient, caption: str, question: str) -> dict[str, Any]:
    """Does the caption settle the question, and what answer does it imply? (Independent of the program.)"""
    prompt = (
        f"Image caption: {json.dumps(caption)}\nQuestion about the image: {json.dumps(question)}\n"
        "Does the caption give enough information to answer the question? Reply as "
        '{"settles": true|false, "answer": "<the short answer the caption implies, or empty>", '
        '"reason": "<one sentence>"}'
    )
    reply = _ask(client, prompt)
    obj = parse_json_reply(reply, {"settles": bool, "answer": (str, int, float)})
    return {"settles": obj["settles"], "answer": str(obj["answer"]).strip(), "reason": str(obj.get("reason", ""))}


def explicit_clue(
    client: ChatClient, caption: str, question: str, program_answer: str, caption_ans: str
) -> dict[str, Any]:
    """VLAgent's second look: does the caption state ``caption_ans`` explicitly (quote the words)?"""
    prompt = (
        f"Image caption: {json.dumps(caption)}\nQuestion: {json.dumps(question)}\n"
        f"A reasoning system answered {json.dumps(program_answer)}; the caption seems to imply "
        f"{json.dumps(caption_ans)}. Does the caption state explicit, accurate details that support "
        f"{json.dumps(caption_ans)} over {json.dumps(program_answer)}? Quote the exact words of the caption. Reply as "
        '{"explicit": true|false, "clue": "<exact words quoted from the caption, or empty>", "reason": "<one sentence>"}'
    )
    obj = parse_json_reply(_ask(client, prompt), {"explicit": bool, "clue": str})
    return {"explicit": obj["explicit"], "clue": obj["clue"].strip(), "reason": str(obj.get("reason", ""))}


# ---- referring expressions ---------------------------------------------------------------
def best_candidate(client: ChatClient, description: str, captions: dict[int, str]) -> dict[str, Any]:
    """Which candidate's caption matches the description best (``best``: its box index, or None)?"""
    listing = "\n".join(f"{i}: {json.dumps(c)}" for i, c in captions.items())
    prompt = (
        f"Description of one object: {json.dumps(description)}\nCaptions of candidate objects (index: caption):\n"
        f"{listing}\nWhich candidate does the description refer to? Reply as "
        '{"best": <candidate index, or null if none matches>, "reason": "<one sentence>"}'
    )
    obj = parse_json_reply(_ask(client, prompt), {})
    best = obj.get("best")
    if best is not None and (isinstance(best, bool) or not isinstance(best, int) or best not in captions):
        raise VerdictError(f"'best' must be one of {sorted(captions)} or null, got {best!r}")
    return {"best": best, "reason": str(obj.get("reason", ""))}


def compare_alignment(client: ChatClient, description: str, predicted: str, candidate: str) -> dict[str, Any]:
    """Rate (0-10) how well the predicted box's caption and the candidate's caption match the description."""
    prompt = (
        f"Description of one object: {json.dumps(description)}\n"
        f"Caption A (the system's choice): {json.dumps(predicted)}\nCaption B (another candidate): {json.dumps(candidate)}\n"
        "Rate from 0 (unrelated) to 10 (exact match) how well each caption matches the description. Reply as "
        '{"a": <0-10>, "b": <0-10>, "reason": "<one sentence>"}'
    )
    obj = parse_json_reply(_ask(client, prompt), {"a": (int, float), "b": (int, float)})
    return {"predicted": float(obj["a"]), "candidate": float(obj["b"]), "reason": str(obj.get("reason", ""))}


def build_client(config: RunConfig) -> ChatClient:
    """The ChatClient of ``verify.caption`` ("" fields fall back to the code generator's LLM settings)."""
    c = config.verify.caption
    provider = c.llm_provider or config.code_gen_provider
    base_url = c.llm_base_url or (config.code_gen_base_url if provider == config.code_gen_provider else "")
    load_dotenv_file()
    endpoint = resolve_endpoint(provider, base_url)
    return ChatClient(
        endpoint,
        c.llm_model or config.code_gen_model_name,
        temperature=0.0,
        max_tokens=512,
        timeout_s=c.llm_timeout_s,
        concurrency=max(1, config.code_gen_concurrency),
        policy=RetryPolicy(config.code_gen_http_retries, config.code_gen_backoff_s, config.code_gen_max_backoff_s),
    )
