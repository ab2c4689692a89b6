"""HRTEM images through a phase object and a contrast transfer function (CTF).

The projected potential is built from the same atom columns as :mod:`.lattice` (Gaussian columns with
weights ``sum Z^0.75``) plus an amorphous low-Z support. The exit wave of a thin specimen is
``psi = exp(i sigma V_p)`` (phase-object approximation; :func:`weak_phase_image` gives the linear
weak-phase limit), imaged through the objective lens transfer function

    ``H(k) = exp(-i chi(k)) E_t(k) E_s(k)``,
    ``chi(k) = pi lambda k^2 (C_s lambda^2 k^2 / 2 - Delta f)``

with ``Delta f > 0`` meaning *underfocus* (Kirkland's convention; Scherzer defocus is
``+sqrt(4/3 C_s lambda)``), temporal envelope ``E_t = exp(-(pi lambda Delta)^2 k^4 / 2)`` for focal spread
``Delta`` and spatial envelope ``E_s = exp(-(pi alpha / lambda)^2 (C_s lambda^3 k^3 - Delta f lambda k)^2)``
for convergence semi-angle ``alpha`` (E. J. Kirkland, *Advanced Computing in Electron Microscopy*).
Lengths are in ångström unless a name says otherwise; spatial frequencies ``k`` in 1/Å.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from .lattice import ColumnScene, LatticeImage, _labels, gaussian_random_field, random_columns, render_gaussians

_H = 6.62607015e-34  # J s
_M0 = 9.1093837015e-31  # kg
_E = 1.602176634e-19  # C
_C = 299792458.0  # m/s


def _floats(k) -> np.ndarray:
    """``k`` as a float array, keeping float32 (for speed on full FFT grids)."""
    k = np.asarray(k)
    return k if k.dtype in (np.float32, np.float64) else k.astype(np.float64)


def wavelength(voltage: float) -> float:
    """Relativistic electron wavelength, Å, for an accelerating voltage in volts.

    ``lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2)))``; 300 kV -> 0.019687 Å.
    """
    if voltage <= 0:
        raise InputError(f"voltage must be positive (volts), got {voltage!r}")
    p = math.sqrt(2 * _M0 * _E * voltage * (1 + _E * voltage / (2 * _M0 * _C**2)))
    return _H / p * 1e10


def interaction_constant(voltage: float) -> float:
    """``sigma = 2 pi m e lambda / h^2`` (relativistic mass), rad / (V Å)."""
    lam = wavelength(voltage) * 1e-10
    m = _M0 * (1 + _E * voltage / (_M0 * _C**2))
    return 2 * math.pi * m * _E * lam / _H**2 * 1e-10


def scherzer_defocus(cs_mm: float, voltage: float) -> float:
    """Scherzer (extended) defocus ``sqrt(4/3 Cs lambda)``, Å (underfocus positive)."""
    return math.sqrt(4 / 3 * cs_mm * 1e7 * wavelength(voltage))


def chi(k: np.ndarray, defocus: float, cs_mm: float, voltage: float) -> np.ndarray:
    """Aberration phase ``chi(k) = pi lambda k^2 (Cs lambda^2 k^2 / 2 - defocus)``, rad.

    Parameters
    ----------
    k : ndarray
        Spatial frequency magnitude, 1/Å.
    defocus : float
        Å, positive = underfocus.
    cs_mm : float
        Spherical aberration, mm.
    voltage : float
        Accelerating voltage, V.
    """
    lam = wavelength(voltage)
    cs = cs_mm * 1e7
    k2 = _floats(k) ** 2
    return np.pi * lam * k2 * (0.5 * cs * lam**2 * k2 - defocus)


def envelope(k: np.ndarray, defocus: float, cs_mm: float, voltage: float, focal_spread: float = 0.0,
             alpha_mrad: float = 0.0) -> np.ndarray:
    """Temporal x spatial coherence envelope ``E_t(k) E_s(k)`` (both 1 at ``k = 0``)."""
    lam = wavelength(voltage)
    cs = cs_mm * 1e7
    k = _floats(k)
    et = np.exp(-0.5 * (np.pi * lam * focal_spread) ** 2 * k**4)
    a = alpha_mrad * 1e-3
    es = np.exp(-((np.pi * a / lam) ** 2) * (cs * lam**3 * k**3 - defocus * lam * k) ** 2)
    return et * es


def ctf_1d(k: np.ndarray, defocus: float, cs_mm: float, voltage: float, focal_spread: float = 0.0,
           alpha_mrad: float = 0.0) -> np.ndarray:
    """Phase-contrast transfer function ``sin(chi(k)) E(k)`` of a weak-phase object.

    The weak-phase image is ``I = 1 + 2 sigma V_p (x) F^-1[sin(chi) E]``; with this sign convention
    atoms are dark at Scherzer defocus (``sin chi ~ -1``).
    """
    return np.sin(chi(k, defocus, cs_mm, voltage)) * envelope(k, defocus, cs_mm, voltage, focal_spread, alpha_mrad)


def ctf_zeros(defocus: float, cs_mm: float, voltage: float, n_max: int = 10) -> np.ndarray:
    """Analytic zero crossings of ``sin chi`` (``chi = -n pi``... all integer multiples of pi), 1/Å, sorted.

    ``chi(k) = m pi`` gives ``Cs lambda^3 k^4 / 2 - defocus lambda k^2 - m = 0``, so
    ``k^2 = (defocus lambda +- sqrt(defocus^2 lambda^2 + 2 Cs lambda^3 m)) / (Cs lambda^3)`` for every integer
    ``m`` giving a positive real root. Roots with ``|m| <= n_max`` (and ``k > 0``) are returned.
    """
    lam = wavelength(voltage)
    cs = cs_mm * 1e7
    roots = []
    for m in range(-n_max, n_max + 1):
        if cs == 0:
            if defocus != 0 and -m / (defocus * lam) > 0:
                roots.append(math.sqrt(-m / (defocus * lam)))
            continue
        disc = (defocus * lam) ** 2 + 2 * cs * lam**3 * m
        if disc < 0:
            continue
        for sgn in (1, -1):
            k2 = (defocus * lam + sgn * math.sqrt(disc)) / (cs * lam**3)
            if k2 > 1e-12:
                roots.append(math.sqrt(k2))
    return np.unique(np.round(np.array(roots), 12))


def frequency_grid(shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """``|k|`` on the FFT grid of an image with ``pixel_size`` Å per px, 1/Å, shape ``shape``."""
    ky = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    kx = np.fft.fftfreq(shape[1], d=pixel_size)[None, :]
    return np.sqrt(ky**2 + kx**2)


def transfer_function(shape: tuple[int, int], pixel_size: float, defocus: float, cs_mm: float, voltage: float,
                      focal_spread: float = 0.0, alpha_mrad: float = 0.0, aperture: float | None = None) -> np.ndarray:
    """Complex lens transfer ``exp(-i chi) E`` (optionally cut by an objective aperture at ``aperture`` 1/Å).

    Returns
    -------
    ndarray, complex64, shape ``shape`` (FFT order)
    """
    k = frequency_grid(shape, pixel_size).astype(np.float32)
    c = chi(k, defocus, cs_mm, voltage).astype(np.float32)
    e = envelope(k, defocus, cs_mm, voltage, focal_spread, alpha_mrad).astype(np.float32)
    if aperture is not None:
        e = e * (k <= aperture)
    h = np.empty(shape, np.complex64)
    h.real = np.cos(c) * e
    h.imag = -np.sin(c) * e
    return h


def image_phase_object(phase: np.ndarray, pixel_size: float, defocus: float, cs_mm: float, voltage: float,
                       focal_spread: float = 0.0, alpha_mrad: float = 0.0, absorption: float = 0.0) -> np.ndarray:
    """Image intensity ``|F^-1[F[exp(i phase - absorption * phase)] H]|^2`` of a phase object.

    Parameters
    ----------
    phase : ndarray, shape (H, W)
        ``sigma V_p``, rad.
    pixel_size : float
        Å per px.

    Returns
    -------
    ndarray, float64, shape (H, W)
    """
    from scipy import fft as sfft

    phase = np.asarray(phase, np.float32)
    amp = np.exp(-np.float32(absorption) * phase)
    psi = np.empty(phase.shape, np.complex64)
    psi.real = amp * np.cos(phase)
    psi.imag = amp * np.sin(phase)
    h = transfer_function(phase.shape, pixel_size, defocus, cs_mm, voltage, focal_spread, alpha_mrad)
    out = sfft.ifft2(sfft.fft2(psi, workers=1) * h, workers=1)
    return (out.real**2 + out.imag**2).astype(np.float64)


def weak_phase_image(phase: np.ndarray, pixel_size: float, defocus: float, cs_mm: float, voltage: float,
                     focal_spread: float = 0.0, alpha_mrad: float = 0.0) -> np.ndarray:
    """Linear weak-phase image ``1 + 2 phase (x) F^-1[sin(chi) E]``."""
    k = frequency_grid(phase.shape, pixel_size)
    t = ctf_1d(k, defocus, cs_mm, voltage, focal_spread, alpha_mrad)
    return 1 + 2 * np.real(np.fft.ifft2(np.fft.fft2(phase) * t))


@dataclass
class Optics:
    """Microscope settings of one HRTEM image (Å, mm, V, mrad)."""

    voltage: float
    cs_mm: float
    defocus: float
    focal_spread: float
    alpha_mrad: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Optics":
        """Uncorrected (Cs 0.5-1.2 mm near Scherzer) or aberration-corrected (Cs -20..20 um, small defocus)."""
        voltage = float(rng.choice([80e3, 200e3, 300e3]))
        if rng.random() < 0.5:
            cs = float(rng.uniform(0.5, 1.2))
            df = scherzer_defocus(cs, voltage) * float(rng.uniform(0.6, 1.4))
        else:
            cs = float(rng.uniform(-0.02, 0.02))
            df = float(rng.uniform(-80, 80))
        return cls(voltage, cs, df, float(rng.uniform(10, 50)), float(rng.uniform(0.05, 0.5)))


def hrtem_image(rng: np.random.Generator, size: int = 512, scene: ColumnScene | None = None,
                optics: Optics | None = None, max_phase: float | None = None,
                support: float | None = None) -> LatticeImage:
    """HRTEM image of atom columns (phase object) on amorphous carbon, with column labels.

    The projected potential is scaled so that its largest phase shift is ``max_phase`` rad (0.05-0.8),
    keeping the specimen in the (weak-)phase-object regime.
    """
    scene = scene if scene is not None else random_columns(rng, size)
    px = scene.params["pixel_size_A"]
    optics = optics if optics is not None else Optics.random(rng)
    sigma_A = float(rng.uniform(0.2, 0.4))
    sigma = max(0.5, sigma_A / px)
    pot = render_gaussians((size, size), scene.positions, scene.potential, sigma)
    pot /= max(pot.max(), 1e-12)
    support = support if support is not None else float(rng.uniform(0.05, 0.5))
    pot += support * (1 + 0.5 * gaussian_random_field((size, size), rng, max(0.5, 0.5 / px)))
    max_phase = max_phase if max_phase is not None else float(rng.uniform(0.05, 0.8))
    phase = pot / max(pot.max(), 1e-12) * max_phase
    img = image_phase_object(phase, px, optics.defocus, optics.cs_mm, optics.voltage, optics.focal_spread,
                             optics.alpha_mrad, absorption=float(rng.uniform(0, 0.1)))
    lo, hi = img.min(), img.max()
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    atoms, atoms_m, mask, radius = _labels(scene, size, sigma, px)
    params = dict(scene.params, kind="hrtem", voltage_V=optics.voltage, cs_mm=optics.cs_mm,
                  defocus_A=optics.defocus, focal_spread_A=optics.focal_spread, alpha_mrad=optics.alpha_mrad,
                  max_phase_rad=max_phase, support=support, column_sigma_A=sigma_A, mask_radius_px=float(radius),
                  wavelength_A=wavelength(optics.voltage))
    return LatticeImage(img.astype(np.float32), atoms, atoms_m, mask, px * 1e-10, params)
