"""Benchmark: atom finding on held-out simulated images, model vs classical baselines, per dose.

Images come from :func:`scopenet.simulate.em.atoms.atom_image` on the *held-out* crystals (Cu [110]
and [100], GaN [110], WSe2 [001]; the model never saw them) at spacings of 4-30 px, at peak doses of
15, 50, 200 and 1000 counts, with a seed no training run uses. For each dose and method: F1, precision
and recall with one-to-one matching within 0.3 x the smallest column spacing
(:func:`scopenet.metrics.atoms.match_atoms`; an unmatched prediction centred just outside the image, a
column cut by the border, is not counted, nor is one on a rendered column fainter than the truth's visibility
rule, such as N in GaN, which "F1 strict" counts as false), the RMS position error of the matched atoms (px), and for
the model the fraction of true positions inside the reported 1-sigma along each axis (calibrated: about
68 %). The baselines (:mod:`.baselines`) are told the true spacing; the model is told nothing. The model is
scored again with its lattice prior (``lattice_prior=True``), and both are run on a lattice with real
displacements (:func:`displacement_check`: does the prior keep them?). A last table times ``find_atoms`` on
a 2048 x 2048 image::

    scopenet bench atoms [--quick] [--json out.json] [--model atoms-default] [--per-dose 16] [--size 256]
                         [--no-prior] [--no-large]
"""
from __future__ import annotations

import time

import numpy as np

from .._bench import BenchSpec, Report, Table, timed
from .baselines import BASELINES

DOSES = (15.0, 50.0, 200.0, 1000.0)
EVAL_SEED = 424_242  # training draws its batches from seeds (0, rank, step); calibration uses CALIB_SEED
CALIB_SEED = 31_337
TOLERANCE = 0.3  # x the smallest column spacing
WEAK_SUPPORT = 0.05  # amorphous support amplitude (x a column peak) below which an image counts as "weak"
FAINT_COLUMN = 0.6  # fitted intensity (x the image's 90th percentile) below which a column counts as faint


def held_out_images(n: int, dose: float, size: int, seed: int = EVAL_SEED, split: str = "held_out",
                    support: float | None = None):
    """``n`` simulated images of the held-out crystals at one dose (``AtomImage`` list); ``support`` fixes
    the amorphous support's amplitude (default random, 0-0.15)."""
    from ...simulate.em.atoms import atom_image

    rng = np.random.default_rng([seed, int(dose)])
    return [atom_image(rng, size, split=split, dose=dose, support=support) for _ in range(n)]


def score(pred_rc: np.ndarray, ex, sigma: np.ndarray | None = None) -> dict:
    """Match ``pred_rc`` ``(k, 2)`` to the truth of ``ex``; F1, precision, recall, RMS and (with ``sigma``)
    the per-axis fraction of errors inside 1 sigma. Neither right nor wrong, and left out: an unmatched
    prediction centred outside the image (a column cut by the border, which the truth leaves out) and a
    prediction on a real column too faint to be truth (:func:`on_faint`, ``ex.params["faint_columns"]``;
    ``on_faint`` counts them, for the strict figures of :func:`pooled`)."""
    from ...metrics.atoms import fraction_within_sigma, match_atoms

    pred_rc = np.asarray(pred_rc, float).reshape(-1, 2)
    tol = TOLERANCE * ex.spacing_px
    keep = np.arange(len(pred_rc))
    faint = np.asarray(ex.params.get("faint_columns", np.zeros((0, 2))), float).reshape(-1, 2)
    n_faint = 0
    if len(faint) and len(pred_rc):
        ok = ~on_faint(pred_rc, faint, ex.atoms, tol)
        n_faint = int((~ok).sum())
        keep = keep[ok]
    m = match_atoms(ex.atoms, pred_rc[keep], tol)
    h, w = ex.image.shape
    unmatched = keep[np.setdiff1d(np.arange(len(keep)), m.pairs[:, 1])]
    outside = ((pred_rc[unmatched] < 0) | (pred_rc[unmatched] > np.array([h - 1, w - 1]))).any(1)
    if outside.any():
        keep = np.setdiff1d(keep, unmatched[outside])
        m = match_atoms(ex.atoms, pred_rc[keep], tol)
    out = {"f1": m.f1, "precision": m.precision, "recall": m.recall, "tp": m.tp, "n_true": m.n_true,
           "n_pred": m.n_pred, "sq_err": float(np.sum(m.distances_px ** 2)), "matched_true": m.pairs[:, 0],
           "matched_pred": keep[m.pairs[:, 1]], "on_faint": n_faint}
    if sigma is not None and m.tp:
        out["inside"] = fraction_within_sigma(m, ex.atoms, pred_rc[keep], np.asarray(sigma)[keep]) * 2 * m.tp
        out["axes"] = 2.0 * m.tp
    return out


