"""Rendering simulated STM images: surface -> tip states -> raster scan -> noise -> flattening.

One image (:func:`simulate_image`) and a serial batch (:func:`render_batch`). Batches over processes
live in :mod:`.stream`, the public :func:`simulate_batch` and :func:`write_dataset` in :mod:`.batch`
(above both, so that ``core`` imports neither).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import fft as sfft
from scipy import ndimage

from ...errors import InputError
from . import labels as L
from .scan import drift_positions, flatten_lines, line_offsets, pink_noise, scan_times, scars
from .surfaces import SURFACES, Surface, height_spectrum, make_surface
from .tips import MAX_DILATION_PX, TipState, dilate_paraboloid, sample_tip, tip_transfer


class SPMSimConfig(BaseModel):
    """Settings of the SPM simulator (lengths in metres, probabilities in [0, 1]).

    Noise amplitudes are relative to the surface's atom apparent height, so that the balance
    between resolved and unresolved images does not depend on the surface.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    size: int = Field(128, ge=8, le=4096, description="image side (pixels)")
    pixel_size: float | None = Field(None, gt=0, description="m per pixel; None: from fov_range")
    fov_range: tuple[float, float] = Field((4e-9, 13e-9), description="field of view range (m), log-uniform")
    surfaces: dict[str, float] = Field(
        default_factory=lambda: {"hsi100": 0.6, "au111": 0.1, "cu111": 0.1, "hopg": 0.1, "lattice": 0.1},
        description="surface kind -> relative probability")
    p_steps: float = Field(0.35, ge=0, le=1, description="probability of step edges")
    tip_sigma_range: tuple[float, float] = Field((0.3e-10, 5e-10), description="tip PSF sigma (m), log-uniform")
    p_double: float = Field(0.15, ge=0, le=1, description="probability of extra tip apices")
    p_asymmetric: float = Field(0.2, ge=0, le=1, description="probability of an asymmetric tip")
    p_blunt: float = Field(0.25, ge=0, le=1, description="probability of blunt-tip dilation")
    blunt_radius_range: tuple[float, float] = Field((0.5e-9, 10e-9), description="paraboloid radius (m)")
    p_tip_change: float = Field(0.2, ge=0, le=1, description="probability of a tip change during the scan")
    p_second_change: float = Field(0.3, ge=0, le=1, description="probability of a second change, given one")
    white_noise_range: tuple[float, float] = Field((0.01, 0.4), description="white noise std / atom height")
    pink_noise_range: tuple[float, float] = Field((0.02, 0.5), description="1/f noise std / atom height")
    p_line_noise: float = Field(0.8, ge=0, le=1)
    line_noise_range: tuple[float, float] = Field((0.05, 3.0), description="line-offset step std / atom height")
    p_scars: float = Field(0.35, ge=0, le=1)
    scars_mean: float = Field(4.0, ge=0, description="mean number of scars when present")
    feedback_lag_range: tuple[float, float] = Field((0.05, 1.5), description="feedback time constant (pixels)")
    p_drift: float = Field(0.5, ge=0, le=1)
    drift_max: float = Field(0.08, ge=0, description="max drift speed (pixels per line)")
    p_creep: float = Field(0.2, ge=0, le=1)
    creep_max: float = Field(8.0, ge=0, description="max creep amplitude (pixels)")
    flatten: Literal["linear", "mean", "none"] = Field("linear", description="per-line (X) flattening")
    normalize: Literal["minmax", "none"] = Field(
        "minmax", description="minmax: each image to [0, 1] like the Gordon & Landon PNGs; none: metres")
    quantize: int | None = Field(None, ge=2, description="number of grey levels after normalising (e.g. 255)")
    oversample: int = Field(1, ge=1, le=4, description="render at k x size and block-average")

    @field_validator("surfaces")
    @classmethod
    def _check_surfaces(cls, v):
        bad = [k for k in v if k not in SURFACES]
        if bad:
            raise ValueError(f"unknown surface(s) {bad}; choose from {SURFACES}")
        if not v or sum(v.values()) <= 0 or any(p < 0 for p in v.values()):
            raise ValueError("surface probabilities must be >= 0 with a positive sum")
        return v

    @field_validator("fov_range", "tip_sigma_range", "blunt_radius_range", "white_noise_range",
                     "pink_noise_range", "line_noise_range")
    @classmethod
    def _check_range(cls, v):
        if not (0 < v[0] <= v[1]):
            raise ValueError(f"a range must satisfy 0 < low <= high, got {v}")
        return v


