"""Preflight: every component built, every model loaded and every endpoint checked, once,
before the first sample. A broken setup fails here with one line (a ``UserError``: run.py
prints it and exits 2) instead of turning every sample into an error or a fallback.

Cheap checks come first, so a typo does not wait for a large model to load:

1. the program generator's ``preflight(samples)``, if it has one (the LLM generator
   checks its endpoint, key and model name, and only when some needed program is not cached);
2. each perception backend's ``check_available()``, if it has one (a transformers backend
   looks for its weights in the local cache, or asks the hub, in a few seconds);
3. each backend's ``preflight()`` (:class:`~vision_agents.base.VisionAgent` and
   :class:`~vision_agents.base.Detector`: load weights, reach a server), then the segmenter's and
   depth model's (vision_agents/perception.py: the samples suit them, weights load).

In a data-parallel run the parent process checks the generator only (its models would
be loaded in vain) and every worker checks its own models before its first sample.
A backend adds its own checks by overriding ``preflight()``; nothing here changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from neptune_core.types import Sample

log = logging.getLogger(__name__)


def _inner(component: Any) -> Any:
    """The backend behind a wrapper such as MemoizedAgent."""
    return getattr(component, "inner", component)


def preflight(
    generator: Any,
    detector: Any,
    agent: Any,
    samples: Sequence[Sample],
    *,
    check_generator: bool = True,
    check_models: bool = True,
    perception: Any = None,
) -> dict[str, float]:
    """Run the checks above; returns seconds spent per step (for the log). Raises a UserError on failure."""
    spent: dict[str, float] = {}
    if check_generator:
        t0 = time.perf_counter()
        check = getattr(generator, "preflight", None)
        if check is not None and samples:
            check(samples)
        spent["generator"] = time.perf_counter() - t0
    if check_models:
        t0 = time.perf_counter()
        for component in (detector, agent):
            quick = getattr(_inner(component), "check_available", None)
            if quick is not None:
                quick()
        if perception is not None:
            perception.check_available()
        spent["models_available"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        detector.preflight()
        agent.preflight()
        if perception is not None:
            perception.preflight(samples)
        spent["models_loaded"] = time.perf_counter() - t0
    log.info("preflight: %s", ", ".join(f"{k} {v:.2f}s" for k, v in spent.items()))
    return spent
