"""A physical degradation model for electron micrographs (TEM, STEM, SEM): clean image -> acquisition.

Each effect is a separate function of a clean (or partly degraded) float image and a
:class:`numpy.random.Generator`, so it can be tested on its own; :func:`degrade` chains them in the
order an instrument applies them, with the parameters of a :class:`Degradation` (pydantic, round-trips
through YAML), and :func:`random_degradation` draws a plausible parameter set per modality.

Sources
-------
- I. Lobato, T. Friedrich and S. Van Aert, *Deep convolutional neural networks to restore single-shot
  electron microscopy images*, npj Comput. Mater. 10, 10 (2024; arXiv:2303.17025), the ``tk_r_em``
  models. Their degradation model: TEM detector noise (shot noise, dark current, read-out noise), X-ray
  hits saturating small groups of pixels, dead pixels and the detector MTF; S(T)EM: shot noise at the
  scintillator, photomultiplier (PMT) gain noise, read-out noise, *fast-scan noise* (the detector's
  finite bandwidth correlates noise along the scan line), *row-line noise* (a random offset per scan
  line), *scan jitter / line distortions* (each line displaced along x and y by a random amount),
  *flyback* distortion at the start of each line, drift, and for SEM charging streaks trailing bright
  features along the fast-scan direction.
- J. M. Ede, PhD thesis (Warwick 2021) ch. 6 (Ede & Beanland, Ultramicroscopy 202, 18-25, 2019): the dose
  model ``Poisson(clean * scale)`` with low doses ``25 + Exp(75)`` counts and high doses ``U(200, 2500)``
  (:mod:`scopenet.simulate.em.noise`), and 2x binning of the ground truth.
- Poisson-Gaussian sensor model (Foi et al., IEEE TIP 17, 1737, 2008): ``x = g * Poisson(s) + o + N(0,
  r^2)`` so that ``Var[x] = g * (E[x] - o) + r^2``.

Conventions: images are ``(H, W)`` with rows = scan lines (slow axis ``y``, fast axis ``x``, left to
right); lengths in px; intensities of the clean image in [0, 1] (1 = brightest); ``dose`` is the mean
number of electrons per pixel at intensity 1.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> noisy, truth, p = degrade(np.full((32, 32), 0.5), Degradation(modality="tem", dose=100.0), rng)
>>> noisy.shape, truth.shape, round(float(truth.mean()), 1)
((32, 32), (32, 32), 50.0)
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage, signal

from ...errors import InputError
from .noise import _as_image, apply_line_shifts, mtf_blur, scan_line_shifts

__all__ = ["Degradation", "degrade", "random_degradation", "poisson_gaussian", "row_noise", "fast_scan_lag",
           "line_jitter", "line_shifts", "flyback", "drift", "xray_spikes", "dead_pixels", "charging_streaks",
           "mtf", "resample_period", "MODALITIES"]

MODALITIES = ("tem", "stem", "sem")


# ------------------------------------------------------------------------------------ detector noise
def poisson_gaussian(clean: np.ndarray, dose: float, rng: np.random.Generator, gain: float = 1.0,
                     offset: float = 0.0, read_noise: float = 0.0) -> np.ndarray:
    """Poisson-Gaussian detector: ``gain * Poisson(clean * dose) + offset + N(0, read_noise^2)``.

    Parameters
    ----------
    clean : ndarray, shape (..., H, W)
        Non-negative intensity (1 = ``dose`` electrons per pixel).
    dose : float
        Electrons per pixel at intensity 1 (> 0).
    gain : float
        Digital units per electron (PMT/camera conversion factor, > 0).
    offset : float
        Dark level (black level), digital units; may be negative.
    read_noise : float
        Standard deviation of the Gaussian read-out noise, digital units.

    Returns
    -------
    ndarray, float32
        ``E = gain * dose * clean + offset`` and ``Var = gain * (E - offset) + read_noise^2`` per pixel.
    """
    a = _as_image(clean)
    if not (dose > 0 and gain > 0 and read_noise >= 0):
        raise InputError(f"need dose > 0, gain > 0 and read_noise >= 0, got {dose}, {gain}, {read_noise}")
    if (a < 0).any():
        raise InputError("Poisson noise needs a non-negative clean image")
    out = gain * rng.poisson(a * dose).astype(np.float64) + offset
    if read_noise > 0:
        out += rng.normal(0.0, read_noise, a.shape)
    return out.astype(np.float32)


def row_noise(image: np.ndarray, rng: np.random.Generator, sigma: float, correlation: float = 0.0) -> np.ndarray:
    """Row-line noise: one random offset added to every pixel of a scan line (Lobato et al.).

    Offsets follow an AR(1) process along the slow axis, ``o_i = c o_{i-1} + sqrt(1 - c^2) e_i`` with
    ``e_i ~ N(0, sigma^2)``, so each offset has std ``sigma`` and neighbouring lines correlation ``c``.
    Columns get no systematic offset.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    sigma : float
        Standard deviation of the line offsets, image units.
    correlation : float
        Line-to-line correlation ``c`` in [0, 1).
    """
    a = _as_image(image)
    if sigma < 0 or not 0 <= correlation < 1:
        raise InputError(f"need sigma >= 0 and 0 <= correlation < 1, got {sigma}, {correlation}")
    e = rng.normal(0.0, sigma, a.shape[-2])
    if correlation > 0:
        e = signal.lfilter([np.sqrt(1 - correlation ** 2)], [1, -correlation], e)
        e[0] = rng.normal(0.0, sigma)  # stationary start
    return (a + e[:, None]).astype(np.float32)


def fast_scan_lag(image: np.ndarray, tau: float) -> np.ndarray:
    """Finite detector bandwidth: a causal exponential filter along each scan line (fast-scan noise).

    ``y_j = (1 - k) y_{j-1} + k x_j`` with ``k = 1 - exp(-1 / tau)``: the signal (and the noise, which is
    thereby correlated along the line) decays over ``tau`` px; the mean of a constant line is kept.
    """
    a = _as_image(image)
    if tau <= 0:
        return a.astype(np.float32)
    k = 1.0 - np.exp(-1.0 / tau)
    zi = (1 - k) * a[..., :1]  # start each line in steady state at its first value
    out, _ = signal.lfilter([k], [1, -(1 - k)], a, axis=-1, zi=zi)
    return out.astype(np.float32)


def mtf(image: np.ndarray, sigma: float, lorentz: float = 0.0) -> np.ndarray:
    """Detector MTF blur (:func:`scopenet.simulate.em.noise.mtf_blur`): Gaussian core ``sigma`` px and an
    optional long tail of weight ``lorentz``. Power at spatial frequency ``q`` (cycles/px) is multiplied by
    ``MTF(q)^2 = exp(-4 pi^2 sigma^2 q^2)`` (no tail)."""
    return mtf_blur(image, sigma, lorentz)


# ------------------------------------------------------------------------------- scan geometry
def line_jitter(image: np.ndarray, rng: np.random.Generator, sigma_x: float, sigma_y: float = 0.0,
                order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Scan jitter: every line is recorded displaced by white ``N(0, sigma_x^2)`` along x and
    ``N(0, sigma_y^2)`` along y. Returns the frame and the ``(H, 2)`` shifts ``(dy, dx)``."""
    a = _as_image(image)
    h = a.shape[0]
    sh = np.stack([rng.normal(0, sigma_y, h) if sigma_y > 0 else np.zeros(h),
                   rng.normal(0, sigma_x, h) if sigma_x > 0 else np.zeros(h)], 1)
    return apply_line_shifts(a, sh, order), sh


