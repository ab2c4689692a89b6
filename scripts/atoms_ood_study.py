"""Choose the out-of-distribution flag of an atom finder (``ood_confidence``, ``ood_lattice``) on images like the
training data and images with no atoms, never on the benchmark's held-out crystals or the real images.

To choose from: simulated *training* crystals, 12 images of 256 px per bench dose (seed 31337, the calibration
seed), every other one with the detector model, and 12 SPM-like surfaces; and 23 images with no atoms (white and
Poisson noise, smooth random textures of 1-10 px with and without shot noise, the simulator's amorphous support
alone, stripes, a gradient, a step). A rule flags an image when the median peak confidence is below ``c`` or the
lattice share (:func:`scopenet.tasks.atoms.postprocess.lattice_share`) below ``m`` (or when fewer than four atoms
are found). Its score is the mean of three shares: the no-atom images flagged, the training images the finder
fails on (F1 < 0.9) flagged, the training images it gets right (F1 >= 0.9) not flagged. The best rule over the
grid (ties: fewer flags) is then shown, with the rule in use, on the held-out crystals (seed 424242, same recipe;
``--held-out``) and the real STEM images (``--real``; no F1 here, see ``scopenet bench atoms-real``)::

    OMP_NUM_THREADS=2 python scripts/atoms_ood_study.py [MODEL] [--held-out] [--real] [--json rows.json]
"""
import argparse
import itertools
import json

import numpy as np

from scopenet.simulate.em.atoms import atom_image, spm_atom_image
from scopenet.simulate.em.lattice import gaussian_random_field
from scopenet.tasks.atoms import AtomFinder
from scopenet.tasks.atoms.bench import CALIB_SEED, DOSES, EVAL_SEED, score
from scopenet.tasks.atoms.postprocess import lattice_share

CONFIDENCES = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6)
SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def crystals(per_dose: int, seed: int, split: str):
    out = []
    for dose in DOSES:
        rng = np.random.default_rng([seed, int(dose), 7])
        for i in range(per_dose):
            ex = atom_image(rng, 256, split=split, dose=dose, detector=bool(i % 2))
            out.append((f"{split} {dose:g} #{i}{' det' if i % 2 else ''}", ex.image, ex))
    rng = np.random.default_rng([seed, 99])
    out += [(f"spm #{i}", ex.image, ex) for i, ex in enumerate(spm_atom_image(rng, 256) for _ in range(per_dose))]
    return out


def no_atoms(seed: int):
    rng = np.random.default_rng([seed, 5])
    n = 256
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    out = [("white noise", rng.normal(size=(n, n))), ("Poisson 0.5", rng.poisson(0.5, (n, n)).astype(float)),
           ("Poisson 20", rng.poisson(20, (n, n)).astype(float)),
           ("gradient", xx / n + 0.01 * rng.normal(size=(n, n))),
           ("step", (xx > n / 2) + 0.05 * rng.normal(size=(n, n)))]
    for s in (1.0, 1.5, 2.0, 3.0, 5.0, 10.0):
        f = gaussian_random_field((n, n), rng, s)
        out.append((f"texture {s:g} px", f))
        out.append((f"texture {s:g} px, 30 counts", rng.poisson(30 * np.clip(1 + 0.3 * f, 0, None)).astype(float)))
    for s in (1.0, 2.0, 4.0):  # the simulator's amorphous support alone, at a column dose of 200
        supp = 0.15 * (0.5 + 0.5 * gaussian_random_field((n, n), rng, s)) + 0.045 * gaussian_random_field((n, n), rng, n / 6)
        out.append((f"support {s:g} px", rng.poisson(200 * np.clip(supp, 0, None)).astype(float)))
    for period in (6.0, 12.0, 25.0):
        out.append((f"stripes {period:g} px", np.sin(2 * np.pi * (xx + 0.3 * yy) / period) + 0.2 * rng.normal(size=(n, n))))
    return [(k, v, None) for k, v in out]


def real_images():
    from scopenet.tasks.atoms.bench_real import data_folder, default_references, load_image, read_references

    folder, refs = data_folder(), default_references()
    if folder is None or refs is None:
        return []
    return [(k, load_image(k, folder), None) for k in read_references(refs)]


