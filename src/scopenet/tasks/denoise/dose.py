"""Noise level of a raw micrograph, and the dose rule that routes ``model="auto"``.

The shipped denoisers are trained on Ede's dose model (thesis ch. 6): a clean image scaled to
[0, 1] is multiplied by a scale ``R`` (counts at the brightest pixel), Poisson noise is drawn and
the result is min-max scaled back to [0, 1]. On that scaled image the noise variance at a level
``m`` is ``(m R + c_min) / R^2`` -- about ``m / R``. :func:`equivalent_dose` measures the noise of
a *raw* image (no denoised version needed) and expresses it as the ``R`` that pure shot noise
would need to produce it:

1. the frame is scaled to [0, 1] between its 0.1 and 99.9 percentiles (close to the min-max
   scaling the networks see, but unlike the extreme pixels these do not drift with image size);
2. each 2 x 2 block gives a local mean ``(a + b + c + d) / 4`` and its Haar diagonal detail
   ``(a - b - c + d) / 2``, whose variance equals the pixel noise variance for independent noise
   and which is almost blind to smooth structure and to horizontal/vertical edges;
3. blocks are binned by local mean; in each bin the noise variance is ``(1.4826 MAD)^2`` of the
   details (robust to edges, atoms and other sparse structure);
4. the mean noise variance ``v`` is the count-weighted average over the bins, and the
   equivalent dose is ``R_eq = mean(image) / v``.

For pure shot noise with a zero dark level ``R_eq = R``; for Gaussian or mixed noise ``R_eq`` is the
shot-noise dose with the same mean variance. The statistic is intensive (a ratio of means), so
it does not depend on the image size, and it is computed on the whole frame before any tiling.

Routing rule (:func:`auto_weight`): weight of the high-dose model
``w = clip(log(R_eq / lo) / log(hi / lo), 0, 1)``; ``w = 0`` uses the low-dose (default) model
only, ``w = 1`` the high-dose model only, in between the outputs are blended linearly. The
thresholds ``(lo, hi) = (150, 600)`` (:data:`AUTO_DOSE_RANGE`) were chosen on the em-real
*training* split and on simulated images (never on the held-out benchmark set), as the pair that
kept the low-dose error of the default model and gave the lowest high-dose error among a small grid:
below about 150 counts the low-dose model is clearly better; on clean truths the two models are
level from about 500 to 2500 counts, and the high-dose model keeps fine, noise-like texture that the
low-dose model removes (see ``benchmarks/results/denoise.md``).
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import InputError

__all__ = ["haar_noise_curve", "equivalent_dose", "auto_weight", "shot_noise_guard", "AUTO_DOSE_RANGE",
           "ROBUST_RANGE"]

#: (lo, hi) equivalent doses (counts, see :func:`equivalent_dose`) of the auto rule's blend zone
AUTO_DOSE_RANGE: tuple[float, float] = (150.0, 600.0)

#: percentiles taken as black and white for the noise estimate (the extreme pixels of a noisy image
#: grow with its size; these percentiles do not, which keeps the estimate independent of image size)
ROBUST_RANGE: tuple[float, float] = (0.1, 99.9)

_MAD_TO_SD = 1.4826


def _unit_frame(frame) -> np.ndarray:
    f = np.asarray(frame, dtype=np.float64)
    if f.ndim != 2 or min(f.shape) < 4:
        raise InputError(f"noise estimation needs a 2-D image of at least 4x4 px, got shape {f.shape}")
    ok = np.isfinite(f)
    if not ok.any():
        raise InputError("every pixel is NaN or infinite")
    if not ok.all():
        f = np.where(ok, f, np.median(f[ok]))
    lo, hi = (float(t) for t in np.percentile(f, ROBUST_RANGE))
    if not hi > lo:
        lo, hi = float(f.min()), float(f.max())
    return (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)


def haar_noise_curve(frame, n_bins: int = 16, min_count: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise variance against local mean, from the finest Haar diagonal details of a raw image.

    Parameters
    ----------
    frame : ndarray, shape (H, W)
        Raw image (any range; scaled to [0, 1] between its 0.1/99.9 percentiles, :data:`ROBUST_RANGE`;
        NaN/inf set to the median).
    n_bins : int
        Equal-width bins of local mean over [0, 1].
    min_count : int
        Bins with fewer 2 x 2 blocks are dropped.

    Returns
    -------
    level : ndarray, shape (K,)
        Mean local level of each kept bin (scaled units; 2 x 2 block means beyond [0, 1] go to the
        end bins).
    variance : ndarray, shape (K,)
        Robust noise variance in the bin, ``(1.4826 * MAD(detail))^2`` (scaled units squared).
    count : ndarray of int, shape (K,)
        Blocks in the bin.
    """
    u = _unit_frame(frame)
    h, w = (u.shape[0] // 2) * 2, (u.shape[1] // 2) * 2
    a, b = u[0:h:2, 0:w:2], u[0:h:2, 1:w:2]
    c, d = u[1:h:2, 0:w:2], u[1:h:2, 1:w:2]
    mean = ((a + b + c + d) / 4).ravel()
    det = ((a - b - c + d) / 2).ravel()
    k = np.clip((mean * n_bins).astype(np.int64), 0, n_bins - 1)
    order = np.argsort(k, kind="stable")
    ks, ds, ms = k[order], det[order], mean[order]
    edges = np.searchsorted(ks, np.arange(n_bins + 1))
    lev, var, cnt = [], [], []
    for j in range(n_bins):
        s, e = edges[j], edges[j + 1]
        if e - s < min_count:
            continue
        dj = ds[s:e]
        mad = np.median(np.abs(dj - np.median(dj)))
        lev.append(float(ms[s:e].mean()))
        var.append(float((_MAD_TO_SD * mad) ** 2))
        cnt.append(e - s)
    if not cnt:  # tiny image: one pooled bin
        mad = np.median(np.abs(det - np.median(det)))
        return np.array([mean.mean()]), np.array([(_MAD_TO_SD * mad) ** 2]), np.array([det.size])
    return np.array(lev), np.array(var), np.array(cnt, dtype=np.int64)


def equivalent_dose(frame) -> dict[str, float]:
    """Shot-noise dose equivalent to the noise of a raw image (no denoised version needed).

    Parameters
    ----------
    frame : ndarray, shape (H, W)
        Raw image, any range, at least 4 x 4 px.

    Returns
    -------
    dict
        ``dose`` (``R_eq``, counts between the image's 0.1 and 99.9 percentiles that pure Poisson
        noise would need to give the measured mean variance; ``inf`` for a noise-free image),
        ``noise_sd`` (mean noise standard deviation in units of that range, ``sqrt(v)``),
        ``mean_level`` (mean of the scaled image), ``slope``/``intercept`` (weighted line fit of variance against level:
        a positive slope with a small intercept indicates shot noise; ``1/slope`` is then another
        estimate of ``R``).
    """
    u = _unit_frame(frame)
    lev, var, cnt = haar_noise_curve(u)
    v = float(np.sum(var * cnt) / np.sum(cnt))
    m = float(u.mean())
    if len(lev) >= 2 and np.ptp(lev) > 0:
        slope, icpt = (float(t) for t in np.polyfit(lev, var, 1, w=np.sqrt(cnt)))
    else:
        slope, icpt = float("nan"), float("nan")
    dose = m / v if v > 0 else math.inf
    return {"dose": float(dose), "noise_sd": math.sqrt(v), "mean_level": m, "slope": slope, "intercept": icpt}


def auto_weight(dose: float, dose_range: tuple[float, float] = AUTO_DOSE_RANGE) -> float:
    """Weight of the high-dose model for an equivalent dose (0: low-dose model only, 1: high-dose only).

    ``w = clip(log(dose / lo) / log(hi / lo), 0, 1)`` with ``(lo, hi) = dose_range``; NaN doses
    (unmeasurable noise) count as high dose (the gentler model).
    """
    lo, hi = (float(t) for t in dose_range)
    if not 0 < lo < hi:
        raise InputError(f"dose_range must be 0 < lo < hi, got {dose_range}")
    if math.isnan(dose) or dose >= hi:  # NaN or above the zone
        return 1.0
    if dose <= lo:
        return 0.0
    return float(math.log(dose / lo) / math.log(hi / lo))


def shot_noise_guard(frame, denoised, dose: float) -> tuple[np.ndarray, float]:
    """Blend a denoised frame back toward its input so that no more than the known shot noise is removed.

    When the electron dose is known (beam current x dwell time, or counts of a counting detector), the
    variance of the shot noise is known too, and a denoiser that removes much more than that is removing
    specimen detail. With ``x`` the input, ``f`` the denoiser's output and ``n`` the noise, the blend
    ``x + w (f - x)`` has mean squared error ``|n|^2 - 2 w <n, x - f> + w^2 |x - f|^2``, smallest at
    ``w* = <n, x - f> / |x - f|^2``. For a denoiser whose lost detail is uncorrelated with the noise,
    ``<n, x - f> ~= N v`` (``v`` the mean noise variance), so ``w = clip(v / R, 0, 1)`` with
    ``R = mean((x - f)^2)`` (a discrepancy rule, as in Morozov's principle): a denoiser whose residual is
    all noise (``R <= v``) is used as it is, and one that also takes away detail of mean power ``D``
    (``R = v + D``) is applied with ``w = v / (v + D)``, giving an expected error ``v D / (v + D)``, below
    both ``v`` (the unfiltered input) and ``D``. So with the dose given, the output is never expected to be
    worse than the input.

    Parameters
    ----------
    frame : ndarray, shape (H, W)
        The input, proportional to detected counts with no offset (the shot-noise variance of a pixel is
        ``c * value`` for the gain ``c = mean(frame) / dose``). NaN/inf pixels are ignored.
    denoised : ndarray, shape (H, W)
        The denoiser's output, same units.
    dose : float
        Mean counts (electrons) per pixel of ``frame``, > 0.

    Returns
    -------
    out : ndarray float32, shape (H, W)
        ``frame + w * (denoised - frame)`` (NaN where ``frame`` is not finite).
    w : float
        The weight, in [0, 1].

    Raises
    ------
    InputError
        A non-positive or non-finite dose, a frame with a non-positive mean, or shapes that differ.
    """
    x = np.asarray(frame, np.float64)
    f = np.asarray(denoised, np.float64)
    if x.shape != f.shape:
        raise InputError(f"frame and denoised shapes differ: {x.shape} vs {f.shape}")
    if not (np.isfinite(dose) and dose > 0):
        raise InputError(f"dose must be a positive number of counts per pixel, got {dose!r}")
    ok = np.isfinite(x) & np.isfinite(f)
    if not ok.any():
        raise InputError("every pixel is NaN or infinite")
    m = float(x[ok].mean())
    if not m > 0:
        raise InputError(f"a known dose needs an image proportional to counts (positive mean), got mean {m:.4g}")
    v = m * m / float(dose)  # mean shot-noise variance in the frame's units: gain c = m / dose, var = c^2 dose
    r2 = float(np.mean((x[ok] - f[ok]) ** 2))
    w = 1.0 if r2 <= v else v / r2
    out = x + w * (f - x)
    out[~np.isfinite(x)] = np.nan
    return out.astype(np.float32), float(w)
