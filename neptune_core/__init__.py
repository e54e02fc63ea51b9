"""Shared types and plumbing for NePTune: samples, programs, registries, config, errors.

Every extension point (VLM, detector, dataset/runner, program generator) uses one
:class:`neptune_core.registry.Registry`. To add a backend, write a class and add one
lazy ``"module:Class"`` line to the registry table in that package's ``__init__``.
"""
