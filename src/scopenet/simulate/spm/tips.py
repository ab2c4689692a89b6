"""Tip states and their imaging operators.

A tip state maps the apparent surface height ``h`` to the recorded height ``z``:

1. **Electronic resolution and asymmetry** – a linear, shift-invariant point-spread function:
   an anisotropic Gaussian (``sigma`` across, ``sigma * aspect`` along ``angle``).
2. **Multiple apices** – ghost copies: ``z = sum_k w_k (PSF * h)(r - d_k) / sum_k w_k`` with the
   main apex at ``d_0 = 0, w_0 = 1`` (the tunnelling currents of the apices add).
3. **Blunt tip** – geometric (Villarrubia) dilation of the result by a paraboloid of radius ``R``:
   ``z(r) = max_u [z(r - u) - |u|^2 / (2R)]``; it is separable, so it runs as two 1-D dilations.
4. A constant height offset (the tip length changes when the tip changes).

Steps 1 and 2 are one multiplication in Fourier space (:func:`tip_transfer`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from .surfaces import freq_vectors

#: Half-width cap (pixels) of the paraboloid used by :func:`dilate_paraboloid`: the tip is a
#: paraboloid cap of at most this radius (beyond it the sides are taken as vertical).
MAX_DILATION_PX = 16


@dataclass
class TipState:
    """One tip state (all lengths in metres).

    Attributes
    ----------
    sigma : float
        Gaussian resolution of the main apex (m).
    aspect : float
        Elongation: the PSF is ``aspect`` times wider along ``angle`` (1 = symmetric).
    angle : float
        Direction of elongation (rad, from the scan (x) axis towards +y).
    ghosts : list of [dy, dx, weight]
        Extra apices: offset (m) and weight relative to the main apex.
    radius : float or None
        Paraboloid radius (m) for the blunt-tip dilation; ``None`` for none.
    z_offset : float
        Height offset added to everything scanned with this state (m).
    noise_scale : float
        Multiplies the white noise while this state is active (unstable tips are noisier).
    """

    sigma: float = 0.3e-10
    aspect: float = 1.0
    angle: float = 0.0
    ghosts: list = field(default_factory=list)
    radius: float | None = None
    z_offset: float = 0.0
    noise_scale: float = 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ghosts"] = [[float(v) for v in g] for g in self.ghosts]
        return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in d.items()}

    def covariance(self, near: float = 1.5e-9) -> np.ndarray:
        """Second-moment matrix (m^2, (y, x) order) of the PSF including ghosts closer than ``near``.

        Used by the asymmetry rule: its eigenvalue ratio is the elongation of imaged features.
        """
        c, s = np.cos(self.angle), np.sin(self.angle)
        e = np.array([s, c])                                     # (y, x) unit vector along angle
        o = np.array([c, -s])
        cov = (self.sigma * self.aspect) ** 2 * np.outer(e, e) + self.sigma**2 * np.outer(o, o)
        pts = [(0.0, 0.0, 1.0)] + [tuple(g) for g in self.ghosts if np.hypot(g[0], g[1]) < near]
        w = np.array([g[2] for g in pts])
        d = np.array([[g[0], g[1]] for g in pts])
        w = w / w.sum()
        mean = w @ d
        dd = d - mean
        return cov + (w[:, None, None] * dd[:, :, None] * dd[:, None, :]).sum(0)


def tip_transfer(shape: tuple[int, int], pixel_size: float, tip: TipState, dtype=np.float64) -> np.ndarray:
    """rfft2-domain transfer function of the linear part of a tip state (PSF and ghosts).

    Parameters
    ----------
    shape : (int, int)
        Canvas shape.
    pixel_size : float
        m per pixel.
    tip : TipState
    dtype : numpy dtype
        Real precision: float64 gives complex128, float32 complex64.

    Returns
    -------
    ndarray, complex, shape (H, W//2+1)
        Equal to 1 at zero frequency (heights are preserved on average).
    """
    ky, kx = freq_vectors(tuple(shape))
    cdt = np.result_type(dtype, np.complex64)
    su = tip.sigma * tip.aspect / pixel_size
    sv = tip.sigma / pixel_size
    if su == sv:                               # isotropic: separable in (ky, kx)
        c = -2 * np.pi**2 * sv**2
        g = np.multiply.outer(np.exp(c * ky**2).astype(dtype), np.exp(c * kx**2).astype(dtype))
    else:
        c, s = np.cos(tip.angle), np.sin(tip.angle)
        kyc, kxc = ky[:, None].astype(dtype), kx[None, :].astype(dtype)
        ku = kxc * c + kyc * s                 # along the elongation
        kv = -kxc * s + kyc * c
        g = np.exp(-2 * np.pi**2 * (su**2 * ku**2 + sv**2 * kv**2)).astype(dtype, copy=False)
    if not tip.ghosts:
        return g.astype(cdt)
    ramp = np.ones(g.shape, dtype=cdt)
    total = 1.0
    for dy, dx, w in tip.ghosts:
        # a shift is separable: exp(-2 pi i (ky dy + kx dx)) = exp(-2 pi i ky dy) exp(-2 pi i kx dx)
        ey = (w * np.exp(-2j * np.pi * ky * (dy / pixel_size))).astype(cdt)
        ex = np.exp(-2j * np.pi * kx * (dx / pixel_size)).astype(cdt)
        ramp += np.multiply.outer(ey, ex)
        total += w
    return g * ramp / cdt.type(total)


def dilate(z: np.ndarray, tip: np.ndarray) -> np.ndarray:
    """Grey dilation of a height map by a tip shape (Villarrubia's image of a surface).

    Parameters
    ----------
    z : ndarray, shape (H, W)
        Surface height (any unit).
    tip : ndarray, shape (h, w)
        Tip height relative to its apex (same unit, <= 0, apex 0 at the centre). A single pixel
        ``[[0]]`` (a point tip) leaves ``z`` unchanged.

    Returns
    -------
    ndarray, shape (H, W)
        ``max_u [z(r - u) + tip(u)]`` with the border handled by nearest extension.
    """
    return ndimage.grey_dilation(np.asarray(z, float), structure=np.asarray(tip, float), mode="nearest")


def paraboloid_tip(radius: float, pixel_size: float, depth: float) -> np.ndarray:
    """A paraboloid tip ``-|u|^2 / (2R)`` sampled on pixels, truncated where it is deeper than ``depth`` (m)."""
    r = int(min(64, np.floor(np.sqrt(2 * radius * max(depth, 0.0)) / pixel_size)))
    u = np.arange(-r, r + 1) * pixel_size
    return -(u[:, None] ** 2 + u[None, :] ** 2) / (2 * radius)


def _dilate_axis(z: np.ndarray, s: np.ndarray, axis: int) -> np.ndarray:
    """1-D grey dilation ``max_u [z(. - u) + s(u)]`` along ``axis`` with nearest extension (``s`` symmetric)."""
    r = (len(s) - 1) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    zp = np.pad(z, pad, mode="edge")
    n = z.shape[axis]
    out = z + s[r]
    for k in range(len(s)):
        if k == r:
            continue
        sl = zp[k:k + n] if axis == 0 else zp[:, k:k + n]
        np.maximum(out, sl + s[k], out=out)
    return out


def dilate_paraboloid(z: np.ndarray, radius: float, pixel_size: float) -> np.ndarray:
    """Dilation by a paraboloid tip of radius ``radius`` (m), exact and separable.

    Equivalent to :func:`dilate` with :func:`paraboloid_tip` (truncated to a square of half-width
    ``sqrt(2 R dz)`` where ``dz`` is the height range of ``z``, beyond which the tip cannot touch,
    and at most :data:`MAX_DILATION_PX` pixels). Runs as two 1-D dilations, each a loop of
    vectorised maxima over the ``2 r + 1`` shifts; the dtype of ``z`` is kept.
    """
    depth = float(np.ptp(z))
    r = int(min(MAX_DILATION_PX, np.floor(np.sqrt(2 * radius * depth) / pixel_size)))
    if r < 1:
        return z
    u = np.arange(-r, r + 1) * pixel_size
    s = (-(u**2) / (2 * radius)).astype(z.dtype if np.issubdtype(z.dtype, np.floating) else float)
    return _dilate_axis(_dilate_axis(z, s, 1), s, 0)


# ----------------------------------------------------------------------------- sampling

def sample_tip(rng: np.random.Generator, probs: dict, sigma_range: tuple[float, float],
               radius_range: tuple[float, float], pixel_size: float) -> TipState:
    """Draw a random tip state.

    ``probs`` holds the probabilities of ``double`` (1-2 ghost apices), ``asymmetric``
    (elongated PSF and/or a close ghost within 2 Å) and ``blunt`` (paraboloid dilation).
    ``sigma`` is log-uniform in ``sigma_range`` (m); ``radius`` log-uniform in ``radius_range``.
    """
    lo, hi = np.log(sigma_range[0]), np.log(sigma_range[1])
    tip = TipState(sigma=float(np.exp(rng.uniform(lo, hi))))
    if rng.random() < probs.get("asymmetric", 0.0):
        tip.aspect = float(rng.uniform(1.6, 3.5))
        tip.angle = float(rng.uniform(0, np.pi))
        if rng.random() < 0.5:
            r, a = rng.uniform(0.8e-10, 2e-10), rng.uniform(0, 2 * np.pi)
            tip.ghosts.append([float(r * np.sin(a)), float(r * np.cos(a)), float(rng.uniform(0.3, 0.8))])
    if rng.random() < probs.get("double", 0.0):
        for _ in range(1 if rng.random() < 0.75 else 2):
            r = np.exp(rng.uniform(np.log(4e-10), np.log(3e-9)))
            a = rng.uniform(0, 2 * np.pi)
            tip.ghosts.append([float(r * np.sin(a)), float(r * np.cos(a)), float(rng.uniform(0.25, 1.0))])
    if rng.random() < probs.get("blunt", 0.0):
        lo, hi = np.log(radius_range[0]), np.log(radius_range[1])
        tip.radius = float(np.exp(rng.uniform(lo, hi)))
    return tip