@dataclass
class SPMSample:
    """One simulated image with its ground truth.

    Attributes
    ----------
    image : ndarray, float32 [H, W]
        The recorded image (flattened and normalised as configured).
    height_true : ndarray, float32 [H, W]
        The true apparent height (m) on the nominal pixel grid (no tip, drift or noise).
    labels6 : ndarray, float32 [6]
        Soft labels in :data:`CATEGORIES` order.
    good_tip : bool
        DeepSPM's good/bad tip verdict.
    params : dict
        Every generating parameter (JSON-serialisable).
    atoms : ndarray, float32 [N, 4]
        ``x, y, z (m), species`` of the features in the field of view (see ``Surface.atoms_array``).
    """

    image: np.ndarray
    height_true: np.ndarray
    labels6: np.ndarray
    good_tip: bool
    params: dict = field(default_factory=dict)
    atoms: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))


def resolve_config(config: SPMSimConfig | dict | None, overrides: dict) -> SPMSimConfig:
    """A validated config from a config/dict/None plus keyword overrides (bad values raise InputError)."""
    try:
        if config is None:
            base = {}
        elif isinstance(config, SPMSimConfig):
            base = config.model_dump()
        else:
            base = dict(config)
        base.update({k: v for k, v in overrides.items() if v is not None or k in ("pixel_size", "quantize")})
        return SPMSimConfig(**base)
    except Exception as e:  # pydantic.ValidationError, TypeError
        raise InputError(f"invalid SPM simulation settings: {e}") from e


def _loguniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _new_state(rng, cfg, pixel_size, previous: TipState | None = None) -> TipState:
    probs = {"double": cfg.p_double, "asymmetric": cfg.p_asymmetric, "blunt": cfg.p_blunt}
    if previous is None:
        return sample_tip(rng, probs, cfg.tip_sigma_range, cfg.blunt_radius_range, pixel_size)
    # a tip change: a new state that differs visibly (resolution changes by >= 1.6x or apices change)
    for _ in range(20):
        t = sample_tip(rng, {k: min(1.0, 1.5 * v) for k, v in probs.items()}, cfg.tip_sigma_range,
                       cfg.blunt_radius_range, pixel_size)
        ratio = t.sigma / previous.sigma
        if ratio > 1.6 or ratio < 1 / 1.6 or len(t.ghosts) != len(previous.ghosts):
            break
    t.z_offset = previous.z_offset + float(rng.choice([-1, 1]) * rng.uniform(0.5e-10, 4e-10))
    t.noise_scale = float(rng.choice([1.0, rng.uniform(1.5, 4.0)]))
    return t


def _flatten_canvas(z: np.ndarray, ox: int, W: int, order: int) -> np.ndarray:
    """X-flatten a canvas-sized height map as the scan does: each canvas row minus its order-0/1
    least-squares fit over the image window's columns ``[ox, ox + W)`` (the scan line), extended over
    the whole row. Drift bends scan lines slightly off canvas rows; that is ignored here.
    """
    z = np.asarray(z, float)
    win = z[:, ox:ox + W]
    fit = win - flatten_lines(win, order)                       # each scan line's fitted mean (and slope)
    mean = fit.mean(axis=1, keepdims=True)
    slope = (fit[:, -1:] - fit[:, :1]) / max(W - 1, 1)
    return z - mean - slope * (np.arange(z.shape[1], dtype=float) - ox - (W - 1) / 2)[None, :]


