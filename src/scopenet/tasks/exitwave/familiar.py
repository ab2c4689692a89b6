"""What makes an input unlike the training waves (the unfamiliar-input warning of the exit-wave model)."""
from __future__ import annotations

import numpy as np

from ...errors import InputError

__all__ = ["high_frequency_fraction", "calibrate_confidence", "OOD_QUANTILE"]


def high_frequency_fraction(a: np.ndarray) -> float:
    """Fraction of the variance of ``a`` (2-D) at spatial frequencies above 2/3 of the Nyquist frequency."""
    a = np.asarray(a, np.float64)
    p = np.abs(np.fft.fft2(a - a.mean())) ** 2
    ky = np.fft.fftfreq(a.shape[0])[:, None]
    kx = np.fft.fftfreq(a.shape[1])[None, :]
    total = p.sum()
    return float(p[np.hypot(ky, kx) > (2.0 / 3.0) * 0.5].sum() / total) if total > 0 else 0.0


OOD_QUANTILE = 0.05  # the share of training-like inputs the low-confidence rule flags


def calibrate_confidence(est, waves: np.ndarray, *, crop: int = 128, n: int = 1024,
                         quantile: float = OOD_QUANTILE, seed: int = 0) -> dict[str, float]:
    """The low-confidence threshold of the unfamiliar-input warning, from the training waves.

    Scores ``n`` random ``crop`` px crops of ``waves`` (random wave, position and flip/rotation, as
    the bench's "unseen transforms") and returns the ``quantile`` quantile of their mean phase
    confidence: about that fraction of inputs like the training data is flagged.

    Parameters
    ----------
    est : ExitWaveEstimator
        A trained model (its ``config.input``/``scale`` are applied to each crop's amplitude).
    waves : ndarray complex (N, H, W)
        The training waves (:func:`as_waves`); crops are ``min(crop, H, W)`` px.
    crop, n, quantile, seed : int, int, float, int
        Crop size (px; the bench scores 128 px crops), number of crops, flag rate, random seed.

    Returns
    -------
    dict
        ``{"ood_confidence": threshold, "ood_confidence_quantile": quantile}``, for ``est.config``.

    Raises
    ------
    InputError
        Real or non-3-D waves; ``quantile`` outside (0, 1); ``n < 1``.
    """
    from ...image.tta import dihedral

    w = np.asarray(waves)
    if w.ndim != 3 or not np.iscomplexobj(w):
        raise InputError(f"calibrate_confidence needs complex waves (N, H, W), got {w.dtype} {w.shape}")
    if not 0.0 < quantile < 1.0 or n < 1:
        raise InputError(f"quantile must be in (0, 1) and n >= 1, got {quantile} and {n}")
    rng = np.random.default_rng([seed, 24])
    c = min(int(crop), *w.shape[1:])
    amps = []
    for _ in range(int(n)):
        i, y, x = int(rng.integers(len(w))), int(rng.integers(w.shape[1] - c + 1)), int(rng.integers(w.shape[2] - c + 1))
        a = np.abs(dihedral(w[i, y:y + c, x:x + c], int(rng.integers(8))))
        if est.config.input == "intensity":
            a = a ** 2
        amps.append(est._scaled(a))
    amps = np.stack(amps)
    raw = np.concatenate([est.raw_components(amps[j:j + 16]) for j in range(0, len(amps), 16)])
    conf = np.clip(np.hypot(raw[:, 0], raw[:, 1]), 0.0, 1.0).mean((1, 2))
    return {"ood_confidence": float(np.quantile(conf, quantile)), "ood_confidence_quantile": float(quantile)}
