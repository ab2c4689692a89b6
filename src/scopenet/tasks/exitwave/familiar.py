"""What makes an input unlike the training waves (the unfamiliar-input warning of the exit-wave model)."""
from __future__ import annotations

import numpy as np

__all__ = ["high_frequency_fraction"]


def high_frequency_fraction(a: np.ndarray) -> float:
    """Fraction of the variance of ``a`` (2-D) at spatial frequencies above 2/3 of the Nyquist frequency."""
    a = np.asarray(a, np.float64)
    p = np.abs(np.fft.fft2(a - a.mean())) ** 2
    ky = np.fft.fftfreq(a.shape[0])[:, None]
    kx = np.fft.fftfreq(a.shape[1])[None, :]
    total = p.sum()
    return float(p[np.hypot(ky, kx) > (2.0 / 3.0) * 0.5].sum() / total) if total > 0 else 0.0
