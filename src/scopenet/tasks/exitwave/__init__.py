"""Exit-wave phase from a single amplitude image (Ede's chapter 7): ``sn.exit_wave(amplitude)`` and the
:class:`ExitWaveEstimator`; training data come from :mod:`scopenet.simulate.em.exitwave` (abTEM), the
benchmark is :mod:`.bench` (``scopenet bench exitwave``)."""
from .baselines import RANDOM_MAE, components, phase_mae, random_components, random_phase, zero_phase
from .model import (DEFAULT_MODEL, SINGLE_MODEL, ExitWaveEstimator, UnfamiliarInputWarning, exit_wave,
                    scale_amplitude)

__all__ = ["DEFAULT_MODEL", "RANDOM_MAE", "SINGLE_MODEL", "ExitWaveEstimator", "UnfamiliarInputWarning",
           "components", "exit_wave", "phase_mae", "random_components", "random_phase", "scale_amplitude",
           "zero_phase"]
