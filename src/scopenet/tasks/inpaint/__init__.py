"""Sparse-scan completion: ``sn.inpaint(partial, mask)`` and the :class:`Inpainter` estimator.

Partial scans (spiral, grid-like, random or segment paths probing 1-10 % of the pixels) are completed
by a network fed the nearest-neighbour infill and the mask (J. M. Ede, thesis ch. 4); classical
baselines live in :mod:`.baselines`, the benchmark in :mod:`.bench` (``scopenet bench inpaint``).
"""
from .config import EDE_COVERAGES, InpaintConfig, InpaintTrainConfig
from .model import AutoInpainter, Inpainter, inpaint

__all__ = ["EDE_COVERAGES", "AutoInpainter", "InpaintConfig", "InpaintTrainConfig", "Inpainter", "inpaint"]
