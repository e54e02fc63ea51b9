"""Runners: one shared loop (runners.base.Runner), picked by the config's ``dataset``.

Add a task: if it is VQA-like, register its dataset name to ``runners.run_vqa:VQARunner``
and write a loader in local_datasets/; if it scores predictions differently, subclass
Runner, override ``judge`` (and nothing else if you can help it), and register it here.
Fine-tuning through programs (``train.enabled``) is runners/train.py: it drives the same
runner's generator, detector, agent and executor, in-process with gradients.
"""

from __future__ import annotations

from neptune_core.registry import Registry

RUNNERS: Registry = Registry("dataset")
for _name in ("clevr_synthetic", "clevr", "clevr_humans"):
    RUNNERS.register_lazy(_name, "runners.run_vqa:VQARunner")
for _name in ("refadv", "refgta"):
    RUNNERS.register_lazy(_name, "runners.run_ref_exp_fast:RefExpRunner")
for _name in ("jsonl", "hf"):
    RUNNERS.register_lazy(_name, "runners.run_ref_exp_fast:GenericRunner")
RUNNERS.register_lazy("clevr_refexps", "runners.run_clevr_extensions_ref:ClevrRefRunner")
for _name in ("clevr_puzzle", "clevr_rpm"):
    RUNNERS.register_lazy(_name, "runners.run_clevr_extensions_rpm_puzzle:ClevrTransferRunner")
for _name, _cls in (("gqa", "GQARunner"), ("nlvr2", "NLVR2Runner"), ("vqav2", "VQAv2Runner"), ("mme", "MMERunner"),
                    ("hc_refloco", "HCRefLocoRunner")):  # fmt: skip
    RUNNERS.register_lazy(_name, f"runners.run_benchmarks:{_cls}")
