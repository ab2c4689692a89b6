"""Movies of moving particles with known trajectories and stage drift (for tracking and drift correction).

Particles (Gaussian spots of ``sigma`` px) diffuse (Brownian steps of ``step`` px rms per axis per frame)
and flow (``velocity`` px per frame) over a static support texture, reflected at the borders of the
field; the whole field drifts (``drift`` px per frame plus a random walk of ``drift_jitter`` px), so the
content of frame ``t`` sits at its sample position plus ``drift[t]``. Frames carry Poisson noise at
``dose`` counts per pixel.

Scanned frames (``scan_fraction > 0``): row ``r`` of frame ``t`` is recorded at time
``t + scan_fraction * r / height`` (frame interval 1), so particles and drift are rendered at each row's
own time, as a scanning probe or STEM records them; ``Movie.line_time`` is that row interval.

>>> m = simulate_movie(n_frames=3, size=64, n_particles=4, seed=0)
>>> m.frames.shape, m.positions.shape, m.drift.shape
((3, 64, 64), (3, 4, 2), (3, 2))
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ...errors import InputError
from .lattice import gaussian_random_field

__all__ = ["Movie", "simulate_movie", "shift_image"]


@dataclass
class Movie:
    """A simulated movie and its truth.

    Attributes
    ----------
    frames : ndarray, float32, (T, H, W)
        Counts divided by the dose.
    positions : ndarray, float64, (T, N, 2)
        ``(y, x)`` of every particle at each frame's start time, in sample coordinates (px): where it
        would appear without drift. Particle ``n`` is the same particle in every frame.
    drift : ndarray, float64, (T, 2)
        ``(dy, dx)`` displacement of the field's content at each frame's start (``drift[0] = 0``).
    times : ndarray, (T,)
        Frame start times (frame intervals).
    line_time : float
        Time between rows (frame intervals; 0 for snapshots).
    params : dict
    end_positions, end_drift : ndarray (N, 2), (2,)
        Positions and drift one frame interval after the last frame's start (rows of a scanned last
        frame are recorded between the two).
    """

    frames: np.ndarray
    positions: np.ndarray
    drift: np.ndarray
    times: np.ndarray
    line_time: float = 0.0
    params: dict = field(default_factory=dict)
    end_positions: np.ndarray | None = None
    end_drift: np.ndarray | None = None

    def observed(self) -> np.ndarray:
        """``(T, N, 2)`` positions as they appear in the frames at each frame's start (positions + drift)."""
        return self.positions + self.drift[:, None, :]

    def observed_at(self, frame: int, row: float) -> np.ndarray:
        """``(N, 2)`` where the particles appear when row ``row`` of frame ``frame`` is recorded (positions and
        drift interpolated in time as the simulation renders them)."""
        f = float(row) * self.line_time
        a = self.observed()[frame]
        if f == 0:
            return a
        if frame + 1 < len(self.positions):
            b = self.observed()[frame + 1]
        else:
            b = self.end_positions + self.end_drift[None, :]
        return a * (1 - f) + b * f


