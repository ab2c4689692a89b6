"""Labelling rules: from generating parameters and measured feature contrast to the six categories.

All rules are soft (values in [0, 1]) and use the logistic ``sig(x) = 1 / (1 + exp(-x))``.

**Feature contrast.** For each feature ``f`` the surface provides site pairs (``peak``, ``mid``):

- ``individual_atoms`` – an atom vs the centre of its dimer (H:Si), or an atom vs the hollow
  site (close-packed surfaces, HOPG, generic lattices);
- ``dimers`` (H:Si only) – a dimer centre vs the point half-way to the next dimer along the row;
- ``rows`` (H:Si only) – a dimer centre vs the trough between rows.

The tip-imaged, noise-free height map of each tip state, X-flattened as the recorded image is
(per scan line; see ``SPMSimConfig.flatten``), is sampled at both points of every pair that lies
inside the image, on lines scanned with that state, on one terrace; the contrast ``c_f`` is the
median difference (m). It accounts for blur, asymmetry, ghosts and dilation alike, and for
flattening: dimer rows parallel to the fast-scan direction leave no contrast in a line-flattened
image. (Until 2026-11-24 the contrast was taken before flattening, so such images were labelled
with readily visible rows that the image does not show.)

**Visibility** of feature ``f`` (spacing ``s_f``; ``span`` = 5-95 percentile range of the
flattened noise-free image on the state's lines, i.e. the grey range a viewer of the min-max
scaled image sees, so large adsorbates or steps compress the features; noise ``n_f`` = std of the
flattened noise without scars, smoothed by a Gaussian of ``s_f / 4``, computed from its power
spectrum and scaled by the state's white-noise level)::

    rel = c_f / span,  snr = c_f / n_f,  nyq = sig((s_f / pixel - 2) / 0.3)
    visible_f = sig((rel - 0.08) / 0.02) * sig((snr - 1.5) / 0.4) * nyq     # can be made out
    ready_f   = sig((rel - 0.16) / 0.03) * sig((snr - 3.0) / 0.6) * nyq     # seen at a glance

With a tip change, each quantity is ``max_s q_s * min(1, frac_s / 0.3)`` over the states ``s``
scanned over a fraction ``frac_s`` of the lines.

**Categories** (the volunteers ticked the finest feature they could see, sometimes the next one too)::

    individual_atoms = V_atoms
    dimers           = V_dimers * (1 - 0.75 V_atoms)
    rows             = V_rows   * (1 - 0.85 V_dimers)
    asymmetries      = sig((e - 1.35) / 0.08) * max_f V_f   (e: elongation of the imaged feature,
                       sqrt of the eigenvalue ratio of orbital + PSF + close-ghost covariance)
    tip_change       = 1 if the tip state switched on a line with >= 2 lines on both sides, else 0
    bad_blurry       = max(1 - max_f R_f, sig((scar_fraction - 0.08) / 0.02))

Dimers and rows exist only on H:Si(100); other surfaces only ever get ``individual_atoms``.

**DeepSPM good/bad tip** (a judgement made by people looking at images): ``good`` when there is
no tip change, some feature is readily seen (``max_f R_f >= 0.5``), ``bad_blurry < 0.5``, and the
apex has no *visible* shape defect. A shape defect is a ghost apex of weight >= 0.2 or an
elongation ``e >= 1.3``; it is visible when the image differs from that of a single symmetric apex
of the same width and bluntness: ``c_art`` = 95th percentile of ``|z_state - z_ideal|`` (flattened,
on the state's lines) scored like a feature, ``A = ready(c_art, span, noise at the finest
feature's scale)`` (readily seen, the standard the rule asks of the features), combined over states
like the other quantities; visible when ``A >= 0.5``.
(Until 2026-11 the rule ignored visibility: a double tip displaced by a lattice vector, or a tip
elongated along the dimer rows, made a "bad" label on an image indistinguishable from a good one.)

The verdict is a hard cut through soft quantities, so an image whose ``bad_blurry`` is 0.48 is "good"
and one at 0.52 "bad" although they look alike. :func:`good_tip_score` is the same rule with each cut
made soft (``sig((0.5 - x) / 0.05)``; tip change is 0 or 1 anyway): a training target that does not
punish a network for doubting such images. Its 0.5 crossing is the hard rule's boundary.
"""
from __future__ import annotations

import numpy as np

CATEGORIES = ("asymmetries", "individual_atoms", "dimers", "rows", "tip_change", "bad_blurry")
FEATURES = ("individual_atoms", "dimers", "rows")


