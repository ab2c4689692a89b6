"""Choose ``AtomsConfig.bin_above_px`` on simulated *training* crystals, never on the real images it is judged on.

48 images of 256 px of the training crystals (seed 31337), column widths 0.12-0.40 x the spacing, every other
one with the detector model (``atom_image(detector=True)``: a diffuse background, fast-scan smear, line
flicker, read noise). For each rule (never, or bin 2 x 2 above a repeat distance of 24 / 20 / 16 / 12 / 10 px)
it prints F1 split by detector model and spacing, and over all::

    OMP_NUM_THREADS=1 python scripts/atoms_binning_study.py [MODEL]

The rule's effect on real images is then measured once by ``scopenet bench atoms-real``.
"""
import sys

import numpy as np

from scopenet.metrics.atoms import match_atoms
from scopenet.simulate.em.atoms import atom_image
from scopenet.tasks.atoms import AtomFinder
from scopenet.tasks.atoms.bench import TOLERANCE


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0] if argv else "default"
    rng = np.random.default_rng(31337)
    exs = [atom_image(rng, 256, split="train", detector=i % 2 == 0, sigma_frac=float(rng.uniform(0.12, 0.40)))
           for i in range(48)]
    for above in (None, 24, 20, 16, 12, 10):
        est = AtomFinder.pretrained(name, bin_above_px=above)
        res: dict = {}
        for ex in exs:
            df = est.predict(ex.image)
            m = match_atoms(ex.atoms, df[["y", "x"]].to_numpy(), TOLERANCE * ex.spacing_px)
            key = f"{'detector' if 'pedestal' in ex.params else 'plain'}, spacing {'> 16' if ex.spacing_px > 16 else '<= 16'}"
            a = res.setdefault(key, [0, 0, 0])
            a[0], a[1], a[2] = a[0] + m.tp, a[1] + m.n_pred, a[2] + m.n_true
        f1 = {k: round(2 * v[0] / (v[1] + v[2]), 4) for k, v in sorted(res.items())}
        tot = [sum(v[i] for v in res.values()) for i in range(3)]
        print(f"bin_above_px {above}: {f1} all {2 * tot[0] / (tot[1] + tot[2]):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