def relative_intensity(amp: np.ndarray) -> np.ndarray:
    """Fitted column intensities over their 90th percentile (a faint sublattice: below :data:`FAINT_COLUMN`)."""
    amp = np.asarray(amp, float)
    return amp / max(float(np.nanquantile(amp, 0.9)), 1e-12) if len(amp) else amp


def coverage_by_intensity(df, ex, r: dict, acc: dict) -> None:
    """Add one image's 1-sigma coverage of the faint and of the bright matched columns (``df`` the model's table,
    ``r`` its :func:`score`) to ``acc``: ``{"faint": [inside, axes], "bright": [...]}`` (per axis)."""
    mp, mt = np.asarray(r["matched_pred"], int), np.asarray(r["matched_true"], int)
    if not len(mp) or "intensity" not in df:
        return
    inside = np.abs(df[["y", "x"]].to_numpy()[mp] - ex.atoms[mt]) <= df["sigma_px"].to_numpy()[mp, None]
    faint = relative_intensity(df["intensity"].to_numpy()[mp]) < FAINT_COLUMN
    for key, sel in (("faint", faint), ("bright", ~faint)):
        if not sel.any():
            continue
        a = acc.setdefault(key, [0.0, 0.0])
        a[0] += float(inside[sel].sum())
        a[1] += 2.0 * float(sel.sum())


def nearest_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each point of ``a`` ``(k, 2)`` to the nearest of ``b`` (inf where ``b`` is empty)."""
    from scipy.spatial import cKDTree

    a, b = np.asarray(a, float).reshape(-1, 2), np.asarray(b, float).reshape(-1, 2)
    if not len(b):
        return np.full(len(a), np.inf)
    if not len(a):
        return np.zeros(0)
    return cKDTree(b).query(a, 1)[0]  # not a (k, n) distance matrix: thousands of detections x columns


def on_faint(pred: np.ndarray, faint: np.ndarray, visible: np.ndarray, tol: float) -> np.ndarray:
    """Which predictions sit on a real column too faint to be truth (within ``tol`` of one of ``faint`` and
    not of a ``visible`` column): detections there are neither right nor wrong."""
    return (nearest_distance(pred, faint) < tol) & (nearest_distance(pred, visible) >= tol)


def pool_add(acc: dict, name: str, r: dict, dt: float) -> dict:
    """Add one image's :func:`score` ``r`` (and its time ``dt``, s) to the pooled counts of ``name`` in
    ``acc``; returns that method's entry (callers may keep extra counts in it)."""
    a = acc.setdefault(name, {"tp": 0, "n_true": 0, "n_pred": 0, "sq_err": 0.0, "inside": 0.0, "axes": 0.0,
                              "on_faint": 0, "time": [], "f1_images": []})
    for k in ("tp", "n_true", "n_pred", "sq_err", "inside", "axes", "on_faint"):
        a[k] += r.get(k, 0)
    a["time"].append(dt)
    a["f1_images"].append(r["f1"])
    return a


def pooled(acc: dict) -> dict:
    """``{method: {metric: value}}`` from the counts of :func:`pool_add`: F1, precision and recall over all
    atoms, RMS over all matched atoms, 1-sigma coverage, time per image, the worst image's F1, the detections
    on faint real columns (``on_faint_columns``, left out of the F1) and ``f1_strict`` / ``precision_strict``
    (those detections counted as false)."""
    out = {}
    for name, a in acc.items():
        p = a["tp"] / a["n_pred"] if a["n_pred"] else 1.0
        r = a["tp"] / a["n_true"] if a["n_true"] else 1.0
        n_strict = a["n_pred"] + a.get("on_faint", 0)
        ps = a["tp"] / n_strict if n_strict else 1.0
        out[name] = {"f1": 2 * p * r / (p + r) if p + r else 0.0, "precision": p, "recall": r,
                     "f1_strict": 2 * ps * r / (ps + r) if ps + r else 0.0, "precision_strict": ps,
                     "on_faint_columns": int(a.get("on_faint", 0)),
                     "rms_px": float(np.sqrt(a["sq_err"] / a["tp"])) if a["tp"] else float("nan"),
                     "inside_1sigma": a["inside"] / a["axes"] if a["axes"] else float("nan"),
                     "s_per_image": float(np.mean(a["time"])), "n_atoms": a["n_true"],
                     "f1_min_image": float(np.min(a["f1_images"]))}
    return out


