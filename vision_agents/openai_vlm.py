"""VisionAgent on an OpenAI-compatible server (vLLM, SGLang, ...): ``intern_vllm`` / ``openai_vlm``.

Each (marked image, question) item is one chat request with the image as a base64 PNG
data URL, ``max_tokens=1``, ``logprobs=True`` and ``top_logprobs``. p(yes) is recovered
from the first token's top log-probabilities: the probability mass of the tokens that
read "yes" (any case, stripped) over that of "yes" plus "no". When neither appears in
the top list the model gave no yes/no evidence: p(yes) is 0.5 and the call's trace entry says
so (``unknown_concepts``: the question, "no yes/no token in the top-k"), which the run summary
counts and warns about.

Requests run concurrently in a bounded thread pool (``vlm_batch_size`` workers). 429,
408, 409, 5xx, timeouts and connection errors are retried (the shared loop of
:mod:`neptune_core.retry`) with exponential backoff without jitter (``backoff_s``,
doubling, capped at ``max_backoff_s``; a Retry-After header is honoured up to the cap);
when the retries run out the last error is raised. Other errors (400, 401, 404, ...)
raise at once. The served model name is asked from ``/v1/models``
(a vLLM server serves one model) unless given as ``model``.
The API key comes from ``VLM_API_KEY`` (or ``OPENAI_API_KEY``) in the environment; local
servers usually need none.
"""

from __future__ import annotations

import base64
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from neptune_core.errors import ConfigError
from neptune_core.retry import RetriesExhausted, RetryPolicy, call_with_retries
from neptune_core.types import Box
from vision_agents.base import BoxTuple, VisionAgent
from vision_agents.object_marking import BOX_MARKER, ObjectMarker
from vision_agents.prompting import fold, normalize_answer, same_box_pair, score_items, shape_questions
from vision_agents.vocabulary import unknown_info

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


