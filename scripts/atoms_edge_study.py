"""Choose the border rule of a model (``edge_margin``, ``edge_fit_px``) on simulated *training* crystals, never on
the benchmark's held-out ones.

A column cut by the border, its centre outside, is mirrored by the network's padding into a heatmap peak at the
edge; a column centred just inside is a real atom. ``edge_margin`` drops atoms refined within that many px of the
first or last pixel centre; ``edge_fit_px`` drops atoms within that many px of the border whose Gaussian fit failed
(the fit of an outside column leaves the image, and the heatmap's peak stands in for it). 8 images of 256 px per
bench dose (15, 50, 200, 1000 counts; seed 31337, the calibration seed), each dose once without and once with the
detector model; heatmaps computed once, each rule's atom table scored as the benches score it. Prints F1 per dose
and pooled and the rule of best pooled F1 (ties: the earlier rule; the shipped one is first)::

    OMP_NUM_THREADS=2 python scripts/atoms_edge_study.py [MODEL] [--per-dose 8]
"""
import argparse
import itertools

import numpy as np

from scopenet.simulate.em.atoms import atom_image
from scopenet.tasks.atoms import AtomFinder
from scopenet.tasks.atoms.bench import CALIB_SEED, DOSES, score

MARGINS = (-0.5, 0.0, 0.1, 0.25, 0.5)
FIT_PX = (None, 0.5, 1.0, 1.5, 2.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--per-dose", type=int, default=8)
    a = ap.parse_args(argv)
    est = AtomFinder.pretrained(a.model)
    sets = []
    for dose in DOSES:
        for detector in (False, True):
            rng = np.random.default_rng([CALIB_SEED, int(dose), int(detector)])
            for _ in range(a.per_dose):
                ex = atom_image(rng, 256, split="train", dose=dose, detector=detector)
                sets.append((dose, ex, est.heatmap(ex.image)))
    cfg0 = est.config.model_copy()
    rules = [(cfg0.edge_margin, cfg0.edge_fit_px)] + [r for r in itertools.product(MARGINS, FIT_PX)
                                                      if r != (cfg0.edge_margin, cfg0.edge_fit_px)]
    print(f"model {est.name}: shipped edge_margin {cfg0.edge_margin}, edge_fit_px {cfg0.edge_fit_px}; "
          f"{len(sets)} training-crystal images", flush=True)
    best = None
    for m, fp in rules:
        est.config.edge_margin, est.config.edge_fit_px = m, fp
        acc: dict = {}
        for dose, ex, heat in sets:
            r = score(est.locate(ex.image, heat=heat)[["y", "x"]].to_numpy(), ex)
            for key in (f"{dose:g}", "all"):
                v = acc.setdefault(key, [0, 0, 0])
                v[0], v[1], v[2] = v[0] + r["tp"], v[1] + r["n_pred"], v[2] + r["n_true"]
        f1 = {k: 2 * v[0] / (v[1] + v[2]) for k, v in acc.items()}
        print(f"edge_margin {m}, edge_fit_px {fp}: " + ", ".join(f"{k} {v:.4f}" for k, v in f1.items()), flush=True)
        if best is None or f1["all"] > best[0] + 1e-9:
            best = (f1["all"], m, fp)
    print(f"best: edge_margin {best[1]}, edge_fit_px {best[2]} (F1 {best[0]:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