def evaluate(model, images, methods: dict | None = None) -> dict:
    """Scores of the model and the baselines over ``images``: ``{method: {metric: value}}`` (F1 etc.
    pooled over the images' atoms, RMS over all matched atoms, time per image)."""
    methods = dict(BASELINES) if methods is None else methods
    acc: dict = {}

    def add(name, r, dt):
        pool_add(acc, name, r, dt)

    parts: dict = {}  # the model's squared errors split by the support's strength, and the fit floor
    cover: dict = {}  # the model's 1-sigma coverage split by the support's strength: [inside, axes]

    def part(key, sq, n):
        a = parts.setdefault(key, [0.0, 0])
        a[0] += sq
        a[1] += n

    for ex in images:
        if model is not None:
            df, dt = timed(model.predict, ex.image)
            rc = df[["y", "x"]].to_numpy() if len(df) else np.zeros((0, 2))
            r = score(rc, ex, df["sigma_px"].to_numpy())
            add("AtomFinder", r, dt)
            weak = ex.params.get("support", 0.0) < WEAK_SUPPORT
            part("weak" if weak else "strong", r["sq_err"], r["tp"])
            c = cover.setdefault("weak" if weak else "strong", [0.0, 0.0])
            c[0] += r.get("inside", 0.0)
            c[1] += r.get("axes", 0.0)
            coverage_by_intensity(df, ex, r, cover)
            clean = clean_fit(ex)
            sq, n = fit_floor(ex, r["matched_true"], clean)
            part("floor", sq, n)
            amp = visible_amplitudes(df["intensity"].to_numpy()[r["matched_pred"]] if len(df) else np.zeros(0))
            part("bound", float(np.sum(1.0 / (np.pi * np.maximum(amp, 1e-9)))), len(amp))
            part("floor_weak" if weak else "floor_strong", sq, n)
            part("noise_bound", *noise_bound(ex, r["matched_true"], clean))
        for name, fn in methods.items():
            rc, dt = timed(fn, ex.image, spacing_px=ex.spacing_px)
            add(name, score(rc, ex), dt)
    out = pooled(acc)
    if "AtomFinder" in out:
        for key, (sq, n) in parts.items():
            out["AtomFinder"][f"rms_px_{key}"] = float(np.sqrt(sq / n)) if n else float("nan")
            out["AtomFinder"][f"n_{key}"] = int(n)
        for key, (inside, axes) in cover.items():
            out["AtomFinder"][f"inside_1sigma_{key}"] = inside / axes if axes else float("nan")
    return out


def poisson_bound_note() -> str:
    """What the ``bound`` figures are."""
    return ("Poisson bound: the 2-D Cramer-Rao RMS of each matched column alone, sqrt(2 / (2 pi A)) px for a "
            "fitted peak of A counts (at least 0.2 of the brightest, as the truth's visibility rule has it) on no "
            "background (a lower bound; the images' background raises it)")


def clean_fit(ex) -> dict | None:
    """The Gaussian refinement run on the *noise-free* image of ``ex``, started at the true positions (what
    :func:`fit_floor` and :func:`noise_bound` both read); None with fewer than two atoms."""
    from .postprocess import default_radius, refine_gaussian

    if len(ex.atoms) < 2:
        return None
    return refine_gaussian(ex.clean, ex.atoms, default_radius(ex.atoms), com_start=False)


def visible_amplitudes(amp: np.ndarray) -> np.ndarray:
    """``amp`` raised to at least 0.2 of its 90th percentile: a true column has at least 0.2 of the brightest
    columns' contrast (the truth's visibility rule), so a fit that gives one next to nothing (one column of a
    dumbbell) does not make a bound on it huge."""
    amp = np.nan_to_num(np.asarray(amp, float))
    return np.maximum(amp, 0.2 * float(np.percentile(amp, 90))) if len(amp) else amp


def fit_floor(ex, which: np.ndarray | None = None, fit: dict | None = None) -> tuple[float, int]:
    """The position error the noise does not cause: the Gaussian refinement run on the *noise-free* image,
    started at the true positions (what is left is the amorphous support, line jitter and unresolved faint
    columns; :func:`clean_fit`, or ``fit`` when given). Returns the summed squared error (px^2) over the true
    atoms ``which`` (default all) and their number."""
    which = np.arange(len(ex.atoms)) if which is None else np.asarray(which, int)
    if len(ex.atoms) < 2 or len(which) == 0:
        return 0.0, 0
    fit = clean_fit(ex) if fit is None else fit
    err = (fit["positions"] - ex.atoms)[which]
    return float(np.sum(err ** 2)), int(len(which))


NOISE_BOUND_NOTE = ("noise bound: the 2-D Cramer-Rao RMS of each matched column's position for Poisson noise about the "
                    "noise-free image (background, support and neighbours included; the column's shape known), a lower "
                    "bound for any estimator that uses no lattice prior")


def noise_bound(ex, which: np.ndarray | None = None, fit: dict | None = None) -> tuple[float, int]:
    """The position error the shot noise alone forces on any unbiased estimator: per true atom the 2-D
    Cramer-Rao bound of its position for Poisson noise about the noise-free image ``ex.clean`` (the image's
    own background, support and neighbours included), the column's shape known (the Gaussian fitted to the
    noise-free image, :func:`clean_fit` or ``fit``) and only its position unknown, so a lower bound. Returns the
    summed squared bound (px^2) over the true atoms ``which`` (default all) and their number."""
    which = np.arange(len(ex.atoms)) if which is None else np.asarray(which, int)
    if len(ex.atoms) < 2 or len(which) == 0:
        return 0.0, 0
    return float(np.sum(noise_bounds(ex, fit)[which])), int(len(which))


