"""Electron-microscope noise and scan distortions with known ground truth.

Dose (shot) noise, J. M. Ede's training-noise distributions for low- and high-dose denoisers, camera
read noise, gain and modulation-transfer-function (MTF) blur, and STEM scan jitter and drift.
All functions take clean images as float arrays (``(H, W)`` unless stated) and a
:class:`numpy.random.Generator`; none modifies its input.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from ...errors import InputError

#: Ede's low-dose distribution: offset and mean of the exponential part, counts at the brightest pixel
EDE_LOW_OFFSET = 25.0
EDE_LOW_MEAN = 75.0
#: Ede's high-dose fine-tuning range, counts
EDE_HIGH_RANGE = (200.0, 2500.0)


def _as_image(clean: np.ndarray) -> np.ndarray:
    a = np.asarray(clean, dtype=np.float64)
    if a.ndim < 2:
        raise InputError(f"expected an image of shape (H, W) or (..., H, W), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError("image contains NaN or infinite values")
    return a


def poisson_dose(clean: np.ndarray, dose: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: electron counts ``Poisson(clean * dose)``.

    Parameters
    ----------
    clean : ndarray, shape (..., H, W)
        Noise-free intensity, non-negative (e.g. scaled to [0, 1]).
    dose : float
        Expected counts for an intensity of 1 (electrons per pixel at the brightest pixel when
        ``clean`` is in [0, 1]).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, float32, shape of ``clean``
        Counts (integers stored as float32). Their mean and variance both equal ``clean * dose``.
    """
    a = _as_image(clean)
    if dose <= 0 or not np.isfinite(dose):
        raise InputError(f"dose must be a positive number, got {dose!r}")
    if (a < 0).any():
        raise InputError("Poisson dose needs a non-negative clean image")
    return rng.poisson(a * dose).astype(np.float32)


def ede_low_dose_scale(rng: np.random.Generator) -> float:
    """Ede's low-dose scale: ``25 + x`` counts with ``x ~ Exponential(mean 75)`` (ch. 6, eq. 1)."""
    return float(EDE_LOW_OFFSET + rng.exponential(EDE_LOW_MEAN))


def ede_high_dose_scale(rng: np.random.Generator) -> float:
    """Ede's high-dose scale: ``Uniform(200, 2500)`` counts (ch. 6, fine-tuning for high doses)."""
    return float(rng.uniform(*EDE_HIGH_RANGE))


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def ede_noisy_pair(clean: np.ndarray, rng: np.random.Generator, regime: Literal["low", "high"] = "low",
                   return_scale: bool = False):
    """A (noisy, truth) training pair made as in Ede & Beanland's electron-micrograph denoiser.

    Thesis chapter 6 (J. M. Ede and R. Beanland, *Improving electron micrograph signal-to-noise with an
    atrous convolutional encoder-decoder*, Ultramicroscopy 202, 18-25, 2019), section 2 "Training":
    images are scaled to [0, 1]; "Poisson noise was applied to each 512 x 512 training image after
    multiplying it by a scale factor, effectively setting the dose in electrons per pixel for a camera
    with perfect detective quantum efficiency"; low-dose scales are ``25 + Exponential(mean 75)``;
    "after noise application, ground truth training images were scaled to have the same mean as their
    noisy counterparts"; high-dose fine-tuning uses scales ``Uniform(200, 2500)``.

    Here: ``clean`` is min-max scaled to [0, 1]; ``noisy = minmax(Poisson(clean * scale))`` (the noisy
    image is brought back to [0, 1] like every image in Ede's pipeline); ``truth = clean * mean(noisy) /
    mean(clean)``.

    Parameters
    ----------
    clean : ndarray, shape (H, W)
        Noise-free image (any range; it is min-max scaled first).
    rng : numpy.random.Generator
    regime : {"low", "high"}
        Which of Ede's dose distributions to draw the scale from.
    return_scale : bool
        Also return the drawn scale (counts at the brightest pixel).

    Returns
    -------
    noisy, truth : ndarray, float32, shape (H, W)
        ``noisy`` in [0, 1]; ``truth`` with ``truth.mean() == noisy.mean()`` (to float precision).
    scale : float, only if ``return_scale``
    """
    a = _minmax(_as_image(clean))
    if regime == "low":
        scale = ede_low_dose_scale(rng)
    elif regime == "high":
        scale = ede_high_dose_scale(rng)
    else:
        raise InputError(f"regime must be 'low' or 'high', got {regime!r}")
    noisy = _minmax(rng.poisson(a * scale).astype(np.float64))
    m = a.mean()
    truth = a * (noisy.mean() / m) if m > 0 else a
    out = (noisy.astype(np.float32), truth.astype(np.float32))
    return out + (scale,) if return_scale else out


# ---------------------------------------------------------------------------------------- camera


def mtf_blur(image: np.ndarray, sigma: float = 0.7, lorentz: float = 0.0) -> np.ndarray:
    """Blur by a detector MTF: Gaussian core of ``sigma`` px plus an optional Lorentzian-like tail.

    The MTF applied in Fourier space is ``(1 - w) * exp(-2 pi^2 sigma^2 q^2) + w * exp(-2 pi * 4 sigma q)``
    with ``w = lorentz`` (scintillator glare) and ``q`` in cycles/px; its value at ``q = 0`` is 1, so
    the mean is preserved.
    """
    a = _as_image(image)
    if sigma <= 0 and lorentz <= 0:
        return a.astype(np.float32)
    h, w = a.shape[-2:]
    qy = np.fft.fftfreq(h)[:, None]
    qx = np.fft.rfftfreq(w)[None, :]
    q2 = qy**2 + qx**2
    mtf = (1 - lorentz) * np.exp(-2 * np.pi**2 * sigma**2 * q2) + lorentz * np.exp(-2 * np.pi * 4 * max(sigma, 0.5) * np.sqrt(q2))
    return np.fft.irfft2(np.fft.rfft2(a) * mtf, s=(h, w)).astype(np.float32)


