"""CLEVR with ground-truth programs: each CLEVR functional program is translated to a
NePTune Python program (code_generator.clevr_translator); no LLM is called.

Usage: python runners/run_clevr_symbolic.py --config configs/clevr-mini-oracle.json
(the same as run.py with ``--program_generator symbolic_clevr``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main([*sys.argv[1:], "--program_generator", "symbolic_clevr"]))