def image_data_url(image: Image.Image) -> str:
    """``data:image/png;base64,...`` for ``image``."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def p_yes_from_top_logprobs(top: list[tuple[str, float]]) -> float:
    """p(yes) from (token, logprob) pairs: yes mass / (yes + no mass); 0.5 without either."""
    return yes_no_evidence(top)[0]


def yes_no_evidence(top: list[tuple[str, float]]) -> tuple[float, bool]:
    """(p(yes), whether "yes" or "no" was among the tokens at all)."""
    yes = sum(math.exp(lp) for tok, lp in top if tok.strip().lower() == "yes")
    no = sum(math.exp(lp) for tok, lp in top if tok.strip().lower() == "no")
    return (0.5, False) if yes + no == 0 else (yes / (yes + no), True)


def _no_evidence_info(question: str, found: list[bool], k: int) -> dict[str, Any]:
    """The trace info for one question: which of its evaluations had no yes/no token in the top ``k``."""
    missing = found.count(False)
    return unknown_info(
        [f"no yes/no token in the top {k} logprobs ({missing} of {len(found)}): {question}"] if missing else []
    )


class OpenAIVisionAgent(VisionAgent):
    """Yes/no scores and answers from an OpenAI-compatible chat completions endpoint."""

    name = "openai_vlm"

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "",
        api_key: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 60.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        top_logprobs: int = 20,
        max_answer_tokens: int = 10,
    ) -> None:
        if not base_url:
            raise ConfigError(
                "vlm_base_url is empty: set it to the server's OpenAI-compatible URL, e.g. http://localhost:8000/v1"
            )
        import openai

        self.base_url = base_url
        self.model = model
        self.concurrency = max(1, concurrency)
        self.policy = RetryPolicy(
            retries, backoff_s, max_backoff_s, jitter=False, retry_after_mode="floor", max_retry_after_s=None
        )
        self.top_logprobs = top_logprobs
        self.object_marker: ObjectMarker = BOX_MARKER  # the run's marking (use_marker)
        self.max_answer_tokens = max_answer_tokens
        key = api_key or os.environ.get("VLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._api_key = key
        # retries are ours (self.policy), so that backoff and which errors count are explicit
        self.client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=0)
        self.requests = 0  # requests sent, retries included

    @property
    def retries(self) -> int:
        return self.policy.retries

    @property
    def backoff_s(self) -> float:
        return self.policy.backoff_s

    @classmethod
    def from_config(cls, config: RunConfig) -> OpenAIVisionAgent:
        agent = cls(config.vlm_base_url, concurrency=config.vlm_batch_size)
        agent.name = config.vlm_model_name
        return agent

    # ---- preflight -----------------------------------------------------------------
    def preflight(self) -> None:
        """Before the first sample: the server answers, accepts the key, serves the model, and
        returns logprobs for an image question (one small request; see :mod:`neptune_core.endpoints`)."""
        from neptune_core.endpoints import PROBE_TEXT, EndpointCheck, check_endpoint

        def has_logprobs(response: Any) -> str | None:
            lp = response.choices[0].logprobs if response.choices else None
            if lp is None or not lp.content:
                return "it returned no logprobs for an image question (p(yes) needs logprobs=True)"
            return None

        image = Image.new("RGB", (16, 16), (128, 128, 128))
        self.model = check_endpoint(
            EndpointCheck(
                what=f"VLM server (vlm_model_name '{self.name}')",
                base_url=self.base_url,
                api_key=self._api_key,
                model=self.model,
                url_setting="vlm_base_url",
                model_setting="the served model (the server must serve exactly one)",
                key_hint="set VLM_API_KEY (environment or .env)",
                chat_content=[
                    {"type": "image_url", "image_url": {"url": image_data_url(image)}},
                    {"type": "text", "text": PROBE_TEXT},
                ],
                chat_kwargs={"logprobs": True, "top_logprobs": 2},
                validate=has_logprobs,
            )
        )

    # ---- plumbing ------------------------------------------------------------------
    def _model_name(self) -> str:
        if not self.model:
            served = [m.id for m in self._call(self.client.models.list).data]
            if len(served) != 1:
                raise ConfigError(f"server {self.base_url} serves {len(served)} models ({', '.join(served)}); name one")
            self.model = served[0]
        return self.model

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        """``fn(**kwargs)`` with retries; when they run out, the server's last error is raised as it came."""

        def once() -> Any:
            self.requests += 1
            return fn(**kwargs)

        try:
            return call_with_retries(once, self.policy)
        except RetriesExhausted as gave_up:
            raise gave_up.last from gave_up.last.__cause__  # as before: no wrapper, its own cause kept

    def _chat(self, image: Image.Image, question: str, **kwargs: Any) -> Any:
        content = [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}},
            {"type": "text", "text": question},
        ]
        return self._call(
            self.client.chat.completions.create,
            model=self._model_name(),
            messages=[{"role": "user", "content": content}],
            temperature=0.0,
            **kwargs,
        )

    def _p_yes(self, item: tuple[Image.Image, str]) -> tuple[float, bool]:
        """(p(yes), whether the model's top tokens held "yes" or "no") for one marked image and question."""
        resp = self._chat(*item, max_tokens=1, logprobs=True, top_logprobs=self.top_logprobs)
        lp = resp.choices[0].logprobs
        if lp is None or not lp.content:
            raise RuntimeError(f"server {self.base_url} returned no logprobs (does it support logprobs=True?)")
        first = lp.content[0]
        pairs = [(t.token, t.logprob) for t in (first.top_logprobs or [])] or [(first.token, first.logprob)]
        return yes_no_evidence(pairs)

    def _evaluate(self, items: list[tuple[Image.Image, str]]) -> tuple[torch.Tensor, list[bool]]:
        self._model_name()
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(items)))) as pool:
            results = list(pool.map(self._p_yes, items))
        return torch.tensor([p for p, _ in results], dtype=torch.float32), [found for _, found in results]

    def use_marker(self, marker: ObjectMarker) -> None:
        self.object_marker = marker

    # ---- VisionAgent ----------------------------------------------------------------
    def score(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int, type: str = "yes_no"
    ) -> torch.Tensor:
        return self.score_with_info(image, boxes, shape_questions(questions, type), arity)[0]

    def score_with_info(
        self, image: Image.Image, boxes: list[Box], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """:meth:`score` plus, per question, the evaluations whose top tokens held neither yes nor no."""
        items = score_items(image, boxes, questions, arity, self.object_marker)
        probs, found = self._evaluate(items)
        per_q = len(items) // max(1, len(questions))
        infos = [
            _no_evidence_info(q, found[i * per_q : (i + 1) * per_q], self.top_logprobs) for i, q in enumerate(questions)
        ]
        return fold(probs, len(questions), len(boxes), arity), infos

    def score_tuples_with_info(
        self, image: Image.Image, tuples: list[BoxTuple], questions: list[str], arity: int
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """One request per (question, tuple) asked for; a pair of one box with itself is 0 (the diagonal)."""
        keep = [i for i, t in enumerate(tuples) if not same_box_pair(t)]
        self.object_marker.prepare(image, [tuples[i] for i in keep])
        marked = {i: self.object_marker.mark(image, tuples[i]) for i in keep}
        items = [(marked[i], q) for q in questions for i in keep]
        out = torch.zeros(len(questions), len(tuples))
        if not items:
            return out, [{} for _ in questions]
        probs, found = self._evaluate(items)
        out[:, keep] = probs.reshape(len(questions), len(keep))
        n = len(keep)
        infos = [_no_evidence_info(q, found[i * n : (i + 1) * n], self.top_logprobs) for i, q in enumerate(questions)]
        return out, infos

    def answer(self, image: Image.Image, box: Box | None, question: str) -> str:
        marked = self.object_marker.mark(image, () if box is None else (box,))
        resp = self._chat(marked, question, max_tokens=self.max_answer_tokens)
        return normalize_answer(resp.choices[0].message.content or "")