def detector(counts: np.ndarray, rng: np.random.Generator, gain: float = 1.0, read_noise: float = 0.0,
             mtf_sigma: float = 0.0, offset: float = 0.0) -> np.ndarray:
    """Camera response to electron counts: MTF blur, then gain, dark offset and Gaussian read noise.

    The scintillator spreads each electron before readout, so the MTF blurs the *noisy* counts
    (correlating their noise); read noise is added per pixel after that.

    Parameters
    ----------
    counts : ndarray, shape (..., H, W)
        Electron counts, e.g. from :func:`poisson_dose`.
    gain : float
        Digital units per electron.
    read_noise : float
        Standard deviation of the read noise, digital units.
    mtf_sigma : float
        Gaussian MTF width, px (0: perfect detector).
    offset : float
        Dark level, digital units.

    Returns
    -------
    ndarray, float32
    """
    a = mtf_blur(counts, mtf_sigma) if mtf_sigma > 0 else _as_image(counts)
    out = gain * a + offset
    if read_noise > 0:
        out = out + rng.normal(0.0, read_noise, size=out.shape)
    return np.asarray(out, np.float32)


# ------------------------------------------------------------------------------- STEM distortions


def scan_line_shifts(n_lines: int, rng: np.random.Generator, jitter: float = 0.3, walk: float = 0.0,
                     drift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Per-line probe offsets ``(dy, dx)`` in px for a STEM frame of ``n_lines`` lines.

    ``dx``: white jitter of std ``jitter`` px per line plus a random walk of step std ``walk`` px, plus
    linear drift; ``dy``: linear drift only. ``drift`` is ``(vy, vx)`` in px per frame.

    Returns
    -------
    ndarray, shape (n_lines, 2)
    """
    t = np.arange(n_lines) / max(n_lines - 1, 1)
    dx = rng.normal(0.0, jitter, n_lines) if jitter > 0 else np.zeros(n_lines)
    if walk > 0:
        dx = dx + np.cumsum(rng.normal(0.0, walk, n_lines))
    dy = drift[0] * t
    dx = dx + drift[1] * t
    return np.stack([dy, dx], axis=1)


def apply_line_shifts(image: np.ndarray, shifts: np.ndarray, order: int = 1) -> np.ndarray:
    """Resample a frame so that line ``i`` was recorded at positions displaced by ``shifts[i]``.

    Output pixel ``(i, j)`` takes the clean value at ``(i + dy_i, j + dx_i)`` (reflected at the edges).

    Parameters
    ----------
    image : ndarray, shape (H, W)
    shifts : ndarray, shape (H, 2)
        ``(dy, dx)`` per line, px.
    """
    a = _as_image(image)
    if a.ndim != 2 or shifts.shape != (a.shape[0], 2):
        raise InputError(f"need an (H, W) image and (H, 2) shifts, got {a.shape} and {shifts.shape}")
    h, w = a.shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    rr += shifts[:, :1]
    cc += shifts[:, 1:]
    return ndimage.map_coordinates(a, [rr, cc], order=order, mode="reflect").astype(np.float32)


def stem_scan_distort(image: np.ndarray, rng: np.random.Generator, jitter: float = 0.3, walk: float = 0.05,
                      drift: tuple[float, float] | None = None, max_drift: float = 3.0):
    """Apply STEM scan jitter and drift; return the distorted frame and the per-line shifts.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    jitter, walk : float
        See :func:`scan_line_shifts`, px.
    drift : (float, float), optional
        Drift over the frame ``(vy, vx)``, px; drawn uniformly in ``[-max_drift, max_drift]`` if omitted.

    Returns
    -------
    distorted : ndarray, float32, shape (H, W)
    shifts : ndarray, float64, shape (H, 2)
    """
    a = _as_image(image)
    if drift is None:
        drift = tuple(rng.uniform(-max_drift, max_drift, 2))
    shifts = scan_line_shifts(a.shape[0], rng, jitter, walk, drift)
    return apply_line_shifts(a, shifts), shifts


def realistic_noise(clean: np.ndarray, rng: np.random.Generator, kind: str = "stem",
                    dose: float | None = None) -> tuple[np.ndarray, dict]:
    """Draw a plausible acquisition of ``clean`` (in [0, 1]) and return it with its parameters.

    ``kind="stem"``: scan jitter/drift, Poisson dose, small read noise. ``kind="tem"``/``"hrtem"``/
    ``"meso"``: Poisson dose through a camera (MTF, gain, read noise). The result is min-max scaled to
    [0, 1].
    """
    p: dict = {}
    img = _as_image(clean)
    if kind == "stem":
        img, shifts = stem_scan_distort(img, rng, jitter=float(rng.uniform(0, 1.5)),
                                        walk=float(rng.uniform(0, 0.05)), max_drift=2.0)
        p["line_shift_std_px"] = float(shifts[:, 1].std())
    dose = float(dose if dose is not None else np.exp(rng.uniform(np.log(20), np.log(3000))))
    counts = poisson_dose(np.clip(img, 0, None), dose, rng)
    mtf = 0.0 if kind == "stem" else float(rng.uniform(0.3, 1.0))
    read = float(rng.uniform(0, 2.0))
    out = detector(counts, rng, gain=1.0, read_noise=read, mtf_sigma=mtf)
    p.update(dose=dose, mtf_sigma=mtf, read_noise=read)
    return _minmax(out.astype(np.float64)).astype(np.float32), p