def shift_image(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``img`` with its content moved by ``(dy, dx)`` px (Fourier shift: exact for band-limited, periodic images)."""
    a = np.asarray(img, np.float64)
    ky = np.fft.fftfreq(a.shape[0])[:, None]
    kx = np.fft.fftfreq(a.shape[1])[None, :]
    return np.fft.ifft2(np.fft.fft2(a) * np.exp(-2j * np.pi * (ky * dy + kx * dx))).real.astype(np.float32)


def _reflect(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    q = np.mod(p - lo, 2 * span)
    return lo + np.where(q > span, 2 * span - q, q)


def simulate_movie(n_frames: int = 20, size: int = 128, n_particles: int = 20, *, step: float = 1.0,
                   velocity: tuple[float, float] = (0.0, 0.0), drift: tuple[float, float] = (0.4, -0.3),
                   drift_jitter: float = 0.2, sigma: float = 1.5, amplitude: float = 1.5, texture: float = 0.15,
                   texture_corr: float = 1.5, dose: float = 200.0, scan_fraction: float = 0.0, seed: int = 0) -> Movie:
    """A movie of diffusing, drifting particles with its exact truth.

    Parameters
    ----------
    n_frames, size, n_particles : int
        Frames, image side (px) and particles.
    step : float
        Brownian step, px rms per axis per frame (diffusion coefficient ``step**2 / 2`` px^2 per frame).
    velocity : (float, float)
        Common flow ``(vy, vx)`` in px per frame.
    drift, drift_jitter : (float, float), float
        Stage drift ``(dy, dx)`` px per frame, plus a random walk of ``drift_jitter`` px rms per axis per frame.
    sigma, amplitude : float
        Gaussian spot width (px) and peak above the background.
    texture, texture_corr : float
        Contrast and correlation length (px) of the static support texture (an amorphous film: what drift
        correction locks onto).
    dose : float
        Counts per pixel at intensity 1 (Poisson noise).
    scan_fraction : float in [0, 1]
        Fraction of the frame interval spent scanning one frame (0: snapshots).
    seed : int

    Returns
    -------
    Movie
    """
    if n_frames < 1 or size < 16 or n_particles < 0:
        raise InputError(f"need n_frames >= 1, size >= 16 and n_particles >= 0, got {n_frames}, {size}, {n_particles}")
    if not 0 <= scan_fraction <= 1:
        raise InputError(f"scan_fraction must be in [0, 1], got {scan_fraction}")
    if dose <= 0:
        raise InputError(f"dose must be positive, got {dose}")
    rng = np.random.default_rng(seed)
    T = int(n_frames)
    # drift at frame starts, one extra frame for rows recorded late in the last frame
    steps = np.asarray(drift, float)[None, :] + drift_jitter * rng.normal(size=(T, 2))
    d = np.vstack([np.zeros((1, 2)), np.cumsum(steps, 0)])  # (T + 1, 2)
    reach = float(np.abs(d).max())
    margin = 3 * sigma + 2
    lo, hi = margin + reach, size - 1 - margin - reach
    if hi - lo < 4:
        raise InputError(f"the drift ({reach:.1f} px) leaves no room for particles in a {size} px field")
    p = np.empty((T + 1, n_particles, 2))
    p[0] = rng.uniform(lo, hi, (n_particles, 2))
    for t in range(T):
        p[t + 1] = _reflect(p[t] + np.asarray(velocity, float) + step * rng.normal(size=(n_particles, 2)), lo, hi)
    pad = int(np.ceil(reach)) + 4
    tex = texture * gaussian_random_field((size + 2 * pad, size + 2 * pad), rng, texture_corr)
    rows = np.arange(size, dtype=float)
    cols = np.arange(size, dtype=float)
    line_time = scan_fraction / size
    frames = np.empty((T, size, size), np.float32)
    for t in range(T):
        f = rows * line_time  # fraction of the interval at each row
        dr = d[t][None, :] * (1 - f[:, None]) + d[t + 1][None, :] * f[:, None]  # (H, 2) drift at each row
        pr = p[t][None] * (1 - f[:, None, None]) + p[t + 1][None] * f[:, None, None]  # (H, N, 2)
        yy = np.broadcast_to(rows[:, None] - dr[:, :1], (size, size))  # sample coordinates of each pixel
        xx = cols[None, :] - dr[:, 1:]
        bg = ndimage.map_coordinates(tex, [yy + pad, xx + pad], order=3, mode="nearest")
        img = 0.5 + bg
        obs = pr + dr[:, None, :]  # (H, N, 2) where each particle appears, row by row
        w = 5 * sigma
        for n in range(n_particles):  # each spot only in its window
            r0 = max(0, int(np.floor(obs[:, n, 0].min() - w)))
            r1 = min(size, int(np.ceil(obs[:, n, 0].max() + w)) + 1)
            c0 = max(0, int(np.floor(obs[:, n, 1].min() - w)))
            c1 = min(size, int(np.ceil(obs[:, n, 1].max() + w)) + 1)
            if r0 >= r1 or c0 >= c1:
                continue
            gy = np.exp(-(rows[r0:r1, None] - obs[r0:r1, n, :1]) ** 2 / (2 * sigma ** 2))
            gx = np.exp(-(cols[None, c0:c1] - obs[r0:r1, n, 1:]) ** 2 / (2 * sigma ** 2))
            img[r0:r1, c0:c1] += amplitude * gy * gx
        frames[t] = rng.poisson(np.clip(img, 0, None) * dose) / dose
    return Movie(frames, p[:T], d[:T], np.arange(T, dtype=float), line_time, end_positions=p[T], end_drift=d[T],
                 params=dict(step=step, velocity=list(velocity), drift=list(drift), drift_jitter=drift_jitter, sigma=sigma,
                      dose=dose, scan_fraction=scan_fraction, n_particles=n_particles, seed=seed))