def noise_bounds(ex, fit: dict | None = None) -> np.ndarray:
    """Per true atom of ``ex`` the squared 2-D bound of :func:`noise_bound`, px^2."""
    fit = clean_fit(ex) if fit is None else fit
    mu = np.maximum(np.asarray(ex.clean, np.float64), 1e-6)
    h, w = mu.shape
    out = np.zeros(len(ex.atoms))
    for j, ((y0, x0), a, s) in enumerate(zip(ex.atoms, visible_amplitudes(fit["amplitude"]), fit["width"])):
        if not (a > 0 and s > 0):
            a, s = float(np.max(ex.clean)), float(ex.sigma_px)
        r = int(np.ceil(4 * s)) + 1
        ys = np.arange(max(0, int(y0) - r), min(h, int(y0) + r + 2))
        xs = np.arange(max(0, int(x0) - r), min(w, int(x0) + r + 2))
        yy, xx = np.meshgrid(ys - y0, xs - x0, indexing="ij")
        own = a * np.exp(-(yy ** 2 + xx ** 2) / (2 * s * s))
        g = own / (s * s)
        m = np.maximum(mu[np.ix_(ys, xs)], own)  # the expectation holds at least the column itself
        iy, ix = float(np.sum((g * yy) ** 2 / m)), float(np.sum((g * xx) ** 2 / m))
        out[j] = (1.0 / iy if iy > 0 else np.inf) + (1.0 / ix if ix > 0 else np.inf)
    return out


def training_sets(model, per_dose: int, size: int = 256, seed: int = CALIB_SEED) -> list:
    """Images of the *training* crystals to choose settings on: ``per_dose`` per bench dose, once without and once
    with the detector model, each with the model's heatmap (computed once): ``[(dose, detector, AtomImage, heat)]``."""
    from ...simulate.em.atoms import atom_image

    out = []
    for dose in DOSES:
        for detector in (False, True):
            rng = np.random.default_rng([seed, int(dose), int(detector)])
            for _ in range(per_dose):
                ex = atom_image(rng, size, split="train", dose=dose, detector=detector)
                out.append((dose, detector, ex, model.heatmap(ex.image)))
    return out


def settings_f1(model, sets: list, by_detector: bool = False) -> dict:
    """Pooled F1 of ``model``'s current settings on :func:`training_sets` (scored as :func:`score` scores), per dose
    (``"15"``...), with ``by_detector`` per ``"plain"`` / ``"detector"``, and over all (``"all"``)."""
    acc: dict = {}
    for dose, detector, ex, heat in sets:
        r = score(model.locate(ex.image, heat=heat)[["y", "x"]].to_numpy(), ex)
        keys = [f"{dose:g}"] + (["detector" if detector else "plain"] if by_detector else []) + ["all"]
        for key in keys:
            v = acc.setdefault(key, [0, 0, 0])
            v[0], v[1], v[2] = v[0] + r["tp"], v[1] + r["n_pred"], v[2] + r["n_true"]
    return {k: 2 * v[0] / (v[1] + v[2]) for k, v in acc.items()}


