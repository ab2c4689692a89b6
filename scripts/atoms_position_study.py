"""Where the atom finder's position error comes from, on simulated images of the *training* crystals.

The study behind issue #21's second round (``benchmarks/results/atoms.md``): the shipped ``atoms-default``
(or settings given as JSON) on ``held_out_images(n, dose, 256, seed, split="train")`` at 15, 50, 200 and
1000 counts, never the benchmark's held-out crystals or seed. Prints per dose the RMS (2-D, px), the
fraction inside 1 sigma, the fit floor (the refinement on the noise-free image started at the truth) and
the error split by category: distance to the border, true sublattice, dopants, faint peaks, support
strength, column width, and the share of the squared error that is a common bias per image and class::

    OMP_NUM_THREADS=1 python scripts/atoms_position_study.py [--seed 31337] [--per-dose 16]
        [--settings '{"windows": null}'] [--compare '{"lattice_prior": true}'] [--support 0]

``--compare`` runs the same images a second time with other settings and prints both RMS and coverages;
``--abtem`` compares the settings before issue #21's second round, the shipped ones and the lattice prior on the
images of ``scopenet bench atoms-abtem`` (a second simulator; needs abTEM); ``--timing --threads 2`` times the
bench's 2048 px image with those three settings in turn (twice).
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def collect(est, n: int, seed: int, doses=(15.0, 50.0, 200.0, 1000.0), floor: bool = True,
            support: float | None = None) -> dict:
    """Per matched atom: dose, image, errors (y, x), fit-floor errors, sigma and the categories."""
    from scopenet.metrics.atoms import match_atoms
    from scopenet.tasks.atoms.bench import TOLERANCE, held_out_images
    from scopenet.tasks.atoms.postprocess import default_radius, refine_gaussian

    rows: dict[str, list] = {}

    def add(**kw):
        for k, v in kw.items():
            rows.setdefault(k, []).append(np.asarray(v, float).reshape(-1))

    for dose in doses:
        for i, ex in enumerate(held_out_images(n, dose, 256, seed=seed, split="train", support=support)):
            df = est.predict(ex.image)
            rc = df[["y", "x"]].to_numpy()
            m = match_atoms(ex.atoms, rc, TOLERANCE * ex.spacing_px)
            ti, pi = m.pairs[:, 0], m.pairs[:, 1]
            t = ex.atoms[ti]
            fl = refine_gaussian(ex.clean, ex.atoms, default_radius(ex.atoms), com_start=False)["positions"][ti] \
                if floor else np.full_like(t, np.nan)
            h, w = ex.image.shape
            k = len(ti)
            add(dose=np.full(k, dose), img=np.full(k, i), ey=rc[pi, 0] - t[:, 0], ex=rc[pi, 1] - t[:, 1],
                fy=fl[:, 0] - t[:, 0], fx=fl[:, 1] - t[:, 1], sigma=df["sigma_px"].to_numpy()[pi],
                border=np.minimum.reduce([t[:, 0], t[:, 1], h - 1 - t[:, 0], w - 1 - t[:, 1]]),
                cls=ex.classes[ti], dopant=ex.dopant[ti], confidence=df["confidence"].to_numpy()[pi],
                support=np.full(k, ex.params["support"]), width=np.full(k, ex.sigma_px),
                window=np.full(k, df.attrs.get("fit_window_widths", np.nan)))
    return {k: np.concatenate(v) for k, v in rows.items()}


def _rms(c, m, floor=False):
    e2 = (c["fy"] ** 2 + c["fx"] ** 2) if floor else (c["ey"] ** 2 + c["ex"] ** 2)
    return float(np.sqrt(e2[m].mean())) if m.any() else float("nan")


def _inside(c, m):
    return float(np.mean(np.r_[np.abs(c["ey"][m]) <= c["sigma"][m], np.abs(c["ex"][m]) <= c["sigma"][m]]))


def report(c: dict, breakdown: bool = True) -> None:
    for dose in np.unique(c["dose"]):
        m = c["dose"] == dose
        e2 = c["ey"] ** 2 + c["ex"] ** 2
        print(f"dose {dose:g}: atoms {m.sum()}, RMS {_rms(c, m):.3f} px, fit floor {_rms(c, m, True):.3f}, "
              f"inside 1 sigma {_inside(c, m):.3f}")
        if not breakdown:
            continue
        cats = {"border < 2 px": c["border"] < 2, "border >= 5 px": c["border"] >= 5, "class 0": c["cls"] == 0,
                "class 1": c["cls"] == 1, "dopant": c["dopant"] > 0, "confidence < 0.2": c["confidence"] < 0.2,
                "support < 0.05": c["support"] < 0.05, "support >= 0.05": c["support"] >= 0.05,
                "width < 1 px": c["width"] < 1, "width 1-2 px": (c["width"] >= 1) & (c["width"] < 2),
                "width 2-4 px": (c["width"] >= 2) & (c["width"] < 4), "width >= 4 px": c["width"] >= 4}
        for name, sel in cats.items():
            s = m & sel
            if s.any():
                print(f"    {name:18s} atoms {s.sum():6d}  RMS {_rms(c, s):.3f}  floor {_rms(c, s, True):.3f}  "
                      f"share of squared error {e2[s].sum() / e2[m].sum():.2f}  inside 1 sigma {_inside(c, s):.2f}")
        bias = 0.0
        for i in np.unique(c["img"][m]):
            for k in np.unique(c["cls"][m & (c["img"] == i)]):
                s = m & (c["img"] == i) & (c["cls"] == k)
                bias += s.sum() * (c["ey"][s].mean() ** 2 + c["ex"][s].mean() ** 2)
        print(f"    share of the squared error that is a common bias per image and class: {bias / e2[m].sum():.3f}")


#: the settings before issue #21's second round (the noise-only window rule and the older calibration)
BEFORE = {"windows": None, "sigma_scale": 1.3, "background_gain": 1.1, "sigma_scale_small": 1.2,
          "background_gain_small": 0.9, "mismatch_fraction_small": None}


def abtem_compare(variants: dict, per_dose: int = 8, size: int = 256) -> None:
    """RMS, 1-sigma coverage and F1 of the model under several settings on the same images of the second
    simulator (``scopenet bench atoms-abtem``'s images and seed; detections on faint real columns left out)."""
    from scopenet.tasks.atoms.bench import DOSES, score
    from scopenet.tasks.atoms.bench_abtem import abtem_images
    from scopenet.tasks.atoms.model import AtomFinder

    models = {name: AtomFinder.pretrained("default", **kw) for name, kw in variants.items()}
    print(f"abTEM images (scopenet bench atoms-abtem's), {per_dose} of {size} px per dose")
    for dose in DOSES:
        images = abtem_images(per_dose, dose, size)
        for name, est in models.items():
            tp = n_true = n_pred = 0
            sq = inside = axes = 0.0
            for ex in images:
                df = est.predict(ex.image)
                r = score(df[["y", "x"]].to_numpy().reshape(-1, 2), ex, df["sigma_px"].to_numpy())
                tp, n_true, n_pred, sq = tp + r["tp"], n_true + r["n_true"], n_pred + r["n_pred"], sq + r["sq_err"]
                inside, axes = inside + r.get("inside", 0.0), axes + r.get("axes", 0.0)
            p, rec = tp / max(n_pred, 1), tp / max(n_true, 1)
            print(f"  dose {dose:g} {name:28s} F1 {2 * p * rec / max(p + rec, 1e-12):.4f}  RMS {np.sqrt(sq / max(tp, 1)):.3f} px  "
                  f"inside 1 sigma {inside / max(axes, 1):.3f}", flush=True)


def timing_compare(repeats: int = 2) -> None:
    """Seconds and CPU seconds of ``find_atoms`` on the bench's 2048 px image (:func:`~scopenet.tasks.atoms.bench.
    time_large`) with the window rule before this round, the shipped settings and the lattice prior, in turn."""
    import os

    from scopenet.tasks.atoms.bench import time_large
    from scopenet.tasks.atoms.model import AtomFinder

    for _ in range(repeats):
        for name, kw in (("before (noise-only window)", {"windows": None}), ("shipped", {}),
                         ("shipped + lattice_prior", {"lattice_prior": True})):
            g = time_large(AtomFinder.pretrained("default", **kw))["modes"]["gaussian"]
            print(f"{name:28s} {g['seconds']:.2f} s wall, {g['cpu_seconds']:.2f} CPU-s, {g['atoms_found']} atoms, "
                  f"F1 {g['f1']:.4f}, RMS {g['rms_px']:.4f} px, load {os.getloadavg()[0]:.1f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    import torch

    from scopenet.tasks.atoms.model import AtomFinder

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=31337)
    p.add_argument("--per-dose", type=int, default=16)
    p.add_argument("--settings", default="{}", help="AtomsConfig overrides, JSON")
    p.add_argument("--compare", default=None, help="a second set of overrides (JSON), same images")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--support", type=float, default=None, help="the amorphous support's amplitude for every image "
                   "(default random, 0-0.15; 0: none)")
    p.add_argument("--abtem", action="store_true", help="compare the settings before this round, the shipped ones "
                   "and the lattice prior on the second simulator's images instead")
    p.add_argument("--timing", action="store_true", help="time the 2048 px image with the same three settings instead")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.timing:
        timing_compare()
        return 0
    if a.abtem:
        abtem_compare({"before (noise-only window)": BEFORE, "shipped": {}, "shipped + lattice_prior": {"lattice_prior": True}})
        return 0
    est = AtomFinder.pretrained("default", **json.loads(a.settings))
    print(f"training crystals, {a.per_dose} images of 256 px per dose, seed {a.seed}, settings {a.settings}")
    report(collect(est, a.per_dose, a.seed, support=a.support))
    if a.compare:
        print(f"\nthe same images, settings {a.compare}")
        est2 = AtomFinder.pretrained("default", **{**json.loads(a.settings), **json.loads(a.compare)})
        report(collect(est2, a.per_dose, a.seed, floor=False, support=a.support), breakdown=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
