"""Adaptive partial scans learned by reinforcement learning (J. M. Ede, thesis ch. 5).

:class:`AdaptiveScanner` steers a probe in 20 straight segments chosen one at a time by a recurrent
actor and completes the partial scan with a generator; the same estimator holds the fixed-path
baselines (spiral, grid). Environment: :mod:`scopenet.simulate.scan_env`; training:
:mod:`scopenet.training.rdpg` and :mod:`.train`; benchmark: ``scopenet bench adaptive-scan``.
"""
from .config import AdaptiveScanConfig, AdaptiveScanTrainConfig
from .model import AdaptiveScanner, adaptive_scan

__all__ = ["AdaptiveScanConfig", "AdaptiveScanTrainConfig", "AdaptiveScanner", "adaptive_scan"]
