"""The one training engine: typed run configurations, budgeted Lightning runs, schedules, ALRC, packaging.

- :mod:`~scopenet.training.config` -- :class:`TrainConfig`, the part every task's training configuration
  shares (the run configuration, a union of them on ``task``, is :mod:`scopenet.tasks.runconfig`);
- :mod:`~scopenet.training.budget` -- the engine: step-addressed batch streams (generated, or epochs over
  arrays), a Lightning module base counting a step/time budget, exact resume from ``last.ckpt``;
- :mod:`~scopenet.training.schedules` -- every learning-rate and momentum schedule;
- :mod:`~scopenet.training.alrc` -- adaptive loss-rate clipping and its relatives;
- :mod:`~scopenet.training.packaging` -- model files.

Each task's ``tasks/<task>/train.py`` runs on it (``train(net, data, config)``, ``main(config, resume)``).
Submodules are imported lazily so that ``import scopenet.training`` does not import Lightning.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "TrainConfig": "config",
    "SeededStream": "budget", "EpochStream": "budget", "BudgetedModule": "budget", "AdamCosineModule": "budget",
    "fit_budgeted": "budget",
    "save_model": "packaging", "load_model": "packaging", "export_onnx": "packaging",
    "export_torchscript": "packaging",
    "ALRC": "alrc", "DALRC": "alrc", "CLRC": "alrc", "Huberise": "alrc", "NoClip": "alrc", "make_clipper": "alrc",
    "load_em_real": "em_real",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
