"""Synthetic training data with exact ground truth.

Subpackages are imported lazily, so ``import scopenet.simulate`` is cheap:

- :mod:`scopenet.simulate.spm`: STM/AFM surfaces, tip states and scan artefacts, with labels.
- :mod:`scopenet.simulate.em`: electron-microscopy dose noise and atomic-resolution images.
- :mod:`scopenet.simulate.scans`: scan paths, partial-scan masks and their simulation.

>>> from scopenet import simulate
>>> simulate.spm.simulate_batch(2, size=64)["images"].shape   # doctest: +SKIP
(2, 64, 64)
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["spm", "em", "scans"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