def measure(est, group, name, img, ex=None) -> dict:
    df = est.predict(img)
    pos = df[["y", "x"]].to_numpy(float)
    return {"group": group, "name": name, "n": len(df), "confidence": float(df.attrs["median_confidence"]),
            "share": lattice_share(pos), "f1": score(pos, ex)["f1"] if ex is not None else float("nan"),
            "ood": bool(df.attrs["ood"]), "reasons": df.attrs["ood_reasons"]}


def flags(r: dict, c: float, m: float) -> bool:
    return bool(r["n"] < 4 or r["confidence"] < c or not np.isfinite(r["share"]) or r["share"] < m)


def evaluate(rows, c, m) -> dict:
    none = [flags(r, c, m) for r in rows if r["group"] == "no atoms"]
    fail = [flags(r, c, m) for r in rows if r["group"] != "no atoms" and r["f1"] < 0.9]
    ok = [not flags(r, c, m) for r in rows if r["group"] != "no atoms" and r["f1"] >= 0.9]
    shares = [float(np.mean(v)) if v else float("nan") for v in (none, fail, ok)]
    return {"score": float(np.nanmean(shares)), "no_atoms_flagged": shares[0], "failures_flagged": shares[1],
            "right_kept": shares[2], "n_failures": len(fail), "n_right": len(ok),
            "flags": sum(none) + sum(fail) + len(ok) - sum(ok)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--per-dose", type=int, default=12)
    ap.add_argument("--held-out", action="store_true", help="show the chosen rule on the held-out crystals")
    ap.add_argument("--real", action="store_true", help="show it on the real STEM images")
    ap.add_argument("--json", help="write the per-image rows here")
    a = ap.parse_args(argv)
    est = AtomFinder.pretrained(a.model)
    cur = (est.config.ood_confidence, est.config.ood_lattice)
    rows = [measure(est, "training crystals", *it) for it in crystals(a.per_dose, CALIB_SEED, "train")]
    rows += [measure(est, "no atoms", *it) for it in no_atoms(CALIB_SEED)]
    grid = sorted(((evaluate(rows, c, m), c, m) for c, m in itertools.product(CONFIDENCES, SHARES)),
                  key=lambda t: (-round(t[0]["score"], 6), t[0]["flags"]))
    print("rule (median confidence < c or lattice share < m) on training crystals + no-atom images:")
    for e, c, m in grid[:8]:
        print(f"  c {c:.1f} m {m:.1f}: score {e['score']:.3f}  no-atom images flagged {e['no_atoms_flagged']:.2f}  "
              f"failures (F1 < 0.9) flagged {e['failures_flagged']:.2f} of {e['n_failures']}  "
              f"right images kept {e['right_kept']:.2f} of {e['n_right']}")
    e = evaluate(rows, *cur)
    print(f"  in use c {cur[0]:.1f} m {cur[1]:.1f}: score {e['score']:.3f}  {e['no_atoms_flagged']:.2f} / "
          f"{e['failures_flagged']:.2f} / {e['right_kept']:.2f}")
    best = grid[0][1:]
    print(f"chosen: ood_confidence {best[0]}, ood_lattice {best[1]}")
    extra = []
    if a.held_out:
        extra += [measure(est, "held-out crystals", *it) for it in crystals(a.per_dose, EVAL_SEED, "held_out")]
    if a.real:
        extra += [measure(est, "real STEM", *it) for it in real_images()]
    for g in ("held-out crystals", "real STEM"):
        sub = [r for r in extra if r["group"] == g]
        if not sub:
            continue
        print(f"\n{g}:")
        for r in sub:
            print(f"  {r['name'][:36]:36s} atoms {r['n']:5d}  confidence {r['confidence']:.2f}  lattice share "
                  f"{r['share']:.2f}  F1 {r['f1']:.3f}  flagged: in use {int(flags(r, *cur))}, chosen {int(flags(r, *best))}")
        if g == "held-out crystals":
            for name, rule in (("in use", cur), ("chosen", best)):
                fail = [flags(r, *rule) for r in sub if r["f1"] < 0.9]
                ok = [flags(r, *rule) for r in sub if r["f1"] >= 0.9]
                print(f"  {name}: failures flagged {sum(fail)} of {len(fail)}, right images flagged {sum(ok)} of {len(ok)}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows + extra, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
