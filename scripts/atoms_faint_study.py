"""Choose the faint-peak rule of a model (``faint_threshold``, ``faint_partners``, ``faint_reach``) on simulated
*training* crystals, never on the benchmark's held-out ones.

12 images of 256 px per bench dose (15, 50, 200, 1000 counts; seed 31337, the calibration seed), each dose once
without and once with the detector model (``atom_image(detector=True)``). The heatmaps are computed once; for
each rule the atom table (:meth:`AtomFinder.locate`) is scored as the benches score it (:func:`scopenet.tasks.atoms.bench.score`: a
detection on a rendered faint column is neither right nor wrong). Prints F1 per dose and pooled, and the
rule of best pooled F1 (ties: the earlier, simpler rule)::

    OMP_NUM_THREADS=2 python scripts/atoms_faint_study.py [MODEL] [--per-dose 12]
"""
import argparse
import itertools


from scopenet.tasks.atoms import AtomFinder
from scopenet.tasks.atoms.bench import settings_f1, training_sets

RULES = [(None, 2, None)] + [(ft, pa, re) for ft, pa, re in
                             itertools.product((0.03, 0.05, 0.1, 0.15, 0.2), (2, 3), (None, 1.5, 1.0))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--per-dose", type=int, default=12)
    a = ap.parse_args(argv)
    est = AtomFinder.pretrained(a.model)
    sets = training_sets(est, a.per_dose)
    cfg0 = est.config.model_copy()
    print(f"model {est.name}: threshold {cfg0.threshold}, shipped rule ({cfg0.faint_threshold}, "
          f"{cfg0.faint_partners}, {cfg0.faint_reach}); {len(sets)} training-crystal images", flush=True)
    best = None
    for ft, pa, re in RULES:
        if ft is not None and ft >= cfg0.threshold:
            continue
        est.config.faint_threshold, est.config.faint_partners, est.config.faint_reach = ft, pa, re
        f1 = settings_f1(est, sets, by_detector=True)
        print(f"faint_threshold {ft}, partners {pa}, reach {re}: "
              + ", ".join(f"{k} {v:.4f}" for k, v in f1.items()), flush=True)
        if best is None or f1["all"] > best[0] + 1e-9:
            best = (f1["all"], ft, pa, re)
    print(f"best: faint_threshold {best[1]}, faint_partners {best[2]}, faint_reach {best[3]} (F1 {best[0]:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
