"""Compare settings of a model on a *fresh* draw of the held-out crystals (a seed no study or bench has used), to
confirm a choice made on the training crystals without looking at the benchmark's own images again::

    OMP_NUM_THREADS=2 python scripts/atoms_confirm.py --seed 424243 --compare '{"residual_contrast": 0.2}'

16 images of 256 px per bench dose, scored as ``scopenet bench atoms`` scores (detections on rendered faint columns
neither right nor wrong); prints F1, precision and recall per dose for the shipped settings and the compared ones.
"""
import argparse
import json

import numpy as np

from scopenet.tasks.atoms import AtomFinder
from scopenet.tasks.atoms.bench import DOSES, held_out_images, score


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--per-dose", type=int, default=16)
    ap.add_argument("--compare", default="{}", help="AtomsConfig overrides (JSON)")
    a = ap.parse_args(argv)
    models = {"shipped": AtomFinder.pretrained(), "compared": AtomFinder.pretrained(**json.loads(a.compare))}
    print(f"held-out crystals, {a.per_dose} images of 256 px per dose, seed {a.seed}; compared: {a.compare}")
    for dose in DOSES:
        acc = {k: np.zeros(3) for k in models}
        for ex in held_out_images(a.per_dose, dose, 256, seed=a.seed):
            heat = models["shipped"].heatmap(ex.image)
            for k, est in models.items():
                r = score(est.locate(ex.image, heat=heat)[["y", "x"]].to_numpy(), ex)
                acc[k] += (r["tp"], r["n_pred"], r["n_true"])
        print(f"dose {dose:g}: " + "; ".join(
            f"{k} F1 {2 * v[0] / (v[1] + v[2]):.4f} (precision {v[0] / max(v[1], 1):.4f}, recall "
            f"{v[0] / max(v[2], 1):.4f})" for k, v in acc.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
