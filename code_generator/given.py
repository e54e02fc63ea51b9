"""Programs that come with the data (``program_generator: "given"``): each sample's own ``program``.

The kind of program is recognised per sample:

- **Python source** (a string that defines ``def execute``): run as written, after exactly
  the checks LLM output gets (:func:`code_generator.checks.check_program`). A program that
  fails them is that sample's error, listing every problem; it is not repaired, so its
  author sees what to fix. Origin "given".
- **A CLEVR functional program** (a list of nodes): translated by
  :func:`code_generator.clevr_translator.translate_clevr`. Origin "symbolic".
- **Any other string**: LEFT first-order logic, translated by
  :func:`code_generator.left_translator.translate_left`. Origin "symbolic".

A sample without a program is an error on its own row that says so. When no sample of
the run has one, :meth:`GivenProgramGenerator.check_samples` stops the run before the
first sample (the runner calls it after loading). What the detector looks for: the
sample's ``meta["objects"]`` (a JSONL ``objects`` field), else the nouns of the question
(as for LLM programs that name none); translated programs use their translator's names.

Programs for data that cannot carry them (a benchmark in its official layout) come from the
config's ``given_programs``: a JSON file ``{sample id: program}``, a program being any of the
kinds above or ``{"program": ..., "objects": [...]}``. A sample's own program comes first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from code_generator.checks import check_program
from neptune_core.errors import UserError
from neptune_core.types import Program, Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


class MissingProgramError(ValueError):
    """The sample brings no program, and program_generator "given" writes none."""


class GivenProgramError(ValueError):
    """A given Python program fails the checks that LLM programs pass."""


def is_python_program(program: Any) -> bool:
    """Whether ``program`` is Python source (it defines ``execute``), not LEFT logic or a node list."""
    return isinstance(program, str) and "def execute" in program


def has_program(sample: Sample) -> bool:
    p = sample.program
    return (isinstance(p, str) and bool(p.strip())) or (isinstance(p, list) and bool(p))


def require_some_programs(
    samples: Sequence[Sample], generator: str, what: str, usable: Callable[[Any], bool] | None = None
) -> None:
    """A one-line UserError when no sample has a program ``generator`` can run (``usable``; default: any).

    ``what`` names the kind it needs. Samples whose programs are of another kind get a hint to
    program_generator 'given' (which runs Python, CLEVR nodes and LEFT logic)."""
    usable = usable or (lambda program: True)
    if not samples or any(has_program(s) and usable(s.program) for s in samples):
        return
    others = sum(has_program(s) for s in samples)
    hint = (
        f"{others} carry other programs: program_generator 'given' runs them"
        if others
        else "set program_generator 'llm' (with code_gen_provider / code_gen_base_url) to write them"
    )
    raise UserError(
        f"none of the {len(samples)} samples has a program that program_generator '{generator}' can run "
        f"({what}); {hint}"
    )


def read_programs_file(path: Path) -> dict[str, Any]:
    """``given_programs``: {sample id: program or {"program", "objects"}}; a one-line error if unusable."""
    if not path.is_file():
        raise UserError(f"given_programs file {path} not found (a JSON object {{sample id: program}})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"given_programs file {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(data, dict):
        raise UserError(f"given_programs file {path} must hold an object {{sample id: program}}")
    return {str(k): v for k, v in data.items()}


class GivenProgramGenerator:
    """Runs each sample's own program: Python as written (checked), CLEVR nodes and LEFT logic translated."""

    name = "given"

    def __init__(self, programs: dict[str, Any] | None = None) -> None:
        self.programs = programs or {}  # sample id -> program (``given_programs``)

    @classmethod
    def from_config(cls, config: RunConfig) -> GivenProgramGenerator:
        return cls(read_programs_file(config.resolve_path(config.given_programs)) if config.given_programs else None)

    def check_samples(self, samples: Sequence[Sample]) -> None:
        """Called once after loading: no sample with a program is a broken setup, not N sample errors."""
        self._attach(samples)
        require_some_programs(samples, self.name, "each sample's 'program' (Python, CLEVR nodes or LEFT logic)")

    def _attach(self, samples: Sequence[Sample]) -> None:
        """Give samples without a program theirs from ``given_programs`` (and its objects)."""
        for sample in samples:
            entry = self.programs.get(sample.id)
            if entry is None or has_program(sample):
                continue
            if isinstance(entry, dict):
                sample.program = entry.get("program")
                if entry.get("objects") is not None:
                    sample.meta["objects"] = list(entry["objects"])
            else:
                sample.program = entry

    def program_for(self, sample: Sample) -> Program:
        """The sample's program, checked (Python) or translated (CLEVR nodes, LEFT logic)."""
        if not has_program(sample):
            self._attach([sample])
        if not has_program(sample):
            raise MissingProgramError(
                f"sample {sample.id} has no program: program_generator 'given' runs the program each sample "
                "brings (a JSONL 'program' field); write one, or use program_generator 'llm'"
            )
        program = sample.program
        if isinstance(program, list):
            from code_generator.clevr_translator import translate_clevr

            return Program(source=translate_clevr(program), origin="symbolic", object_names=[], info={"kind": "clevr"})
        if not isinstance(program, str):
            raise GivenProgramError(
                f"sample {sample.id}: a program must be Python source, a CLEVR node list or a LEFT logic string, "
                f"got a {type(program).__name__}"
            )
        if not is_python_program(program):
            from code_generator.left_translator import OBJECT_NAMES, translate_left

            source = translate_left(program)
            return Program(source=source, origin="symbolic", object_names=list(OBJECT_NAMES), info={"kind": "left"})
        problems = check_program(program)
        if problems:
            raise GivenProgramError(f"sample {sample.id}: its program fails the checks: " + "; ".join(problems))
        return Program(source=program, origin="given", object_names=self._object_names(sample), info={"kind": "python"})

    @staticmethod
    def _object_names(sample: Sample) -> list[str]:
        names = sample.meta.get("objects")
        if names is not None:
            return list(names)
        from code_generator.nlp import object_names

        return object_names(sample.question)
