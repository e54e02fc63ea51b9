"""CLEVR-Transfer puzzles and RPMs (LEFT's puzzle-*.json / rpm-*.json): yes/no questions
over CLEVR-mini scenes, answered by a program whose top-level ``exists`` gives a truth
value. Gold answers (true/false) are loaded as "yes"/"no", so the shared loop's judge
(normalised exact match) applies unchanged.

Usage: python runners/run_clevr_extensions_rpm_puzzle.py --config configs/clevr-rpm.json
(or configs/clevr-puzzle.json; ground-truth programs: add ``--program_generator symbolic_left``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runners.base import Runner  # noqa: E402


class ClevrTransferRunner(Runner):
    """The shared loop; the prediction is the program's yes/no answer."""


if __name__ == "__main__":
    from run import main

    sys.exit(main(sys.argv[1:]))