def simulate_image(rng: np.random.Generator | int | None = None, config: SPMSimConfig | dict | None = None,
                   **overrides) -> SPMSample:
    """Simulate one STM image, rendered line by line, with labels.

    Parameters
    ----------
    rng : numpy Generator, int or None
        Randomness; an int is used as a seed. Same seed, same config -> identical output.
    config : SPMSimConfig or dict, optional
    **overrides
        Any :class:`SPMSimConfig` field, e.g. ``size=256``, ``surfaces={"hsi100": 1}``.

    Returns
    -------
    SPMSample
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    cfg = resolve_config(config, overrides)
    k = cfg.oversample
    H = W = cfg.size * k
    # ---- field of view and surface kind
    if cfg.pixel_size is not None:
        p = cfg.pixel_size / k
    else:
        p = _loguniform(rng, *cfg.fov_range) / H
    names = list(cfg.surfaces)
    probs = np.array([cfg.surfaces[n] for n in names], float)
    kind = names[int(rng.choice(len(names), p=probs / probs.sum()))]

    # ---- tip states and when they switch
    states = [_new_state(rng, cfg, p)]
    switch_t: list[float] = []
    if rng.random() < cfg.p_tip_change:
        n_ch = 2 if rng.random() < cfg.p_second_change else 1
        lines = np.sort(rng.choice(np.arange(max(2, int(0.08 * H)), min(H - 2, int(0.92 * H)) + 1),
                                   n_ch, replace=False))
        for ln in lines:
            switch_t.append(float(ln + rng.integers(0, W) / W))
            states.append(_new_state(rng, cfg, p, states[-1]))
    if switch_t:
        state_idx = np.searchsorted(np.array(switch_t), scan_times((H, W)), side="right")
    else:
        state_idx = None                                        # one state: index 0 everywhere

    # ---- drift and creep: where the tip really is
    vel = (0.0, 0.0)
    creep = (0.0, 0.0)
    tau = 10.0
    if rng.random() < cfg.p_drift:
        vel = tuple(float(v) for v in rng.uniform(-cfg.drift_max, cfg.drift_max, 2) * k)
    if rng.random() < cfg.p_creep:
        creep = tuple(float(v) for v in rng.uniform(-cfg.creep_max, cfg.creep_max, 2) * k)
        tau = float(rng.uniform(3, 0.3 * H))
    moving = vel != (0.0, 0.0) or creep != (0.0, 0.0)
    if moving:
        yy, xx = drift_positions((H, W), vel, creep, tau)
    else:
        yy = xx = None

    # ---- canvas: image window plus margins for blur, ghosts, dilation and drift
    reach = 0.0
    for s in states:
        r = 3.0 * s.sigma * s.aspect / p
        r += max([np.hypot(g[0], g[1]) / p for g in s.ghosts], default=0.0)
        if s.radius:
            r += min(float(MAX_DILATION_PX), np.sqrt(2 * s.radius * 6e-10) / p)
        reach = max(reach, r)
    m = int(np.ceil(reach)) + 6
    y_lo, y_hi, x_lo, x_hi = 0.0, H - 1.0, 0.0, W - 1.0
    if moving:
        y_lo, y_hi, x_lo, x_hi = yy.min(), yy.max(), xx.min(), xx.max()
    oy = int(np.ceil(-y_lo)) + m
    ox = int(np.ceil(-x_lo)) + m
    Hc = sfft.next_fast_len(int(np.ceil(y_hi)) + oy + m + 1, real=True)
    Wc = sfft.next_fast_len(int(np.ceil(x_hi)) + ox + m + 1, real=True)

    surf: Surface = make_surface(kind, rng, (Hc, Wc), p, cfg.p_steps)
    spec = height_spectrum(surf, _FT)                           # complex64: float32 FFTs throughout
    A = surf.params["atom_height_m"]

    # ---- image each state on the canvas, then sample along the raster
    clean = np.empty((H, W))
    zmaps = []
    for si, s in enumerate(states):
        z = sfft.irfft2(spec * tip_transfer((Hc, Wc), p, s, _FT), s=(Hc, Wc))
        if s.radius:
            z = dilate_paraboloid(z, s.radius, p)
        zmaps.append(z)
        if state_idx is None:                                   # one state: the whole image
            if moving:
                clean = ndimage.map_coordinates(z, [yy + oy, xx + ox], order=1, mode="nearest").astype(float)
            else:
                clean = z[oy:oy + H, ox:ox + W].astype(float)
            clean += s.z_offset
            continue
        sel = state_idx == si
        if not sel.any():
            continue
        if moving:
            vals = ndimage.map_coordinates(z, [yy[sel] + oy, xx[sel] + ox], order=1, mode="nearest")
        else:
            vals = z[oy:oy + H, ox:ox + W][sel]
        clean[sel] = vals + s.z_offset

    # ---- scan noise (time-ordered, so it falls along lines)
    noise_scale = (np.array([s.noise_scale for s in states])[state_idx] if len(states) > 1
                   else states[0].noise_scale)
    white = _loguniform(rng, *cfg.white_noise_range) * A
    pink = _loguniform(rng, *cfg.pink_noise_range) * A
    alpha = float(rng.uniform(0.8, 1.6))
    noise = white * noise_scale * rng.standard_normal((H, W))
    noise += pink * pink_noise(rng, H * W, alpha).reshape(H, W)
    line_sigma = 0.0
    if rng.random() < cfg.p_line_noise:
        line_sigma = _loguniform(rng, *cfg.line_noise_range) * A
        noise += line_offsets(rng, H, line_sigma, 5 * line_sigma, 0.02)[:, None]
        noise += (line_sigma / W) * rng.standard_normal(H)[:, None] * np.arange(W)[None, :]
    tilt = rng.normal(0, 0.03, 2) * p       # sample tilt, ~2 degrees (m/pixel): removed by flattening
    noise += tilt[0] * np.arange(H)[:, None] + tilt[1] * np.arange(W)[None, :]
    scar_info: list = []
    if rng.random() < cfg.p_scars:
        smap, scar_info = scars(rng, (H, W), int(rng.poisson(cfg.scars_mean)) + 1, 2.0 * A)
        noise += smap
    # the feedback loop follows the surface with a lag: a causal exponential filter along each line
    lag = _loguniform(rng, *cfg.feedback_lag_range) * k
    raw = _feedback(clean + noise, lag)

    order = {"linear": 1, "mean": 0}.get(cfg.flatten)
    image = flatten_lines(raw, order) if order is not None else raw
    noise_flat = flatten_lines(noise - (0 if not scar_info else smap), 1)

    # ---- labels from measured feature contrast
    if state_idx is None:
        fractions = np.ones(1)
        line_state = np.zeros(H, int)
    else:
        fractions = np.bincount(state_idx.ravel(), minlength=len(states)) / state_idx.size
        line_state = state_idx[:, W // 2]
    nspec = sfft.rfft2(noise_flat.astype(_FT))
    noise_pow = (nspec.real.astype(float) ** 2 + nspec.imag.astype(float) ** 2)
    noise_pow[:, 1:-1 if W % 2 == 0 else None] *= 2            # the rfft holds half the spectrum
    noise_pow[0, 0] = 0.0
    ky2 = sfft.fftfreq(H) ** 2
    kx2 = sfft.rfftfreq(W) ** 2
    # noise std on a state's lines relative to the whole image (white noise scales with the state)
    ns_rms = float(np.sqrt(np.mean(noise_scale**2)))
    state_noise = [float(np.sqrt(((white * s.noise_scale) ** 2 + pink**2) / ((white * ns_rms) ** 2 + pink**2)))
                   for s in states]
    clean_flat = flatten_lines(clean, 1)
    spans = []
    for si in range(len(states)):
        rows_si = clean_flat[line_state == si]
        if rows_si.size == 0:
            rows_si = clean_flat
        lo, hi = _percentiles(rows_si, 5, 95)
        spans.append(float(hi - lo))
    # contrast is measured on what the recorded image shows: with X-flattening, every scan line loses
    # its mean (and slope), so dimer rows parallel to the fast-scan direction vanish from the image
    zmeas = zmaps if order is None else [_flatten_canvas(z, ox, W, order) for z in zmaps]
    vis_s = {f: [] for f in L.FEATURES}
    ready_s = {f: [] for f in L.FEATURES}
    contrasts = {f: [] for f in L.FEATURES}
    el_s = []
    for f in L.FEATURES:
        if f not in surf.sites:
            continue
        peak, mid = surf.sites[f]
        py, px = peak[:, 0] - oy, peak[:, 1] - ox
        inside = (py >= 0) & (py <= H - 1) & (px >= 0) & (px <= W - 1)
        my, mx = mid[:, 0] - oy, mid[:, 1] - ox
        inside &= (my >= 0) & (my <= H - 1) & (mx >= 0) & (mx <= W - 1)
        same = _level(surf.level, peak) == _level(surf.level, mid)
        ok = inside & same
        sp = surf.spacing[f]
        # std of the noise smoothed by a Gaussian of s_f / 4, from its power spectrum (Parseval)
        # the Gaussian's power transfer is separable: sum(P * gy gx^T) = gy^T P gx
        cg = -4 * np.pi**2 * max(0.5, 0.25 * sp / p) ** 2
        nsd_all = float(np.sqrt(max(0.0, np.exp(cg * ky2) @ noise_pow @ np.exp(cg * kx2)) / (H * W) ** 2))
        for si, _state in enumerate(states):
            lines_si = line_state == si
            use = ok & lines_si[np.clip(np.rint(py).astype(int), 0, H - 1)]
            if use.sum() < 3:
                c = np.nan
            else:
                nu = int(use.sum())
                zz = ndimage.map_coordinates(zmeas[si], np.concatenate([peak[use], mid[use]]).T, order=1)
                c = float(np.median(zz[:nu].astype(float) - zz[nu:]))
            nsd = nsd_all * state_noise[si]
            v, r = L.visibility(c, spans[si], nsd, sp, p)
            vis_s[f].append(v)
            ready_s[f].append(r)
            contrasts[f].append(c)
    orb = surf.params["orbital_sigma_m"]
    el_s = [L.elongation(s.covariance(), orb) for s in states]
    visible = {f: L.combine_states(vis_s[f], fractions) for f in L.FEATURES if vis_s[f]}
    ready = {f: L.combine_states(ready_s[f], fractions) for f in L.FEATURES if ready_s[f]}
    weights = np.minimum(1.0, fractions / 0.3)
    elong = float(max(1.0, max(e for e, w in zip(el_s, weights) if w > 0) if len(el_s) else 1.0))
    tip_changed = len(switch_t) > 0
    scar_lines = len({sc[0] for sc in scar_info}) / H
    lab = L.categories(visible, ready, elong, tip_changed, scar_lines)
    max_ghost = max([g[2] for s in states for g in s.ghosts], default=0.0)
    # ---- does the apex defect (ghost apices, elongation) show in the image? Each defective state's
    # image is compared with that of a single symmetric apex of the same width and bluntness: a double
    # tip shifted by a lattice vector, or a tip elongated along the rows, images (nearly) identically.
    art_s = []
    fine = [surf.spacing[f] for f in L.FEATURES if f in surf.sites]
    cg = -4 * np.pi**2 * max(0.5, 0.25 * min(fine) / p if fine else 0.5) ** 2
    n_fine = float(np.sqrt(max(0.0, np.exp(cg * ky2) @ noise_pow @ np.exp(cg * kx2)) / (H * W) ** 2))
    for si, s in enumerate(states):
        if not s.ghosts and s.aspect <= 1.0:
            art_s.append(0.0)
            continue
        z_ideal = sfft.irfft2(spec * tip_transfer((Hc, Wc), p, TipState(sigma=s.sigma, radius=s.radius), _FT),
                              s=(Hc, Wc))
        if s.radius:
            z_ideal = dilate_paraboloid(z_ideal, s.radius, p)
        dz = zmaps[si] - z_ideal
        # sampled where the tip really was (drift and creep move it off the canvas window)
        d = (ndimage.map_coordinates(dz, [yy + oy, xx + ox], order=1, mode="nearest") if moving
             else dz[oy:oy + H, ox:ox + W]).astype(float)
        d = flatten_lines(d, 1)
        d = d[line_state == si] if (line_state == si).any() else d
        c_art = _percentiles(np.abs(d), 0, 95)[1]
        art_s.append(L.visibility(c_art, spans[si], n_fine * state_noise[si], 10 * p, p)[1])  # readily seen
    artefact_visible = L.combine_states(art_s, fractions)
    good = L.good_tip(lab, ready, max_ghost, elong, artefact_visible)

    # ---- outputs
    height_true = sfft.irfft2(spec, s=(Hc, Wc))[oy:oy + H, ox:ox + W].astype(float)
    atoms = surf.atoms_array((oy, ox), (H, W))
    if k > 1:
        image = image.reshape(cfg.size, k, cfg.size, k).mean(axis=(1, 3))
        height_true = height_true.reshape(cfg.size, k, cfg.size, k).mean(axis=(1, 3))
    image = _normalise(image, cfg)
    switch_lines = [int(np.floor(ts)) // k for ts in switch_t]
    params = {
        "surface": kind, "size": cfg.size, "pixel_size_m": float(p * k), "field_of_view_m": float(p * H),
        "surface_params": _jsonable(surf.params),
        "tip_states": [s.to_dict() for s in states],
        "tip_change_lines": switch_lines, "tip_change_times": [float(x) / k for x in switch_t],
        "state_fractions": [float(x) for x in fractions],
        "drift_px_per_line": [v / k for v in vel], "creep_px": [v / k for v in creep], "creep_tau_lines": tau / k,
        "white_noise_m": white, "pink_noise_m": pink, "pink_alpha": alpha, "feedback_lag_px": lag / k, "line_noise_m": line_sigma,
        "scars": scar_info, "flatten": cfg.flatten, "normalize": cfg.normalize,
        "raw_range_m": [float(raw.min()), float(raw.max())],
        "contrast_m": {f: [None if not np.isfinite(c) else float(c) for c in v] for f, v in contrasts.items() if v},
        "visible": visible, "ready": ready, "contrast_span_m": spans, "elongation": elong,
        "max_ghost_weight": float(max_ghost), "artefact_visible": float(artefact_visible),
    }
    return SPMSample(image.astype(np.float32), height_true.astype(np.float32), lab, good, params, atoms)


#: Precision of the canvas FFTs (surface spectrum, tip imaging). float32 keeps ~1e-7 relative
#: accuracy, far below the noise floor, and halves the FFT cost; everything after sampling the
#: canvas (noise, feedback, flattening, labels) runs in float64.
_FT = np.float32


def _feedback(z: np.ndarray, lag: float) -> np.ndarray:
    """Causal first-order low-pass along the fast-scan axis with time constant ``lag`` pixels."""
    from scipy.signal import lfilter

    a = float(np.exp(-1.0 / max(lag, 1e-6)))
    zi = z[:, :1] * a          # start each line in equilibrium with its first pixel
    out, _ = lfilter([1 - a], [1, -a], z, axis=1, zi=zi)
    return out


def _percentiles(x: np.ndarray, q_lo: float, q_hi: float) -> tuple[float, float]:
    """``np.percentile(x, [q_lo, q_hi])`` (linear interpolation) with one partition and no overhead."""
    v = np.ravel(x)
    n = v.size
    pos = [q * (n - 1) / 100.0 for q in (q_lo, q_hi)]
    ks = sorted({int(np.floor(t)) for t in pos} | {min(n - 1, int(np.floor(t)) + 1) for t in pos})
    part = np.partition(v, ks)
    out = []
    for t in pos:
        i = int(np.floor(t))
        j = min(n - 1, i + 1)
        out.append(float(part[i] + (part[j] - part[i]) * (t - i)))
    return out[0], out[1]


def _level(level, yx):
    iy = np.clip(np.rint(yx[:, 0]).astype(int), 0, level.shape[0] - 1)
    ix = np.clip(np.rint(yx[:, 1]).astype(int), 0, level.shape[1] - 1)
    return level[iy, ix]


def _normalise(image: np.ndarray, cfg: SPMSimConfig) -> np.ndarray:
    if cfg.normalize == "minmax":
        lo, hi = float(image.min()), float(image.max())
        image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
        if cfg.quantize:
            image = np.rint(image * (cfg.quantize - 1)) / (cfg.quantize - 1)
    return image


def _jsonable(d):
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, (np.integer,)):
        return int(d)
    if isinstance(d, (np.floating,)):
        return float(d)
    if isinstance(d, np.bool_):
        return bool(d)
    return d


# ----------------------------------------------------------------------------- batches and shards

def _image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` in a dataset of seed ``seed`` (independent of batching)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def render_batch(n: int, size: int = 128, seed: int = 0, config: SPMSimConfig | dict | None = None,
                 start: int = 0, **overrides) -> dict:
    """Simulate ``n`` images in this process: the serial core of
    :func:`~scopenet.simulate.spm.simulate_batch` (which adds ``workers``) and of the process pools
    in :mod:`scopenet.simulate.spm.stream`.

    Image ``i`` is rendered with :func:`_image_rng` ``(seed, start + i)``, so batches and shards agree.

    Returns
    -------
    dict
        ``images`` float32 [n, size, size], ``labels6`` float32 [n, 6], ``good`` bool [n],
        ``params`` list of n dicts.
    """
    if n < 0:
        raise InputError(f"number of images must be >= 0, got {n}")
    cfg = resolve_config(config, {**overrides, "size": size})
    images = np.empty((n, cfg.size, cfg.size), np.float32)
    labels = np.empty((n, 6), np.float32)
    good = np.empty(n, bool)
    params = []
    for i in range(n):
        s = simulate_image(_image_rng(seed, start + i), cfg)
        images[i], labels[i], good[i] = s.image, s.labels6, s.good_tip
        params.append(s.params)
    return {"images": images, "labels6": labels, "good": good, "params": params}