def line_shifts(image: np.ndarray, rng: np.random.Generator, fraction: float, amplitude: float,
                order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sudden line shifts: a ``fraction`` of lines (chosen at random) is displaced along x by
    ``U(-amplitude, amplitude)`` px (a glitch of the scan generator), the others stay in place."""
    a = _as_image(image)
    h = a.shape[0]
    dx = np.where(rng.random(h) < fraction, rng.uniform(-amplitude, amplitude, h), 0.0)
    sh = np.stack([np.zeros(h), dx], 1)
    return apply_line_shifts(a, sh, order), sh


def flyback(image: np.ndarray, amplitude: float, decay: float, order: int = 1) -> np.ndarray:
    """Flyback distortion: after the beam returns to the start of a line the deflection overshoots and
    settles, so pixel ``j`` of every line samples ``x = j + amplitude * exp(-j / decay)``.

    Parameters
    ----------
    amplitude : float
        Displacement at the first pixel of each line, px.
    decay : float
        Settling length, px (> 0).
    """
    a = _as_image(image)
    if decay <= 0:
        raise InputError(f"flyback decay must be > 0 px, got {decay}")
    h, w = a.shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    cc += amplitude * np.exp(-np.arange(w) / decay)[None, :]
    return ndimage.map_coordinates(a, [rr, cc], order=order, mode="reflect").astype(np.float32)


def drift(image: np.ndarray, vy: float, vx: float, order: int = 1) -> np.ndarray:
    """Linear specimen drift during a serial scan: line ``i`` is recorded displaced by
    ``(vy, vx) * i / (H - 1)`` px (so ``(vy, vx)`` is the drift over the frame); a feature's shape
    shears by ``vx / H`` and stretches along y by ``1 + vy / H``."""
    a = _as_image(image)
    sh = scan_line_shifts(a.shape[0], np.random.default_rng(0), jitter=0.0, walk=0.0, drift=(vy, vx))
    return apply_line_shifts(a, sh, order)


# ------------------------------------------------------------------------------- artefacts
def xray_spikes(image: np.ndarray, rng: np.random.Generator, rate: float, amplitude: float,
                size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """X-ray / cosmic-ray hits: ``Poisson(rate * H * W)`` events at uniform positions, each adding
    ``amplitude`` (image units) to a ``size`` x ``size`` block of pixels.

    Returns the image and the ``(n, 2)`` event positions (row, column of each block's top-left pixel).
    """
    a = _as_image(image).astype(np.float64).copy()
    h, w = a.shape
    n = int(rng.poisson(rate * h * w))
    pos = np.stack([rng.integers(0, max(h - size + 1, 1), n), rng.integers(0, max(w - size + 1, 1), n)], 1)
    for y, x in pos:
        a[y:y + size, x:x + size] += amplitude
    return a.astype(np.float32), pos


def dead_pixels(image: np.ndarray, rng: np.random.Generator, fraction: float, value: float = 0.0) -> np.ndarray:
    """Dead (black) pixels: a ``fraction`` of the pixels reads ``value``."""
    a = _as_image(image).astype(np.float32).copy()
    a[rng.random(a.shape) < fraction] = value
    return a


def charging_streaks(image: np.ndarray, rng: np.random.Generator, n: int, amplitude: float,
                     length: float, lines: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """SEM charging: ``n`` bright streaks trailing along the fast-scan direction.

    Each streak starts at a random pixel ``(y0, x0)`` (drawn with probability proportional to the
    brightness of the clean image, as charge builds up on bright/insulating features) and adds
    ``amplitude * exp(-(x - x0) / length)`` for ``x >= x0`` on lines ``y0 .. y0 + lines - 1``.

    Returns the image and the ``(n, 2)`` start pixels.
    """
    a = _as_image(image).astype(np.float64).copy()
    h, w = a.shape
    if n <= 0:
        return a.astype(np.float32), np.zeros((0, 2), int)
    p = np.clip(a, 0, None).ravel() + 1e-12
    idx = rng.choice(h * w, size=n, p=p / p.sum())
    starts = np.stack(np.divmod(idx, w), 1)
    xs = np.arange(w)
    for y0, x0 in starts:
        tail = np.where(xs >= x0, amplitude * np.exp(-(xs - x0) / max(length, 1e-6)), 0.0)
        a[y0:y0 + lines] += tail
    return a.astype(np.float32), starts


# ------------------------------------------------------------------------------- sampling
def resample_period(image: np.ndarray, zoom: float, out_shape: tuple[int, int] | None = None,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Random pixel sampling of the same scene: resample by ``zoom`` (features ``zoom`` times more px
    per period) and cut an ``out_shape`` window (random position with ``rng``, else centred; reflected
    when the zoomed image is smaller). Down-sampling averages (area) so no aliasing is added.

    A lattice of period ``p`` px comes out with period ``zoom * p`` px.
    """
    from skimage.transform import rescale

    a = _as_image(image)
    if not zoom > 0:
        raise InputError(f"zoom must be > 0, got {zoom}")
    out_shape = tuple(out_shape or a.shape)
    z = rescale(a, zoom, order=1, anti_aliasing=zoom < 1, mode="reflect") if zoom != 1 else a
    ph, pw = max(out_shape[0] - z.shape[0], 0), max(out_shape[1] - z.shape[1], 0)
    if ph or pw:
        z = np.pad(z, ((0, ph), (0, pw)), mode="symmetric")
    h, w = z.shape
    if rng is None:
        y, x = (h - out_shape[0]) // 2, (w - out_shape[1]) // 2
    else:
        y, x = int(rng.integers(0, h - out_shape[0] + 1)), int(rng.integers(0, w - out_shape[1] + 1))
    return np.ascontiguousarray(z[y:y + out_shape[0], x:x + out_shape[1]]).astype(np.float32)


# ------------------------------------------------------------------------------- the chain
class Degradation(BaseModel):
    """Parameters of one acquisition (all effects off by default except shot noise).

    Attributes
    ----------
    modality : {"tem", "stem", "sem"}
        TEM: parallel illumination on a camera (MTF on the noisy counts, spikes, dead pixels, no scan
        effects). STEM/SEM: serial scan (jitter, line shifts, flyback, drift, row noise, fast-scan lag;
        the probe blur ``mtf_sigma`` acts on the clean image); SEM also charging.
    dose : float
        Electrons per pixel at intensity 1.
    gain, offset, read_noise : float
        Detector (:func:`poisson_gaussian`), digital units per electron / digital units.
    mtf_sigma, mtf_tail : float
        Detector MTF (TEM) or probe (S(T)EM) blur, px, and its long-tail weight.
    row_sigma, row_correlation : float
        Row-line noise (:func:`row_noise`), in units of ``gain * dose`` (the brightest mean signal).
    lag_tau : float
        Fast-scan lag, px (:func:`fast_scan_lag`).
    jitter_x, jitter_y : float
        Scan jitter std, px (:func:`line_jitter`).
    shift_fraction, shift_amplitude : float
        Sudden line shifts (:func:`line_shifts`).
    flyback_amplitude, flyback_decay : float
        Flyback distortion, px (:func:`flyback`).
    drift_x, drift_y : float
        Drift over the frame, px (:func:`drift`).
    spike_rate, spike_amplitude, spike_size : float, float, int
        X-ray hits per pixel, their amplitude in units of ``gain * dose``, block side.
    dead_fraction : float
        Fraction of dead pixels (reading ``offset``).
    charging_n, charging_amplitude, charging_length : int, float, float
        SEM charging streaks (:func:`charging_streaks`), amplitude in units of ``gain * dose``.
    """

    model_config = ConfigDict(extra="forbid")

    modality: Literal["tem", "stem", "sem"] = "stem"
    dose: float = Field(100.0, gt=0)
    gain: float = Field(1.0, gt=0)
    offset: float = 0.0
    read_noise: float = Field(0.0, ge=0)
    mtf_sigma: float = Field(0.0, ge=0)
    mtf_tail: float = Field(0.0, ge=0, le=1)
    row_sigma: float = Field(0.0, ge=0)
    row_correlation: float = Field(0.0, ge=0, lt=1)
    lag_tau: float = Field(0.0, ge=0)
    jitter_x: float = Field(0.0, ge=0)
    jitter_y: float = Field(0.0, ge=0)
    shift_fraction: float = Field(0.0, ge=0, le=1)
    shift_amplitude: float = Field(0.0, ge=0)
    flyback_amplitude: float = 0.0
    flyback_decay: float = Field(8.0, gt=0)
    drift_x: float = 0.0
    drift_y: float = 0.0
    spike_rate: float = Field(0.0, ge=0)
    spike_amplitude: float = Field(0.0, ge=0)
    spike_size: int = Field(1, ge=1)
    dead_fraction: float = Field(0.0, ge=0, le=1)
    charging_n: int = Field(0, ge=0)
    charging_amplitude: float = Field(0.0, ge=0)
    charging_length: float = Field(20.0, gt=0)


def degrade(clean: np.ndarray, params: Degradation, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Acquire ``clean`` (intensity in [0, 1], shape ``(H, W)``) as ``params`` say.

    Order: scan geometry (drift, flyback, jitter, line shifts) and probe blur on the clean signal
    (S(T)EM) -> Poisson-Gaussian detection (TEM: MTF blur of the noisy counts before read-out) ->
    fast-scan lag -> row-line noise -> charging streaks -> X-ray spikes -> dead pixels.

    Returns
    -------
    noisy : ndarray, float32, (H, W)
        The acquisition in digital units.
    truth : ndarray, float32, (H, W)
        The restoration target in the same units, ``gain * dose * g(clean) + offset``: what a noise-free
        detector would record on average. ``g`` keeps the smooth, frame-wide scan warps (drift and
        flyback), which no single-image restoration can know; the line-to-line jitter, line shifts,
        blur, row noise, lag, spikes, dead pixels and charging are all degradations to remove.
    info : dict
        The parameters (``model_dump``) and the drawn line shifts ``shifts`` ``(H, 2)`` (px).
    """
    p = params
    a = np.clip(_as_image(clean), 0, None)
    if a.ndim != 2:
        raise InputError(f"degrade needs one (H, W) image, got shape {a.shape}")
    h = a.shape[0]
    scale = p.gain * p.dose
    geo = a
    shifts = np.zeros((h, 2))
    x = a
    if p.modality in ("stem", "sem"):
        if p.drift_x or p.drift_y:
            x = drift(x, p.drift_y, p.drift_x)
        if p.flyback_amplitude:
            x = flyback(x, p.flyback_amplitude, p.flyback_decay)
        geo = x
        if p.jitter_x or p.jitter_y:
            x, sh = line_jitter(x, rng, p.jitter_x, p.jitter_y)
            shifts += sh
        if p.shift_fraction and p.shift_amplitude:
            x, sh = line_shifts(x, rng, p.shift_fraction, p.shift_amplitude)
            shifts += sh
        if p.mtf_sigma or p.mtf_tail:
            x = mtf(x, p.mtf_sigma, p.mtf_tail)
        x = np.clip(x, 0, None)
        y = poisson_gaussian(x, p.dose, rng, p.gain, p.offset, 0.0)
        if p.lag_tau:
            y = fast_scan_lag(y, p.lag_tau)
        if p.read_noise:
            y = y + rng.normal(0, p.read_noise, y.shape)
        if p.row_sigma:
            y = row_noise(y, rng, p.row_sigma * scale, p.row_correlation)
        if p.modality == "sem" and p.charging_n:
            y, _ = charging_streaks(y - p.offset, rng, p.charging_n, p.charging_amplitude * scale,
                                    p.charging_length)
            y = y + p.offset
    else:
        y = p.gain * rng.poisson(x * p.dose).astype(np.float64)
        if p.mtf_sigma or p.mtf_tail:
            y = mtf(y, p.mtf_sigma, p.mtf_tail)
        y = y + p.offset + (rng.normal(0, p.read_noise, y.shape) if p.read_noise else 0.0)
        if p.row_sigma:
            y = row_noise(y, rng, p.row_sigma * scale, p.row_correlation)
    if p.spike_rate and p.spike_amplitude:
        y, _ = xray_spikes(y, rng, p.spike_rate, p.spike_amplitude * scale, p.spike_size)
    if p.dead_fraction:
        y = dead_pixels(y, rng, p.dead_fraction, p.offset)
    truth = (scale * np.asarray(geo, np.float64) + p.offset).astype(np.float32)
    return np.asarray(y, np.float32), truth, {**p.model_dump(), "shifts": shifts}


def _logu(rng, lo, hi) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_degradation(rng: np.random.Generator, modality: str | None = None, strength: float = 1.0
                       ) -> Degradation:
    """A plausible random acquisition for ``modality`` (``None``: one of tem/stem/sem at random).

    Ranges (``strength`` scales the distortion amplitudes; 1 = the training distribution): dose
    log-uniform 5-3000 e/px; gain log-uniform 0.5-20 DU/e with offset ``U(-50, 200)`` DU and read noise
    0-3 electrons' worth; MTF 0.3-1.2 px (TEM), probe 0-0.8 px (S(T)EM); each S(T)EM effect present with
    probability 0.5-0.7: row noise 0.5-4 % of the full signal, fast-scan lag 0.3-1.5 px, jitter 0.1-1 px,
    line shifts in up to 5 % of the lines (up to 3 px), flyback up to 4 px decaying over 3-15 px, drift
    up to 4 px per frame; X-ray spikes (mostly TEM) up to 1e-4 per px; charging streaks (SEM) 0-6.
    """
    mod = str(rng.choice(MODALITIES)) if modality is None else modality
    if mod not in MODALITIES:
        raise InputError(f"modality must be one of {MODALITIES}, got {modality!r}")
    s = float(strength)
    dose = _logu(rng, 5, 3000)
    gain = _logu(rng, 0.5, 20)
    kw: dict = dict(modality=mod, dose=dose, gain=gain, offset=float(rng.uniform(-50, 200)),
                    read_noise=float(rng.uniform(0, 3)) * gain)
    on = lambda q: rng.random() < q  # noqa: E731
    if mod == "tem":
        kw.update(mtf_sigma=float(rng.uniform(0.3, 1.2)), mtf_tail=float(rng.uniform(0, 0.3)))
        if on(0.4):
            kw.update(spike_rate=_logu(rng, 1e-6, 1e-4) * s, spike_amplitude=float(rng.uniform(0.5, 5)),
                      spike_size=int(rng.integers(1, 3)))
        if on(0.2):
            kw.update(dead_fraction=_logu(rng, 1e-5, 1e-3) * s)
    else:
        kw.update(mtf_sigma=float(rng.uniform(0, 0.8)))
        if on(0.6):
            kw.update(row_sigma=float(rng.uniform(0.005, 0.04)) * s, row_correlation=float(rng.uniform(0, 0.5)))
        if on(0.5):
            kw.update(lag_tau=float(rng.uniform(0.3, 1.5)))
        if on(0.7):
            kw.update(jitter_x=float(rng.uniform(0.1, 1.0)) * s, jitter_y=float(rng.uniform(0, 0.3)) * s)
        if on(0.3):
            kw.update(shift_fraction=float(rng.uniform(0, 0.05)), shift_amplitude=float(rng.uniform(0.5, 3)) * s)
        if on(0.4):
            kw.update(flyback_amplitude=float(rng.uniform(0, 4)) * s, flyback_decay=float(rng.uniform(3, 15)))
        if on(0.5):
            kw.update(drift_x=float(rng.uniform(-4, 4)) * s, drift_y=float(rng.uniform(-4, 4)) * s)
        if on(0.15):
            kw.update(spike_rate=_logu(rng, 1e-6, 3e-5) * s, spike_amplitude=float(rng.uniform(0.5, 3)))
        if mod == "sem" and on(0.6):
            kw.update(charging_n=int(rng.integers(1, 7)), charging_amplitude=float(rng.uniform(0.05, 0.5)) * s,
                      charging_length=float(rng.uniform(5, 60)))
    return Degradation(**kw)