def calibrate(stem, n: int = 24, size: int = 192, seed: int = CALIB_SEED, save: bool = True,
              choose_threshold: bool = True, faint: float | None = None) -> dict:
    """Choose ``threshold`` (best F1; kept with ``choose_threshold=False``), ``sigma_scale``,
    ``background_gain`` and ``mismatch_fraction`` (68.3 % of per-axis errors inside 1 sigma in each third of
    the doses and, with ``faint`` (e.g. :data:`FAINT_COLUMN`), separately for the columns fainter than ``faint`` x
    their image's 90th percentile of intensity and the brighter ones, cells of at least 30 atoms; tried for
    issue #21, not used for the shipped factors: ``benchmarks/results/atoms.md``, seventh round; on the atoms
    fitted with the usual window), then ``sigma_scale_small``,
    ``background_gain_small`` and ``mismatch_fraction_small`` (the same on the atoms fitted with the adaptive
    small window), then ``prior_sigma_scale`` (68.3 % inside the combined sigma of the atoms the lattice
    prior moved) of a saved model on simulated images of the *training* crystals (never the benchmark's
    held-out ones) and store them in its config (the model files are rewritten when ``save``)."""
    from ...metrics.atoms import match_atoms
    from ...simulate.em.atoms import DOSE_RANGE, atom_image
    from .model import AtomFinder

    est = AtomFinder.load(stem)
    rng = np.random.default_rng(seed)
    lo, hi = np.log(DOSE_RANGE[0]), np.log(DOSE_RANGE[1])
    exs = [atom_image(rng, size, split="train", dose=float(np.exp(rng.uniform(lo, hi)))) for _ in range(n)]
    heats = [est.heatmap(ex.image) for ex in exs]
    best = (float("nan"), est.config.threshold)
    for t in (0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7) if choose_threshold else ():
        tp = npred = ntrue = 0
        for ex, h in zip(exs, heats):
            pk, _, _ = est.peaks(h, t)
            m = match_atoms(ex.atoms, pk, TOLERANCE * ex.spacing_px)
            tp, npred, ntrue = tp + m.tp, npred + m.n_pred, ntrue + m.n_true
        p, r = tp / max(npred, 1), tp / max(ntrue, 1)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if not f1 <= best[0]:
            best = (f1, t)
    est.config.threshold = best[1]
    est.config.sigma_scale = 1.0
    est.config.background_gain = 1.0
    est.config.background_gain_small = None
    est.config.sigma_scale_small = None
    est.config.mismatch_fraction = 0.0
    est.config.mismatch_fraction_small = None
    est.config.lattice_prior = False
    est.config.prior_sigma_scale = 1.0
    est.config.sigma_floor_px = 0.0
    err, noise, bg, dose, small, width, rel = [], [], [], [], [], [], []
    for ex, h in zip(exs, heats):
        df = est.locate(ex.image, heat=h)
        rc = df[["y", "x"]].to_numpy()
        m = match_atoms(ex.atoms, rc, TOLERANCE * ex.spacing_px)
        if m.tp:
            err.append(np.abs(ex.atoms[m.pairs[:, 0]] - rc[m.pairs[:, 1]]))
            noise.append(df["sigma_noise_px"].to_numpy()[m.pairs[:, 1]])
            bg.append(df["sigma_background_px"].to_numpy()[m.pairs[:, 1]])
            dose.append(np.full(m.tp, ex.dose))
            small.append(np.full(m.tp, df.attrs.get("fit_window_widths", 2.0) < 2.0))
            width.append(df["width_px"].to_numpy()[m.pairs[:, 1]])
            rel.append(relative_intensity(df["intensity"].to_numpy()[m.pairs[:, 1]]))
    err, noise, bg, dose, small, width, rel = (np.concatenate(v) for v in (err, noise, bg, dose, small, width, rel))
    good = np.isfinite(noise) & np.isfinite(bg)
    err, noise, bg, dose, small, width, rel = (v[good] for v in (err, noise, bg, dose, small, width, rel))

    def coverage_loss(sel, scales, gains, fractions):
        """The (scale, gain, mismatch fraction) of least loss: 68.3 % of per-axis errors inside 1 sigma in
        each third of the doses of the atoms ``sel`` (the noise term dominates at low dose, the background's
        and the model's at high dose)."""
        e, nz, b, d, wd = err[sel], noise[sel], bg[sel], dose[sel], width[sel]
        bins = np.digitize(d, np.quantile(d, [1 / 3, 2 / 3]))
        if faint is not None:  # and faint / bright columns apart (cells of at least 30 atoms)
            bins = bins + 3 * (rel[sel] < faint)
            n_in = np.bincount(bins, minlength=6)
            bins = np.where(n_in[bins] >= 30, bins, bins % 3)
        best_fit = (np.inf, 1.0, 1.0, 0.0)
        for fr in fractions:
            for sc in scales:
                base = (sc * nz) ** 2 + (fr * wd) ** 2
                for g in gains:
                    inside = (e <= np.sqrt(base + (g * b) ** 2)[:, None]).mean(1)
                    loss = float(np.mean([(inside[bins == k].mean() - 0.6827) ** 2 for k in np.unique(bins)]))
                    if loss < best_fit[0] - 1e-12:
                        best_fit = (loss, float(sc), float(g), float(fr))
        return best_fit

    # the noise scale and the gain of the usual window (the noisier images, where the noise term dominates);
    # for the small window (little noise) the gain and the model-mismatch fraction, the noise scale kept
    # (fitting all three there trades the noise term for the mismatch term)
    wide = ~small if (~small).sum() >= 50 else np.ones(len(small), bool)
    best_loss, scale, gain, frac = coverage_loss(wide, np.linspace(0.5, 3.0, 51), np.linspace(0.0, 5.0, 51), [0.0])
    scale_small, gain_small, frac_small, loss_small = None, None, None, float("nan")
    if small.sum() >= 50:
        loss_small, scale_small, gain_small, frac_small = coverage_loss(small, [scale], np.linspace(0.0, 5.0, 51),
                                                                        np.linspace(0.0, 0.08, 17))
    est.config.sigma_scale = scale
    est.config.background_gain = gain
    est.config.mismatch_fraction = frac
    est.config.sigma_scale_small = scale_small
    est.config.background_gain_small = gain_small
    est.config.mismatch_fraction_small = frac_small
    est.config.sigma_floor_px = 0.005
    # the lattice prior's combined sigma: one factor, 68.3 % of the moved atoms' per-axis errors inside it
    est.config.lattice_prior = True
    ratio = []
    for ex, h in zip(exs, heats):
        df = est.locate(ex.image, heat=h)
        rc = df[["y", "x"]].to_numpy()
        m = match_atoms(ex.atoms, rc, TOLERANCE * ex.spacing_px)
        moved = df["prior_weight"].to_numpy()[m.pairs[:, 1]] < 1
        e = np.abs(ex.atoms[m.pairs[:, 0]] - rc[m.pairs[:, 1]])[moved]
        ratio.append((e / df["sigma_px"].to_numpy()[m.pairs[:, 1]][moved, None]).ravel())
    ratio = np.concatenate(ratio) if ratio else np.zeros(0)
    ratio = ratio[np.isfinite(ratio)]
    prior_scale = float(np.round(np.quantile(ratio, 0.6827), 2)) if len(ratio) >= 50 else 1.0
    est.config.lattice_prior = False
    est.config.prior_sigma_scale = max(prior_scale, 0.01)
    res = {"threshold": best[1], "f1_train_setting": best[0], "sigma_scale": scale, "background_gain": gain,
           "mismatch_fraction": frac, "sigma_scale_small": scale_small, "background_gain_small": gain_small,
           "mismatch_fraction_small": frac_small, "prior_sigma_scale": est.config.prior_sigma_scale,
           "coverage_rms_deviation": float(np.sqrt(best_loss)),
           "coverage_rms_deviation_small": float(np.sqrt(loss_small)), "atoms_small_window": int(small.sum()),
           "images": n, "size": size, "seed": seed, "faint": faint}
    if save:
        est.update_card(notes={"calibration": res})
        est.save(stem, overwrite=True)
    return res


