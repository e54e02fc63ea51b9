"""VQA runner (CLEVR, CLEVR-Humans, synthetic CLEVR): the shared loop, answers as strings.

Usage: python -m runners.run_vqa --config configs/clevr.json [--key value ...]
"""

from __future__ import annotations

import sys

from runners.base import Runner


class VQARunner(Runner):
    """Answers questions with programs; correct = normalised exact match with the gold answer."""


if __name__ == "__main__":
    from run import main

    sys.exit(main(sys.argv[1:]))
