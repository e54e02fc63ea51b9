"""The perception primitives passed to ``execute(score, query, n)``: ``score`` and ``query``.

They are built per run by :func:`make_primitives` as closures over the vision agent,
the image, the boxes and the trace; time spent inside them is not program time.
With a ``lazy`` policy (config ``calls.lazy_relations``), ``score(question, 2)`` returns a
lazy relation whose pairs are evaluated when the program reads them (lazy_score.py).
Their docstrings (:data:`PRIMITIVE_DOCS`, :data:`PRIMITIVE_SIGNATURES`) feed the API
section of the LLM prompt, so keep them short and exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from neptune_core.executor.guards import AgentError, Budget
from neptune_core.executor.lazy_score import LazyEntry, fetch_entries, lazy_relation
from neptune_core.types import Box
from probabilistic_tensor import LazyPolicy, ProbabilisticTensor, Semantics
from vision_agents.base import VisionAgent
from vision_agents.prompting import class_question

SCORE_DOC = """Ask the vision model a yes/no question; returns p(yes) as a ProbabilisticTensor.

num_objects=0: a 0-d tensor about the whole image, e.g. score("Is it daytime?", 0).
num_objects=1: a tensor over variable "x", one value per box (box i marked in red),
    e.g. score("Is the object in the red box a cube?").
num_objects=2: a tensor over variables ("x", "y"), n x n (x = subject in the red box,
    y = object in the green box), e.g. score("Is the red-box object left of the green-box object?", 2).
type="class": the question is a class name (e.g. score("person", 1, type="class")) and the model
    is asked whether the box holds one; any other type is a label recorded in the trace."""

QUERY_DOC = """Ask the vision model an open question; returns a short lower-case answer string.

object_id: a box index (int, 0 <= object_id < n) marked in red, or a 1-d ProbabilisticTensor
(its most probable box is used, e.g. the result of .iota()), or None for the whole image.
e.g. query("What color is the object in the red box?", target.iota())"""

PRIMITIVE_SIGNATURES: dict[str, str] = {
    "score": "score(question: str, num_objects: int = 1, type: str | None = None) -> ProbabilisticTensor",
    "query": "query(question: str, object_id: int | ProbabilisticTensor | None = None) -> str",
}
PRIMITIVE_DOCS: dict[str, str] = {"score": SCORE_DOC, "query": QUERY_DOC}

_VARS: dict[int, tuple[str, ...]] = {0: (), 1: ("x",), 2: ("x", "y")}


def _rounded(values: Any) -> Any:
    if isinstance(values, list):
        return [_rounded(v) for v in values]
    return round(float(values), 4)


def make_primitives(
    agent: VisionAgent,
    image: Image.Image,
    boxes: list[Box],
    semantics: Semantics,
    trace: list[dict[str, Any]],
    budget: Budget,
    lazy: LazyPolicy | None = None,
) -> tuple[Callable[..., ProbabilisticTensor], Callable[..., str]]:
    """``(score, query)`` for one run; each call appends an entry to ``trace``.

    ``lazy``: relations (``num_objects=2``) are lazy, evaluated pair by pair as the program reads them.
    """
    n = len(boxes)

    def relation(question: str, type: str | None) -> ProbabilisticTensor:  # noqa: A002
        entry: dict[str, Any] = {"primitive": "score", "question": question, "arity": 2, "type": type}
        record = LazyEntry(entry, n)
        trace.append(entry)

        def fetch(entries: list[tuple[int, ...]]) -> torch.Tensor:
            with budget.primitive_time():
                values, info = fetch_entries(agent, image, boxes, question, entries)
            record.add(entries, values, info)
            return values

        assert lazy is not None
        return lazy_relation(n, fetch, semantics, lazy, on_change=record.update)

    def score(question: str, num_objects: int = 1, type: str | None = None) -> ProbabilisticTensor:  # noqa: A002
        if not isinstance(question, str) or not question.strip():
            raise TypeError(f"score() question must be a non-empty string, got {question!r}")
        if isinstance(num_objects, bool) or not isinstance(num_objects, int) or num_objects not in (0, 1, 2):
            raise ValueError(f"score() num_objects must be 0, 1 or 2, got {num_objects!r}")
        if type is not None and not isinstance(type, str):
            raise TypeError(f"score() type must be a string or None, got {type!r}")
        if type == "class":
            question = class_question(question)
        if num_objects == 2 and lazy is not None and n > 0:
            return relation(question, type)
        shape = (n,) * num_objects
        infos: list[dict[str, Any]] = [{}]
        if n == 0 and num_objects > 0:
            data = torch.zeros(shape)
        else:
            with budget.primitive_time():
                try:
                    out, infos = agent.score_with_info(image, boxes, [question], num_objects)
                except Exception as e:
                    raise AgentError(
                        f"vision agent '{agent.name}' failed in score({question!r}): {e.__class__.__name__}: {e}"
                    ) from e
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, *shape) or len(infos) != 1:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else out.__class__.__name__
                raise AgentError(f"vision agent '{agent.name}' returned {got} for score(); expected {(1, *shape)}")
            data = out[0]
        entry: dict[str, Any] = {
            "primitive": "score",
            "question": question,
            "arity": num_objects,
            "type": type,
            "probs": _rounded(data.detach().float().cpu().tolist()),
        }
        if infos[0]:
            entry["info"] = infos[0]
        trace.append(entry)
        return ProbabilisticTensor(data, vars=_VARS[num_objects], semantics=semantics)

    def query(question: str, object_id: int | ProbabilisticTensor | None = None) -> str:
        if not isinstance(question, str) or not question.strip():
            raise TypeError(f"query() question must be a non-empty string, got {question!r}")
        if isinstance(object_id, ProbabilisticTensor):
            if len(object_id.vars) != 1:
                raise ValueError(f"query() object_id tensor must have one variable, got vars {object_id.vars}")
            object_id = object_id.argmax()
        if object_id is not None:
            if isinstance(object_id, bool) or not isinstance(object_id, int):
                raise TypeError(f"query() object_id must be an int box index, a 1-d tensor or None, got {object_id!r}")
            if not 0 <= object_id < n:
                raise IndexError(f"query() object_id {object_id} is out of range for {n} boxes")
        with budget.primitive_time():
            try:
                answer, info = agent.answer_with_info(image, None if object_id is None else boxes[object_id], question)
            except Exception as e:
                raise AgentError(
                    f"vision agent '{agent.name}' failed in query({question!r}): {e.__class__.__name__}: {e}"
                ) from e
        if not isinstance(answer, str):
            raise AgentError(f"vision agent '{agent.name}' returned {answer.__class__.__name__} from answer(), not str")
        entry = {"primitive": "query", "question": question, "object_id": object_id, "answer": answer}
        if info:
            entry["info"] = info
        trace.append(entry)
        return answer

    score.__doc__ = SCORE_DOC
    query.__doc__ = QUERY_DOC
    return score, query
