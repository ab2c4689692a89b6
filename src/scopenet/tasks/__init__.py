"""User tasks: one folder per task (``config.py``, ``model.py``, ``train.py``, ``baselines.py``,
``bench.py``), every estimator on the contract of :mod:`._estimator`.

>>> from scopenet.tasks import estimator_class
>>> estimator_class("denoise").__name__                 # doctest: +SKIP
'Denoiser'
"""
from ._estimator import Estimator, cached, clear_cache, estimator_class, estimators

__all__ = ["Estimator", "cached", "clear_cache", "estimator_class", "estimators"]
