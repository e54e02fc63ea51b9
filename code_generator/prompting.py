"""Prompt assembly: a task family's template (prompts/<task>.txt) plus an API section
generated from the code's own docstrings, so the prompt cannot drift from the code.

Template syntax: ``{{include NAME}}`` inserts prompts/NAME; ``{{api}}`` the generated API
section (``{{api_video}}``: with the primitives of video samples); ``{{question}}`` the question; a line ``=== user ===`` splits the system
message (above) from the user message (below). Add a task family: write
prompts/<task>.txt (usually ``{{include common.txt}}``, a description of the data and
worked examples), list it in :data:`TASKS`, and map its dataset names in
:data:`DATASET_TASKS`; then refresh the snapshots (see tests/test_prompts.py).

Which family a sample gets (:func:`task_for_sample`): its own ``meta["task"]`` (a JSONL
line's or a dataset column's ``task``), else its dataset's family, else a general-purpose
one by what the sample asks for: "grounding" when its gold answer is a box, "vqa" otherwise.
The general families (prompts/vqa.txt, prompts/grounding.txt) have everyday-scene examples
and work for any dataset.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neptune_core.errors import UserError

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
TASKS = ("clevr", "clevr_humans", "clevr_transfer", "refexp", "vqa", "grounding", "gqa", "vqav2", "mme", "nlvr2",
         "hc_refloco", "nextqa")  # fmt: skip
BOX_TASKS = frozenset({"refexp", "grounding", "hc_refloco"})  # families whose programs return a distribution over boxes
YES_NO_TASKS = frozenset({"mme", "nlvr2"})  # families whose answer is always yes or no
VIDEO_TASKS = frozenset({"nextqa"})  # families of video samples (multiple choice; programs over frames)
DATASET_TASKS = {  # config ``dataset`` -> prompt family (the names registered in local_datasets/)
    "clevr_synthetic": "clevr",
    "clevr": "clevr",
    "clevr_humans": "clevr_humans",
    "clevr_refexps": "clevr_transfer",
    "clevr_puzzle": "clevr_transfer",
    "clevr_rpm": "clevr_transfer",
    "refadv": "refexp",
    "refgta": "refexp",
    "gqa": "gqa",
    "vqav2": "vqav2",
    "mme": "mme",
    "nlvr2": "nlvr2",
    "hc_refloco": "hc_refloco",
    "nextqa": "nextqa",
    "video_synthetic": "nextqa",
}  # other datasets (jsonl, hf, ...): the sample's own task, else "grounding" / "vqa" by its answer
USER_SPLIT = "=== user ==="

# Operators a program may use on tensors: (the method that implements it, how it is written).
OPERATORS: tuple[tuple[str, str], ...] = (
    ("__call__", 't("y"), r("y", "z")'),
    ("__and__", "a & b"),
    ("__or__", "a | b"),
    ("__invert__", "~a"),
    ("__eq__", "s1 == s2"),
    ("__ne__", "s1 != s2"),
    ("__gt__", "s1 > s2"),
    ("__lt__", "s1 < s2"),
    ("__ge__", "s1 >= s2"),
    ("__le__", "s1 <= s2"),
    ("__add__", "s1 + s2"),
    ("__sub__", "s1 - s2"),
    ("__getitem__", "t[i]"),
    ("__len__", "len(t)"),
    ("__bool__", "bool(t)"),
)


def task_for_dataset(dataset: str) -> str:
    """The prompt family for a dataset name (a task name maps to itself)."""
    if dataset in DATASET_TASKS:
        return DATASET_TASKS[dataset]
    known = ", ".join(sorted(DATASET_TASKS))
    raise UserError(f"no program prompt for dataset '{dataset}'; known: {known}")


def check_task(task: str, where: str = "") -> str:
    """``task`` if it names a prompt family, else a one-line UserError listing the families."""
    if task not in TASKS:
        raise UserError(f"{where}unknown task {task!r}; known prompt families: {', '.join(TASKS)}")
    return task


def task_for_sample(sample: Any, default: str | None = None) -> str:
    """The prompt family of a sample: its ``meta["task"]``, else ``default`` (the dataset's family),
    else "grounding" when its gold answer is a box [x1, y1, x2, y2] and "vqa" otherwise."""
    meta = getattr(sample, "meta", None) or {}
    if meta.get("task"):
        return check_task(str(meta["task"]), f"sample {getattr(sample, 'id', '?')}: ")
    if default:
        return default
    answer = getattr(sample, "answer", None)
    is_box = (
        isinstance(answer, (list, tuple))
        and len(answer) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in answer)
    )
    return "grounding" if is_box else "vqa"


def _doc(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    if not doc:
        raise ValueError(f"{getattr(obj, '__qualname__', obj)!r} has no docstring; the prompt's API section needs one")
    return doc


def _signature(name: str, fn: Any, drop_self: bool = False) -> str:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1 if drop_self else 0 :]
    text = str(sig.replace(parameters=params))
    text = text.replace("ProbabilisticTensor", "PT").replace("Operand", "PT | float").replace("'", "")
    return f"{name}{text}"


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.splitlines())


def _primitive_entries(features: frozenset[str] = frozenset(), video: bool = False) -> list[str]:
    """The primitives (score, query, ...) the run offers, from their declarations in neptune_core/primitives/:
    those of images, or with ``video`` those of video samples (score_frames, locate, ...)."""
    from neptune_core.primitives import VIDEO_PRIMITIVES, offered_primitives

    entries = []
    for name, prim in offered_primitives(features).items():
        if (name in VIDEO_PRIMITIVES) != video:
            continue
        head = prim.signature.replace("ProbabilisticTensor", "PT")
        entries.append(f"{head}\n{_indent(inspect.cleandoc(prim.doc))}")
    return entries


def api_section(features: frozenset[str] = frozenset(), video: bool = False) -> str:
    """The API reference of the prompt, generated from docstrings (primitives, functions, methods, operators).

    ``features``: what the run offers the primitives that need something (``Primitive.needs``,
    e.g. "depth" for ``closer``); the others are listed always. ``video``: also the frame
    primitives (template placeholder ``{{api_video}}`` instead of ``{{api}}``)."""
    from neptune_core.executor import SAFE_BUILTIN_NAMES
    from probabilistic_tensor import PROGRAM_API, PROGRAM_METHODS, ProbabilisticTensor

    parts = ["## API", "", "### Primitives (the arguments of execute)", ""]
    parts += [e + "\n" for e in _primitive_entries(features)]
    if video:
        parts += ["### Primitives of videos (functions you may call by name)", ""]
        parts += [e + "\n" for e in _primitive_entries(features, video=True)]
    parts += ["### Functions (PT = ProbabilisticTensor)", ""]
    parts += [f"{_signature(name, fn)}\n{_indent(_doc(fn))}\n" for name, fn in PROGRAM_API.items()]
    parts += ["### Methods of a ProbabilisticTensor t", ""]
    for name in PROGRAM_METHODS:
        method = getattr(ProbabilisticTensor, name)
        parts.append(f"t.{_signature(name, method, drop_self=True)}\n{_indent(_doc(method))}\n")
    parts += ["### Operators on ProbabilisticTensors", ""]
    for dunder, written in OPERATORS:
        doc = _doc(getattr(ProbabilisticTensor, dunder))
        parts.append(doc if doc.startswith(written + ":") else f"{written}: {doc}")
    parts += ["", "### Python builtins you may use", "", ", ".join(SAFE_BUILTIN_NAMES)]
    return "\n".join(parts).rstrip() + "\n"


@dataclass(frozen=True)
class RenderedPrompt:
    """The chat messages for one question, and their text (part of the cache key)."""

    task: str
    system: str
    user: str

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    @property
    def text(self) -> str:
        return f"{self.system}\n{USER_SPLIT}\n{self.user}"


class PromptBuilder:
    """Renders prompts/<task>.txt for a question. Templates and the API section are read once."""

    def __init__(self, prompts_dir: str | Path = PROMPTS_DIR, features: frozenset[str] = frozenset()) -> None:
        self.prompts_dir = Path(prompts_dir)
        self.features = frozenset(features)  # what the run offers optional primitives (api_section)
        self._templates: dict[str, tuple[str, str]] = {}
        self._api: str | None = None
        self._api_video: str | None = None

    def _read(self, name: str, seen: tuple[str, ...] = ()) -> str:
        path = self.prompts_dir / name
        if name in seen:
            raise ValueError(f"prompt template include loop: {' -> '.join((*seen, name))}")
        if not path.is_file():
            raise UserError(f"prompt template {path} not found")
        text = path.read_text(encoding="utf-8")
        return re.sub(r"\{\{include ([\w.-]+)\}\}", lambda m: self._read(m.group(1), (*seen, name)).rstrip("\n"), text)

    def template(self, task: str) -> tuple[str, str]:
        """(system template, user template) of ``task``, with includes and the API section filled in."""
        if task not in TASKS:
            raise UserError(f"unknown prompt task '{task}'; known: {', '.join(TASKS)}")
        if task not in self._templates:
            if self._api is None:
                self._api = api_section(self.features)
            text = self._read(f"{task}.txt").replace("{{api}}", self._api.rstrip("\n"))
            if "{{api_video}}" in text:
                self._api_video = self._api_video or api_section(self.features, video=True)
                text = text.replace("{{api_video}}", self._api_video.rstrip("\n"))
            if USER_SPLIT not in text:
                raise ValueError(f"prompts/{task}.txt has no '{USER_SPLIT}' line")
            system, user = text.split(USER_SPLIT, 1)
            self._templates[task] = (system.strip() + "\n", user.strip() + "\n")
        return self._templates[task]

    def render(self, task: str, question: str) -> RenderedPrompt:
        system, user = self.template(task)
        user = user.replace("{{question}}", " ".join(question.split()))
        leftover = re.findall(r"\{\{[^}]*\}\}", system + user)
        if leftover:
            raise ValueError(f"prompts/{task}.txt has unknown placeholders: {sorted(set(leftover))}")
        return RenderedPrompt(task, system, user)

    def repair_message(self, problems: list[str]) -> str:
        """The user message that sends a broken program's problems back to the LLM."""
        listed = "\n".join(f"- {p}" for p in problems)
        return (
            "Your program cannot run as written. Problems found:\n"
            f"{listed}\n"
            "Fix them and reply again in the same format: the Objects line, then one ```python block "
            "defining execute(score, query, n)."
        )
