"""A latent STM tip with conditioning dynamics, and a cheap renderer of one scan with it.

Used by the simulated microscope of :mod:`scopenet.autopilot.sim`: the tip is a small set of
physical numbers (:class:`ApexState`) that conditioning actions change stochastically
(:func:`apply_pulse`, :func:`apply_dip`, :func:`degrade`), and :func:`render_scan` images an
H:Si(100) patch with it through the same operators as :func:`~scopenet.simulate.spm.simulate_image`
(:func:`~.tips.tip_transfer`, :func:`~.tips.dilate_paraboloid`, scan noise, X-flattening), without
the labelling work, so that one 64x64 scan costs a few milliseconds.

**Latent state -> imaging operator** (:meth:`ApexState.tip_state`)::

    sigma   = 0.9 A * radius_nm            (Gaussian resolution of the main apex)
    radius  = radius_nm * 1 nm, only when radius_nm > 2 (blunt-tip dilation)
    ghosts  = [[dy, dx, ghost_w]] when ghost_w > 0 (a second apex)
    aspect, angle as given (asymmetric apex)
    noise_scale = 1 + 4 * adsorbate + 4 * instability

A mobile adsorbate and an unstable apex also switch the tip during the scan (a tip change at a
random line with probability ``0.5 * adsorbate + max(0, 1.5 (instability - 0.3))``, capped at 0.9).

**Good apex** (:meth:`ApexState.good`): ``radius_nm < 1.5``, ``ghost_w < 0.2``, ``aspect < 2.5``,
no adsorbate, ``instability < 0.5`` (the limits beyond which the shipped good/bad judge sees the defect
on a clean terrace; a second apex shows only at surface defects, so the judge sees it less reliably). Defects are named by :meth:`ApexState.defects`.

**Dynamics** (probabilities per action; ``d`` = dip depth in nm, ``|V|`` pulse amplitude in V):

=====================  ==========================================================================
bias pulse             adsorbate dropped: ``p = {2.5: 0.2, 4: 0.45, 8: 0.6}[|V|]`` for V > 0, a
                       quarter of it for V < 0; picked up (none present): ``{2.5: 0.2, 4: 0.35, 8: 0.5}``
                       for V < 0, a tenth of it for V > 0. Instability annealed (x 0.3) with ``{0.15, 0.35, 0.5}``.
                       8 V only: asymmetry reset (p 0.25), apex blunted x U(1.3, 2) (p 0.15) or
                       sharpened x U(0.5, 0.8) (p 0.1), second apex removed (p 0.1) or created (p 0.05).
tip dip to depth d     apex reshaped with ``p = 1 - exp(-d / 1.5)`` (0.41 at 0.8 nm, 0.96 at 5 nm):
                       new radius log-normal, median ``0.3 + 0.5 d`` nm (shallow dips sharpen,
                       deep dips leave blunter apices), sigma 0.45; asymmetric afterwards with p 0.2.
                       Second apex removed only by deep dips: ``p = 1 - exp(-(d / 1.5)^2)`` (0.25
                       at 0.8 nm, 0.94 at 2.5 nm); a new one formed with ``p = 0.04 + 0.05 d``.
                       Adsorbate dropped with p 0.25 on a reshape; instability redrawn U(0, 0.4) on a
                       reshape. Crash with ``p = 0.002 exp(d / 1.2)`` (0.013 at 2.5 nm, 0.13 at 5 nm):
                       radius U(4, 12) nm, second apex (p 0.5), instability 0.6.
scanning               per image: instability grows by 0.01; an adsorbate is picked up with p 0.004;
                       the apex blunts x 1.05 with p 0.01 (slow degradation). Radii are capped at 20 nm.
=====================  ==========================================================================
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import fft as sfft

from .scan import flatten_lines, line_offsets, pink_noise, scan_times
from .surfaces import height_spectrum, hsi100
from .tips import MAX_DILATION_PX, TipState, dilate_paraboloid, tip_transfer

__all__ = ["ApexState", "apply_dip", "apply_pulse", "crash_probability", "degrade", "random_bad_apex",
           "render_scan", "scan_states", "DEFECTS"]

#: names of the defects an apex can have (see :meth:`ApexState.defects`)
DEFECTS = ("blunt", "double", "asymmetric", "adsorbate", "unstable")

#: apex radius cap (nm): blunting stops here (and the imaging canvas stays bounded)
MAX_RADIUS_NM = 20.0

_DROP = {2.5: 0.2, 4.0: 0.45, 8.0: 0.6}
_PICK = {2.5: 0.2, 4.0: 0.35, 8.0: 0.5}
_ANNEAL = {2.5: 0.15, 4.0: 0.35, 8.0: 0.5}


@dataclass
class ApexState:
    """The latent state of an STM tip apex.

    Attributes
    ----------
    radius_nm : float
        Apex radius (nm); sets resolution, and blunt-tip dilation above 2 nm.
    ghost_w : float
        Weight of a second apex relative to the main one (0 = single apex).
    ghost_dy, ghost_dx : float
        Offset of the second apex (nm).
    aspect : float
        Elongation of the apex (1 = symmetric).
    angle : float
        Direction of elongation (rad).
    adsorbate : bool
        A molecule or cluster on the apex (noisy, switching images).
    instability : float
        0..1, the probability-like tendency of the apex to change during a scan.
    """

    radius_nm: float = 0.8
    ghost_w: float = 0.0
    ghost_dy: float = 0.0
    ghost_dx: float = 0.0
    aspect: float = 1.0
    angle: float = 0.0
    adsorbate: bool = False
    instability: float = 0.05

    def defects(self) -> list[str]:
        """The defects of this apex, a subset of :data:`DEFECTS` (empty for a good apex)."""
        out = []
        if self.radius_nm >= 1.5:
            out.append("blunt")
        if self.ghost_w >= 0.2:
            out.append("double")
        if self.aspect >= 2.5:
            out.append("asymmetric")
        if self.adsorbate:
            out.append("adsorbate")
        if self.instability >= 0.5:
            out.append("unstable")
        return out

    def good(self) -> bool:
        """True for an apex that images well (no defect)."""
        return not self.defects()

    def to_dict(self) -> dict:
        return {k: (bool(v) if isinstance(v, (bool, np.bool_)) else float(v)) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ApexState":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def tip_state(self) -> TipState:
        """The imaging operator (:class:`~.tips.TipState`) of this apex (mapping in the module docstring)."""
        ghosts = [[self.ghost_dy * 1e-9, self.ghost_dx * 1e-9, self.ghost_w]] if self.ghost_w > 0 else []
        return TipState(sigma=0.9e-10 * self.radius_nm, aspect=self.aspect, angle=self.angle, ghosts=ghosts,
                        radius=self.radius_nm * 1e-9 if self.radius_nm > 2 else None,
                        noise_scale=1.0 + 4.0 * self.adsorbate + 4.0 * self.instability)


def _ghost(rng: np.random.Generator, st: ApexState) -> None:
    r = float(np.exp(rng.uniform(np.log(0.8), np.log(2.5))))
    a = rng.uniform(0, 2 * np.pi)
    st.ghost_dy, st.ghost_dx = float(r * np.sin(a)), float(r * np.cos(a))
    st.ghost_w = float(rng.uniform(0.7, 1.0))


def _asym(rng: np.random.Generator, st: ApexState) -> None:
    st.aspect = float(rng.uniform(3.5, 5.0))
    st.angle = float(rng.uniform(0, np.pi))


def random_bad_apex(rng: np.random.Generator) -> ApexState:
    """A defective apex as found at the start of a conditioning episode (at least one defect).

    Each defect is present independently (blunt 0.6: radius log-uniform 2.5-8 nm; double 0.35;
    asymmetric 0.25; adsorbate 0.45; unstable 0.25: instability 0.6-0.95), redrawn until at least one is.
    """
    for _ in range(100):
        st = ApexState(radius_nm=float(np.exp(rng.uniform(np.log(0.5), np.log(1.1)))),
                       instability=float(rng.uniform(0, 0.2)))
        if rng.random() < 0.6:
            st.radius_nm = float(np.exp(rng.uniform(np.log(2.5), np.log(8.0))))
        if rng.random() < 0.35:
            _ghost(rng, st)
        if rng.random() < 0.25:
            _asym(rng, st)
        if rng.random() < 0.45:
            st.adsorbate = True
        if rng.random() < 0.25:
            st.instability = float(rng.uniform(0.6, 0.95))
        if not st.good():
            return st
    return st


def _amp(volts: float) -> float:
    a = abs(float(volts))
    return min(_DROP, key=lambda k: abs(k - a))


def apply_pulse(st: ApexState, volts: float, rng: np.random.Generator) -> ApexState:
    """A new apex after a bias pulse of ``volts`` (V); probabilities in the module docstring."""
    st = ApexState(**asdict(st))
    a = _amp(volts)
    pos = volts > 0
    if st.adsorbate:
        if rng.random() < _DROP[a] * (1.0 if pos else 0.25):
            st.adsorbate = False
    elif rng.random() < _PICK[a] * (0.1 if pos else 1.0):
        st.adsorbate = True
    if rng.random() < _ANNEAL[a]:
        st.instability *= 0.3
    if a == 8.0:
        if st.aspect > 1.0 and rng.random() < 0.25:
            st.aspect = 1.0 + abs(float(rng.normal(0, 0.1)))
        u = rng.random()
        if u < 0.15:
            st.radius_nm = min(MAX_RADIUS_NM, st.radius_nm * float(rng.uniform(1.3, 2.0)))
        elif u < 0.25:
            st.radius_nm = max(0.4, st.radius_nm * float(rng.uniform(0.5, 0.8)))
        if st.ghost_w > 0 and rng.random() < 0.1:
            st.ghost_w = 0.0
        elif st.ghost_w == 0 and rng.random() < 0.05:
            _ghost(rng, st)
    return st


def crash_probability(depth_nm: float) -> float:
    """Probability that a dip of ``depth_nm`` crashes the tip: ``0.002 exp(d / 1.2)``."""
    return float(min(1.0, 0.002 * np.exp(depth_nm / 1.2)))


def apply_dip(st: ApexState, depth_nm: float, rng: np.random.Generator) -> tuple[ApexState, bool]:
    """A new apex after a tip dip of ``depth_nm`` (nm) and whether it crashed (module docstring)."""
    st = ApexState(**asdict(st))
    d = float(depth_nm)
    if rng.random() < crash_probability(d):
        st.radius_nm = float(rng.uniform(4.0, 12.0))
        if rng.random() < 0.5:
            _ghost(rng, st)
        st.instability = 0.6
        return st, True
    if rng.random() < 1 - np.exp(-d / 1.5):
        st.radius_nm = float(max(0.35, (0.3 + 0.5 * d) * np.exp(0.45 * rng.standard_normal())))
        if rng.random() < 0.2:
            _asym(rng, st)
        else:
            st.aspect, st.angle = 1.0 + abs(float(rng.normal(0, 0.08))), 0.0
        if st.adsorbate and rng.random() < 0.25:
            st.adsorbate = False
        st.instability = float(rng.uniform(0, 0.4))
    if st.ghost_w > 0 and rng.random() < 1 - np.exp(-(d / 1.5) ** 2):
        st.ghost_w = 0.0
    if st.ghost_w == 0 and rng.random() < 0.04 + 0.05 * d:
        _ghost(rng, st)
    return st, False


def degrade(st: ApexState, rng: np.random.Generator) -> ApexState:
    """Slow degradation while scanning one image (module docstring)."""
    st = ApexState(**asdict(st))
    st.instability = min(1.0, st.instability + 0.01)
    if not st.adsorbate and rng.random() < 0.004:
        st.adsorbate = True
    if rng.random() < 0.01:
        st.radius_nm = min(MAX_RADIUS_NM, st.radius_nm * 1.05)
    return st


# ----------------------------------------------------------------------------- rendering

def scan_states(apex: ApexState, rng: np.random.Generator, size: int, pixel_m: float):
    """The tip states one scan of ``size`` lines images with ``apex``, at ``pixel_m`` metres per pixel.

    An unstable or adsorbate-carrying apex may switch mid-scan to a blunter (sometimes ghosted) state
    at a different height. Returns ``(states, switch, margin)``: the :class:`~scopenet.simulate.spm.tips.TipState`
    list (one, or two after a switch), the scan time (in lines) of the switch or None, and the margin in
    pixels the canvas needs around the frame for the widest state's reach.
    """
    p = pixel_m
    states = [apex.tip_state()]
    switch = None
    p_switch = min(0.9, 0.5 * apex.adsorbate + max(0.0, 1.5 * (apex.instability - 0.3)))
    if rng.random() < p_switch:
        other = ApexState(**asdict(apex))
        other.radius_nm = min(MAX_RADIUS_NM, other.radius_nm * float(rng.uniform(1.5, 2.5)))
        if rng.random() < 0.5:
            _ghost(rng, other)
        t2 = other.tip_state()
        t2.z_offset = float(rng.choice([-1, 1]) * rng.uniform(0.5e-10, 3e-10))
        states.append(t2)
        switch = float(rng.integers(int(0.15 * size), int(0.85 * size)) + rng.random())
    reach = 0.0
    for s in states:
        r = 3.0 * s.sigma * s.aspect / p + max([np.hypot(g[0], g[1]) / p for g in s.ghosts], default=0.0)
        if s.radius:
            r += min(float(MAX_DILATION_PX), np.sqrt(2 * s.radius * 6e-10) / p)
        reach = max(reach, r)
    return states, switch, int(np.ceil(min(reach, 2 * size))) + 4  # beyond two frames a wider margin changes nothing


def render_scan(apex: ApexState, rng: np.random.Generator, *, size: int = 64, fov_m: float = 8e-9,
                surface_seed: int = 0, p_steps: float = 0.0, adsorbate_density: float = 0.003,
                white_noise: float = 0.05, pink_noise_level: float = 0.08,
                spectrum_cache: dict | None = None) -> np.ndarray:
    """One simulated constant-current scan of H:Si(100) with ``apex``, X-flattened, float32 [size, size].

    Parameters
    ----------
    apex : ApexState
    rng : numpy Generator
        Noise and tip-switch randomness of this scan.
    size : int
        Pixels per side.
    fov_m : float
        Field of view (m).
    surface_seed : int
        Seed of the surface patch (the same seed images the same atoms).
    p_steps : float
        Probability of step edges in the patch.
    adsorbate_density : float
        Contamination (adsorbates per nm^2).
    white_noise, pink_noise_level : float
        Noise std relative to the atom apparent height (white is scaled by the apex's noise_scale).
    spectrum_cache : dict, optional
        Keeps the surface spectra by ``(surface_seed, canvas, fov, p_steps, adsorbate_density)`` so that
        a patch imaged again is not rebuilt (a speed-up for training on a pool of patches).

    Returns
    -------
    ndarray float32 [size, size]
        Heights (m) after per-line linear flattening.
    """
    p = fov_m / size
    states, switch, m = scan_states(apex, rng, size, p)
    n = sfft.next_fast_len(size + 2 * m, real=True)
    key = (int(surface_seed), n, float(fov_m), float(p_steps), float(adsorbate_density))
    if spectrum_cache is not None and key in spectrum_cache:
        spec, A = spectrum_cache[key]
    else:
        surf = hsi100(np.random.default_rng(surface_seed), (n, n), p, p_steps=p_steps,
                      adsorbate_density=adsorbate_density)
        spec = height_spectrum(surf, np.float32)
        A = surf.params["atom_height_m"]
        if spectrum_cache is not None:
            spectrum_cache[key] = (spec, A)
    zs = []
    for s in states:
        z = sfft.irfft2(spec * tip_transfer((n, n), p, s, np.float32), s=(n, n))
        if s.radius:
            z = dilate_paraboloid(z, s.radius, p)
        zs.append(z[m:m + size, m:m + size].astype(float) + s.z_offset)
    clean = zs[0]
    if switch is not None:
        later = scan_times((size, size)) >= switch
        clean = np.where(later, zs[1], zs[0])
    ns = states[0].noise_scale
    noise = white_noise * A * ns * rng.standard_normal((size, size))
    noise += pink_noise_level * A * pink_noise(rng, size * size, 1.2).reshape(size, size)
    noise += line_offsets(rng, size, 0.1 * A * ns)[:, None]
    return flatten_lines(clean + noise, 1).astype(np.float32)
