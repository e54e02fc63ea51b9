"""Runners: one shared loop (runners.base.Runner), picked by the config's ``dataset``.

Add a task: if it is VQA-like, register its dataset name to ``runners.run_vqa:VQARunner``
and write a loader in local_datasets/; if it scores predictions differently, subclass
Runner, override ``judge`` (and nothing else if you can help it), and register it here.
"""

from __future__ import annotations

from neptune_core.registry import Registry

RUNNERS: Registry = Registry("dataset")
for _name in ("clevr_synthetic", "clevr", "clevr_humans"):
    RUNNERS.register_lazy(_name, "runners.run_vqa:VQARunner")
