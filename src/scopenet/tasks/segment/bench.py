"""Benchmark: particle segmentation, model vs Otsu and local thresholds.

Held-out simulated particle micrographs from the ``"heldout"`` setting of
:mod:`scopenet.simulate.em.particle_data` (larger and more elongated particles, lower doses of 8-20
counts per pixel, stronger blur, coarser support film: ranges the model never saw in training) and, for
reference, images of the training setting drawn with another seed. Scores per image: Dice and IoU of the
particle mask, object F1 (connected components matched one to one at IoU > 0.5) and the relative error
of the particle count::

    scopenet bench segment [--n 40] [--model segment-particles] [--overlays DIR]

Real images: the fixtures in ``shared/fixtures/`` that show particles (the AFM topography
``gwy/PTO_110_Virgin0001.gwy``, line-flattened, and the TEM search image ``tia/128x128-TEM_search``):
particle counts and median equivalent diameters of every method (no ground truth), with overlay
pictures and the model's size histogram written to ``--overlays``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._bench import BenchSpec, Report, Table, compare_with_best, mean_sd, timed_loop
from .baselines import BASELINES

FIXTURES = Path(os.environ.get("SCOPENET_FIXTURES", Path(__file__).resolve().parents[4].parent / "shared" / "fixtures"))
EVAL_SEED = 31_337  # training uses seed 0 (recipes/segment-particles.yaml)
#: real images with particles: (path under fixtures, description, preprocessing)
REAL = (("gwy/PTO_110_Virgin0001.gwy", "AFM topography, PTO (110) (particles on a flat film)", "flatten"),
        ("em/tia/128x128-TEM_search.emi", "TEM search image (one large dark object)", None))


def _options(p) -> None:
    p.add_argument("--model", default="segment-particles", help="installed model name or path stem")
    p.add_argument("--n", type=int, default=None, help="held-out simulated images (default 40; --quick 8)")
    p.add_argument("--size", type=int, default=256, help="simulated image side (px)")
    p.add_argument("--tta", type=int, default=1, help="flipped/rotated views averaged by the model (1..8)")
    p.add_argument("--overlays", type=Path, default=None, help="write overlay and histogram PNGs of the real images here")


def scores(pred_mask: np.ndarray, truth_mask: np.ndarray) -> dict[str, float]:
    """Dice, IoU, object F1 (components, IoU > 0.5) and relative count error of one predicted mask."""
    from scipy import ndimage

    from ...metrics.segmentation import dice, iou, match_objects

    p, t = np.asarray(pred_mask, bool), np.asarray(truth_mask, bool)
    lp, lt = ndimage.label(p)[0], ndimage.label(t)[0]
    m = match_objects(lt, lp)
    nt = max(1, int(lt.max()))
    return {"dice": dice(t, p), "iou": iou(t, p), "object_f1": m.f1, "count_err": abs(int(lp.max()) - nt) / nt}


def _methods(model, tta: int = 1):
    from .particles import label_particles

    def clean(mask):
        return label_particles(mask, min_area=4) > 0

    out = {"model": lambda x: clean(np.asarray(model.predict_labels(x, tta=tta)) > 0)}
    out.update({name: (lambda x, f=f: clean(f(x))) for name, f in BASELINES.items()})
    return out


def _table(title: str, res: dict, n: int) -> Table:
    t = Table(["method", "Dice", "IoU", "object F1", "count error", "s / image"], title=f"{title} ({n} images)")
    for name, r in res.items():
        t.add(name, mean_sd(r["dice"]), mean_sd(r["iou"]), mean_sd(r["object_f1"]), mean_sd(r["count_err"]),
              f"{np.mean(r['time']):.3f}")
    return t


def real_images(root: Path = FIXTURES):
    """The fixture images with particles that exist under ``root``: ``[(name, description, Micrograph)]``."""
    from ...io import read

    out = []
    for rel, desc, prep in REAL:
        p = root / rel
        if not p.exists():
            continue
        m = read(p)
        if m.data.ndim == 3:
            m = m[0]
        if prep == "flatten":
            from ...image.spm import flatten

            m = flatten(m, method="lines")
        out.append((rel, desc, m))
    return out


def run(a, report: Report) -> int:
    from ...simulate.em.particle_data import particle_sample
    from .model import Segmenter

    model = Segmenter.pretrained(a.model)
    n = a.n or (8 if a.quick else 40)
    seed = EVAL_SEED if a.seed is None else a.seed
    report.line(f"model {model.name}: {model.card_.training.data or ''}")
    methods = _methods(model, a.tta)
    if a.tta > 1:
        report.line(f"model predictions average {a.tta} flipped/rotated views")
    results = report.data.setdefault("results", {})
    for setting, count, s in (("heldout", n, seed), ("train", max(2, n // 4), seed + 1)):
        rng = np.random.default_rng(s)
        ex = [particle_sample(rng, a.size, setting) for _ in range(count)]
        res = timed_loop([(e.image, e.mask) for e in ex], methods, lambda out, e: scores(out, e[1]))
        results[setting] = res
        title = (f"held-out simulated particles (setting 'heldout', seed {s}, {a.size} px)" if setting == "heldout"
                 else f"training setting, unseen seed {s} ({a.size} px)")
        report.table(_table(title, res, count))
        for metric in ("dice", "iou"):
            report.line(compare_with_best("model", {k: np.mean(v[metric]) for k, v in res.items()}, metric,
                                          lower_is_better=False))
        for base in BASELINES:  # image by image: the means hide whether a method fails rarely or loses often
            md, bd = np.asarray(res["model"]["dice"]), np.asarray(res[base]["dice"])
            report.line(f"model Dice above {base}'s on {int((md > bd).sum())} of {len(md)} images; median Dice "
                        f"model {np.median(md):.3f}, {base} {np.median(bd):.3f}")
        report.line()
    real = real_images()
    if not real:
        report.line(f"skipping real images: no fixtures found under {FIXTURES}")
        return 0
    from .particles import overlay_png, particle_table, size_histogram_png

    t = Table(["image", "method", "particles", "median eq. diameter", "covered %"],
              title="real fixtures (no ground truth): counts")
    rows = results.setdefault("real", {})
    for rel, desc, mg in real:
        for name, fn in methods.items():
            from .particles import label_particles

            lab = label_particles(fn(np.asarray(mg.data, np.float32)), min_area=4)
            tab = particle_table(lab, image=mg)
            d = tab.equivalent_diameter_m * 1e9 if len(tab) and np.isfinite(tab.equivalent_diameter_m).all() \
                else tab.equivalent_diameter_px
            unit = "nm" if d is not tab.equivalent_diameter_px else "px"
            med = f"{np.median(d):.1f} {unit}" if len(tab) else "-"
            t.add(f"{rel} ({desc})", name, len(tab), med, f"{100 * (lab > 0).mean():.1f}")
            rows.setdefault(rel, {})[name] = {"count": int(len(tab)), "covered": float((lab > 0).mean())}
            if a.overlays is not None:
                a.overlays.mkdir(parents=True, exist_ok=True)
                stem = Path(rel).stem
                overlay_png(mg, lab, a.overlays / f"{stem}-{name}.png", title=f"{stem}: {name}, {len(tab)} particles",
                            overwrite=True, table=tab)
                if name == "model" and len(tab):
                    size_histogram_png(tab, a.overlays / f"{stem}-sizes.png", title=stem, overwrite=True)
    report.table(t)
    if a.overlays is not None:
        report.line(f"overlays and size histograms in {a.overlays}")
    return 0


SPEC = BenchSpec("segment", __doc__, run, _options, seed=None, threads=1,
                 quick="8 held-out and 2 training-setting simulated images")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scopenet bench segment``."""
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
