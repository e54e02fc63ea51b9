"""Program generation: turning a question into a NePTune program.

Generators are picked by the config's ``program_generator`` and expose
``from_config(config)`` and ``program_for(sample) -> Program``. Ground-truth program
translators (CLEVR functional programs, LEFT first-order logic) and the LLM
generator (prompts, cache, checks and repair) all sit behind this one registry.

A generator that can only run programs the samples bring may also define
``check_samples(samples)``: the runner calls it once after loading, so a dataset with
no programs at all fails before the first sample instead of erroring on every row.

Add a generator: write a class with those two methods in a module here and add one
lazy line below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neptune_core.registry import Registry

if TYPE_CHECKING:
    from neptune_core.config import RunConfig

# --- program generators (config key ``program_generator``) ------------------------
GENERATORS: Registry = Registry("program_generator")
GENERATORS.register_lazy("symbolic_clevr", "code_generator.symbolic:SymbolicClevrGenerator")
GENERATORS.register_lazy("symbolic_left", "code_generator.left_translator:SymbolicLeftGenerator")
GENERATORS.register_lazy("llm", "code_generator.llm_generator:LLMProgramGenerator")
GENERATORS.register_lazy("given", "code_generator.given:GivenProgramGenerator")
GENERATORS.register_lazy("symbolic_video", "code_generator.video_translator:SymbolicVideoGenerator")


def build_generator(config: RunConfig) -> Any:
    """The program generator named by ``config.program_generator``."""
    return GENERATORS.get(config.program_generator).from_config(config)