def sig(x):
    """The logistic function, elementwise."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, float), -500, 500)))


def visibility(contrast: float, span: float, noise: float, spacing: float,
               pixel_size: float) -> tuple[float, float]:
    """(visible, readily visible) of one feature; see the module docstring.

    Parameters
    ----------
    contrast : float
        Measured median peak-mid height difference (m); NaN when no site was measurable.
    span : float
        Grey range of the noise-free image (m), see the module docstring.
    noise : float
        Noise std at the feature's scale (m).
    spacing : float
        Distance between the peak and mid sites' features (m).
    pixel_size : float
        m per pixel.
    """
    if not np.isfinite(contrast):
        return 0.0, 0.0
    rel = contrast / max(span, 1e-30)
    snr = contrast / max(noise, 1e-30)
    nyq = sig((spacing / pixel_size - 2.0) / 0.3)
    vis = sig((rel - 0.08) / 0.02) * sig((snr - 1.5) / 0.4) * nyq
    ready = sig((rel - 0.16) / 0.03) * sig((snr - 3.0) / 0.6) * nyq
    return float(vis), float(ready)


def combine_states(values, fractions) -> float:
    """Combine a per-tip-state quantity over the states of a scan: ``max_s v_s * min(1, frac_s / 0.3)``."""
    v = np.asarray(values, float)
    f = np.asarray(fractions, float)
    if v.size == 0:
        return 0.0
    return float(np.max(v * np.minimum(1.0, f / 0.3)))


def elongation(cov: np.ndarray, orbital_sigma: float) -> float:
    """Elongation of an imaged atom: sqrt of the eigenvalue ratio of ``cov + orbital_sigma^2 I``."""
    lam = np.linalg.eigvalsh(np.asarray(cov, float) + orbital_sigma**2 * np.eye(2))
    return float(np.sqrt(lam[-1] / max(lam[0], 1e-40)))


def categories(visible: dict, ready: dict, elong: float, tip_change: bool,
               scar_fraction: float = 0.0) -> np.ndarray:
    """The six soft labels in :data:`CATEGORIES` order, float32 [6].

    Parameters
    ----------
    visible, ready : dict
        ``feature -> value in [0, 1]`` (combined over tip states); missing features count as 0.
    elong : float
        Feature elongation (largest over the states that contribute).
    tip_change : bool
    scar_fraction : float
        Fraction of lines touched by scars.
    """
    va, vd, vr = (float(visible.get(f, 0.0)) for f in FEATURES)
    best_vis = max(va, vd, vr)
    best_ready = max(float(ready.get(f, 0.0)) for f in FEATURES)
    lab = np.array([
        sig((elong - 1.35) / 0.08) * best_vis,
        va,
        vd * (1 - 0.75 * va),
        vr * (1 - 0.85 * vd),
        1.0 if tip_change else 0.0,
        max(1.0 - best_ready, float(sig((scar_fraction - 0.08) / 0.02))),
    ], dtype=np.float32)
    return np.clip(lab, 0.0, 1.0)


def shape_defect(max_ghost_weight: float, elong: float) -> bool:
    """Does the apex have a shape defect (ghost apex of weight >= 0.2 or elongation >= 1.3)?"""
    return bool(max_ghost_weight >= 0.2 or elong >= 1.3)


def good_tip_score(labels6, defect, artefact_visible, width: float = 0.05) -> np.ndarray:
    """Soft DeepSPM verdict in [0, 1]: :func:`good_tip` with every cut at 0.5 made a logistic of ``width``.

    Parameters
    ----------
    labels6 : array [..., 6]
        Soft labels in :data:`CATEGORIES` order.
    defect : bool array [...]
        :func:`shape_defect` of each image.
    artefact_visible : array [...]
        How visible the apex defect is (``params["artefact_visible"]``).
    width : float
        Logistic width; near 0 the score tends to the hard verdict (ties at exactly 0.5 aside).

    Returns
    -------
    float32 array [...]: ``[tip_change < 0.5] * sig((0.5 - bad_blurry) / w) * (1 - defect * sig((A - 0.5) / w))``.
    (Tip change is 0 or 1, so its cut stays hard; ``bad_blurry < 0.5`` already implies a readily seen
    feature, so the rule's other cut is in it.)
    """
    lab = np.asarray(labels6, float)
    if lab.shape[-1] != len(CATEGORIES):
        raise ValueError(f"labels6 must have {len(CATEGORIES)} columns, got shape {lab.shape}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    d = np.asarray(defect, float)
    a = np.asarray(artefact_visible, float)
    g = (lab[..., 4] < 0.5) * sig((0.5 - lab[..., 5]) / width) \
        * (1.0 - d * sig((a - 0.5) / width))
    return g.astype(np.float32)


def good_tip(labels6: np.ndarray, ready: dict, max_ghost_weight: float, elong: float,
             artefact_visible: float = 1.0) -> bool:
    """DeepSPM's good/bad tip verdict from the labels and tip parameters (rule in the module docstring).

    ``artefact_visible`` in [0, 1] says how visible the apex's shape defect is in the image; the
    default 1 counts every ghost >= 0.2 or elongation >= 1.3 (the rule before visibility was measured).
    """
    best_ready = max(float(ready.get(f, 0.0)) for f in FEATURES)
    visible_defect = shape_defect(max_ghost_weight, elong) and artefact_visible >= 0.5
    return bool(labels6[4] < 0.5 and best_ready >= 0.5 and not visible_defect and labels6[5] < 0.5)
