"""Program generator for datasets with ground-truth CLEVR programs: no LLM, the
sample's functional program is translated by :func:`code_generator.clevr_translator.translate_clevr`.

Config: ``program_generator: "symbolic_clevr"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from code_generator.clevr_translator import translate_clevr
from neptune_core.errors import UserError
from neptune_core.types import Program, Sample

if TYPE_CHECKING:
    from neptune_core.config import RunConfig


class SymbolicClevrGenerator:
    """Translates each sample's ground-truth CLEVR program into a NePTune program."""

    name = "symbolic_clevr"

    def __init__(self, depth_relations: bool = False) -> None:
        self.depth_relations = depth_relations  # front / behind as closer() (config depth.symbolic_relations)

    @classmethod
    def from_config(cls, config: RunConfig) -> SymbolicClevrGenerator:
        if config.depth.symbolic_relations and not config.depth_model:
            raise UserError("depth.symbolic_relations writes front / behind as closer(), which needs a depth_model")
        return cls(depth_relations=config.depth.symbolic_relations)

    def check_samples(self, samples: list[Sample]) -> None:
        """Called once after loading: a dataset without CLEVR programs fails before the first sample."""
        from code_generator.given import require_some_programs

        require_some_programs(samples, self.name, "CLEVR functional programs", lambda p: isinstance(p, list))

    def program_for(self, sample: Sample) -> Program:
        """The translated program; a sample without a CLEVR program is an error."""
        if not sample.program:
            raise UserError(
                f"sample {sample.id} has no ground-truth program; program_generator 'symbolic_clevr' "
                "needs a dataset with CLEVR functional programs (use program_generator 'llm' or 'given' instead)"
            )
        if not isinstance(sample.program, list):
            raise UserError(
                f"sample {sample.id}: program_generator 'symbolic_clevr' needs a CLEVR node list, "
                f"got a {type(sample.program).__name__} (program_generator 'given' runs Python programs)"
            )
        source = translate_clevr(sample.program, depth_relations=self.depth_relations)
        return Program(source=source, origin="symbolic", object_names=[])