def displacement_check(model, dose: float = 100.0, size: int = 256, spacing_px: float = 10.0, shift_px: float = 0.3,
                       strain: float = 0.03, repeats: int = 4, seed: int = EVAL_SEED) -> dict:
    """Whether real displacements survive ``model`` (its lattice prior above all): a square lattice (peak 1)
    with a second sublattice at the cell centres (peak 0.5), the second shifted by ``shift_px`` along x
    inside a central square half the image's side (a polar domain), the whole under a strain gradient
    (``exx`` from 0 to ``strain`` across the image), one column of the first sublattice displaced by 1 px
    along y; Gaussian columns of 0.15 x the spacing on a flat background of 0.05, Poisson noise at ``dose``
    counts peak. Returns the mean x error (px) of the shifted columns inside the domain (more than 1.5
    spacings from its edge) and at its edge, of the columns outside it, along the strain gradient (the
    largest |mean| of four bands), the y error of the displaced column, and the RMS and inside-1-sigma
    fraction of all matched columns, averaged over ``repeats`` noise draws."""
    from ...metrics.atoms import match_atoms
    from ...simulate.em.lattice import render_gaussians

    rng = np.random.default_rng([seed, 7])
    a = float(spacing_px)
    g = np.arange(-1, size / a + 1) * a
    yy, xx = np.meshgrid(g, g, indexing="ij")
    p0 = np.stack([yy.ravel(), xx.ravel()], 1) + a / 3
    p = np.concatenate([p0, p0 + a / 2])
    cls = np.r_[np.zeros(len(p0), int), np.ones(len(p0), int)]
    truth = p.copy()
    truth[:, 1] += 0.5 * strain * p[:, 1] ** 2 / size
    d_edge = (size / 4 - np.abs(p - size / 2)).min(1)
    domain = (cls == 1) & (d_edge > 0)
    truth[domain, 1] += shift_px
    single = int(np.argmin(np.where(cls == 0, np.hypot(*(p - [size / 4, size / 4]).T), np.inf)))
    truth[single, 0] += 1.0
    inside = ((truth >= 0) & (truth <= size - 1)).all(1)
    clean = dose * (render_gaussians((size, size), truth[inside], np.where(cls[inside] == 0, 1.0, 0.5), 0.15 * a) + 0.05)
    errs, inside_sigma, axes, sq, n = [], 0.0, 0, 0.0, 0
    tsel = np.flatnonzero(inside)
    for _ in range(repeats):
        img = rng.poisson(clean).astype(np.float32)
        df = model.predict(img)
        rc = df[["y", "x"]].to_numpy()
        m = match_atoms(truth[tsel], rc, TOLERANCE * a / np.sqrt(2))
        e = np.full((len(truth), 2), np.nan)
        e[tsel[m.pairs[:, 0]]] = rc[m.pairs[:, 1]] - truth[tsel[m.pairs[:, 0]]]
        errs.append(e)
        s = df["sigma_px"].to_numpy()[m.pairs[:, 1]]
        inside_sigma += float((np.abs(e[tsel[m.pairs[:, 0]]]) <= s[:, None]).sum())
        axes += 2 * m.tp
        sq += float(np.nansum(e ** 2))
        n += m.tp
    stack = np.stack(errs)
    seen = np.isfinite(stack[..., 0]).any(0)
    e = np.full((len(truth), 2), np.nan)
    e[seen] = np.nanmean(stack[:, seen], 0)  # per-column mean error over the noise draws
    interior, edge = domain & (d_edge > 1.5 * a), domain & (d_edge <= 1.5 * a)
    away = ~domain & (np.abs(d_edge) > 1.5 * a) & (cls == 0) & (np.arange(len(p)) != single)
    bands = [np.nanmean(e[away & (p[:, 1] >= lo) & (p[:, 1] < lo + size / 4), 1]) for lo in np.arange(4) * size / 4]
    return {"domain_interior_x": float(np.nanmean(e[interior, 1])), "domain_edge_x": float(np.nanmean(e[edge, 1])),
            "outside_x": float(np.nanmean(e[~domain & (cls == 1), 1])),
            "strain_band_max_abs_x": float(np.nanmax(np.abs(bands))), "displaced_column_y": float(e[single, 0]),
            "rms_px": float(np.sqrt(sq / max(n, 1))), "inside_1sigma": inside_sigma / max(axes, 1),
            "shift_px": shift_px, "dose": dose, "spacing_px": a, "repeats": repeats}


def time_large(model, size: int = 2048, spacing_px: float = 10.0, dose: float = 200.0, seed: int = EVAL_SEED) -> dict:
    """Seconds for ``find_atoms`` on one ``size`` x ``size`` held-out image (the call as a user makes it)."""
    import torch

    from ...simulate.em.atoms import atom_image
    from .model import find_atoms

    ex = atom_image(np.random.default_rng(seed), size, split="held_out", spacing_px=spacing_px, dose=dose,
                    region="full")
    import os

    out = {"size": size, "atoms_true": len(ex.atoms), "threads": torch.get_num_threads(),
           "structure": ex.params["structure"], "spacing_px": spacing_px, "dose": dose, "modes": {},
           "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    find_atoms(ex.image[:256, :256], model=model)  # warm-up: the model loaded, the thread pools started
    for refine in ("gaussian", "heatmap"):
        t0, c0 = time.perf_counter(), time.process_time()
        df = find_atoms(ex.image, model=model, refine=refine)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        r = score(df[["y", "x"]].to_numpy(), ex)
        rms = float(np.sqrt(r["sq_err"] / r["tp"])) if r["tp"] else float("nan")
        out["modes"][refine] = {"seconds": dt, "cpu_seconds": cpu, "atoms_found": len(df), "f1": r["f1"],
                                "rms_px": rms}
    return out


def _options(p) -> None:
    p.add_argument("--model", default="default", help="installed model name or path stem (default atoms-default)")
    p.add_argument("--per-dose", type=int, default=None, help="images per dose (default 16; --quick 4)")
    p.add_argument("--size", type=int, default=None, help="image side, px (default 256; --quick 128)")
    p.add_argument("--no-large", action="store_true", help="skip the 2048 x 2048 timing")
    p.add_argument("--no-prior", action="store_true", help="skip the rows with the lattice prior")


def run(a, report: Report) -> int:
    from .model import AtomFinder

    n = a.per_dose or (4 if a.quick else 16)
    size = a.size or (128 if a.quick else 256)
    seed = EVAL_SEED if a.seed is None else a.seed
    model = AtomFinder.pretrained(a.model)
    report.line(f"atom finding, held-out crystals, {n} images of {size} px per dose, seed {seed}; "
                f"model {model.name}; match within {TOLERANCE} x spacing")
    results: dict = {"per_dose": {}, "model": model.name, "images_per_dose": n, "size": size, "seed": seed,
                     "lattice_prior": {}}
    prior_model = None if a.no_prior else AtomFinder.pretrained(a.model, lattice_prior=True)
    for dose in DOSES:
        images = held_out_images(n, dose, size, seed)
        res = evaluate(model, images)
        results["per_dose"][str(int(dose))] = res
        if prior_model is not None:
            results["lattice_prior"][str(int(dose))] = evaluate(prior_model, images, methods={})["AtomFinder"]
        t = Table(["method", "F1", "precision", "recall", "RMS px", "inside 1 sigma", "worst image F1", "s/image",
                   "on faint columns", "F1 strict"],
                  title=f"peak dose {dose:g} counts ({res['AtomFinder']['n_atoms']} atoms)")
        for name, r in res.items():
            t.add(name, r["f1"], r["precision"], r["recall"], r["rms_px"], r["inside_1sigma"], r["f1_min_image"],
                  r["s_per_image"], r["on_faint_columns"], r["f1_strict"])
        t.notes.append("on faint columns: detections on rendered columns fainter than the truth's visibility rule (N in "
                       "GaN, O in oxides), neither right nor wrong as in `bench atoms-abtem`; F1 strict counts them as "
                       "false")
        best_base = max(v["f1"] for k, v in res.items() if k != "AtomFinder")
        t.notes.append(f"AtomFinder F1 {res['AtomFinder']['f1']:.4f} vs best baseline {best_base:.4f} "
                       f"({'above' if res['AtomFinder']['f1'] > best_base else 'NOT above'} every baseline)")
        report.table(t)
    t = Table(["peak dose", "RMS px", f"RMS, support < {WEAK_SUPPORT:g}", f"RMS, support >= {WEAK_SUPPORT:g}",
               "fit floor", f"floor, support >= {WEAK_SUPPORT:g}", "Poisson bound", "noise bound", "inside 1 sigma",
               "inside 1 sigma, weak / strong support", "inside 1 sigma, faint / bright columns"],
              title="AtomFinder position error by source (atoms: weak / strong support)")
    for dose, res in results["per_dose"].items():
        m = res["AtomFinder"]
        t.add(dose, m["rms_px"], f"{m.get('rms_px_weak', float('nan')):.3f} ({m.get('n_weak', 0)})",
              f"{m.get('rms_px_strong', float('nan')):.3f} ({m.get('n_strong', 0)})", m.get("rms_px_floor", float("nan")),
              m.get("rms_px_floor_strong", float("nan")), m.get("rms_px_bound", float("nan")),
              m.get("rms_px_noise_bound", float("nan")), m["inside_1sigma"],
              f"{m.get('inside_1sigma_weak', float('nan')):.3f} / {m.get('inside_1sigma_strong', float('nan')):.3f}",
              f"{m.get('inside_1sigma_faint', float('nan')):.3f} / {m.get('inside_1sigma_bright', float('nan')):.3f}")
    t.notes.append(f"faint columns: fitted intensity below {FAINT_COLUMN} x the image's 90th percentile (a faint "
                   "sublattice, dopants); the uncertainty should cover them as well as the bright ones")
    t.notes.append("fit floor: the Gaussian refinement on the noise-free image started at the true positions (same "
                   "atoms as the RMS), i.e. the error of the simulated amorphous support (a random field with the "
                   "columns' own width), line jitter and faint unresolved columns, which no fit on the image removes")
    t.notes.append(poisson_bound_note())
    t.notes.append(NOISE_BOUND_NOTE)
    report.table(t)
    if prior_model is not None:
        t = Table(["peak dose", "F1", "RMS px", "inside 1 sigma", "RMS px without", "inside 1 sigma without"],
                  title="AtomFinder with the lattice prior (lattice_prior=True; same images)")
        for dose, m in results["lattice_prior"].items():
            m0 = results["per_dose"][dose]["AtomFinder"]
            t.add(dose, m["f1"], m["rms_px"], m["inside_1sigma"], m0["rms_px"], m0["inside_1sigma"])
        report.table(t)
        t = Table(["lattice prior", "domain interior x", "domain edge x", "outside x", "strain bands max |x|",
                   "displaced column y", "RMS px", "inside 1 sigma"],
                  title="real displacements: mean error, px, of a 0.3 px shift of one sublattice in a domain, a 0-3 % "
                        "strain gradient and a column displaced 1 px (100 counts, 10 px spacing, 4 noise draws)")
        results["displacements"] = {}
        for name, est in (("off", model), ("on", prior_model)):
            d = displacement_check(est)
            results["displacements"][name] = d
            t.add(name, d["domain_interior_x"], d["domain_edge_x"], d["outside_x"], d["strain_band_max_abs_x"],
                  d["displaced_column_y"], d["rms_px"], d["inside_1sigma"])
        t.notes.append("0 = the displacement kept; -0.3 in the domain would be the shift erased, -1 the displaced column")
        report.table(t)
    t = Table(["peak dose", "F1", "RMS px", "fit floor", "Poisson bound", "noise bound", "inside 1 sigma", "atoms"],
              title="control: the same held-out crystals without amorphous support (AtomFinder only)")
    results["no_support"] = {}
    for dose in DOSES:
        m = evaluate(model, held_out_images(n, dose, size, seed + 1, support=0.0), methods={})["AtomFinder"]
        results["no_support"][str(int(dose))] = m
        t.add(int(dose), m["f1"], m["rms_px"], m.get("rms_px_floor", float("nan")), m.get("rms_px_bound", float("nan")),
              m.get("rms_px_noise_bound", float("nan")), m["inside_1sigma"], m["n_atoms"])
    report.table(t)
    if not a.no_large:
        big = time_large(model)
        results["large"] = big
        t = Table(["refine", "atoms (true)", "atoms found", "F1", "RMS px", "seconds", "CPU seconds", "torch threads"],
                  title=f"find_atoms on one {big['size']} x {big['size']} image ({big['structure']}, "
                        f"{big['spacing_px']:g} px spacing, {big['dose']:g} counts; CPU)")
        for refine, m in big["modes"].items():
            t.add(refine, big["atoms_true"], m["atoms_found"], m["f1"], m["rms_px"], m["seconds"], m["cpu_seconds"],
                  big["threads"])
        t.notes.append(f"load average {big['load_average']}; CPU seconds: all threads of this process together "
                       "(the wall time on an otherwise idle machine lies between CPU seconds / threads and CPU seconds)")
        report.table(t)
    report.data.update(results)
    return 0


SPEC = BenchSpec("atoms", __doc__, run, _options, seed=None,
                 quick="4 images of 128 px per dose (and the 2048 px timing)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench atoms``."""
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
