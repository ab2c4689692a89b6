"""Simulate the exit-wave datasets (abTEM multislice) used to train and check the exitwave models.

Each set is one ``.npz`` written by :func:`scopenet.simulate.em.exitwave.save_waves` (waves of shape
``(N, crop, crop)``, complex64, mean amplitude 1, and their parameters). Single waves are cached on
disk (``$SCOPENET_CACHE/exitwave``, default ``~/.cache/scopenet/exitwave``), so an interrupted run
resumes where it stopped and a larger run reuses every wave of a smaller one with the same seed.

Usage::

    # the sets behind the shipped models (recipes/exitwave-*.yaml), one thread
    OMP_NUM_THREADS=1 python scripts/make_exitwave_data.py --preset shipped --out /tmp/exitwave-data

    # one custom set
    python scripts/make_exitwave_data.py --name mine --materials Si GaAs --n-per-material 50 \\
        --range full --seed 0 --out /tmp/exitwave-data

    # the small set in tests/data/exitwave (64 px grid, 48 px crop)
    python scripts/make_exitwave_data.py --preset tests --out tests/data/exitwave

Sets of the ``shipped`` preset (materials split by name, ``SPLITS`` in the simulator):

- ``restricted-train``: the first 17 training materials (``BASE_TRAIN``), restricted ranges (seed 1,
  then seed 7 for more); ``restricted-train-extra``: the 35 later ones (``EXTRA_TRAIN``, seed 9);
  ``restricted-train-more``: all 52 training materials, 6 each (seed 13);
- ``restricted-params``: training materials, new parameter draws (unseen parameters);
- ``restricted-materials``: validation materials, restricted ranges (unseen materials);
- ``single-train`` / ``single-params``: SrTiO3, full ranges; ``single-train-110``: 110 waves (the first
  64 are ``single-train``);
- ``single-materials``: validation materials, full ranges.

The ``test`` materials are never simulated here: ``scopenet bench exitwave`` simulates them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def plan(preset: str, scale: float = 1.0):
    from scopenet.simulate.em.exitwave import BASE_TRAIN, EXTRA_TRAIN, SINGLE_MATERIAL, SPLITS

    train, val = BASE_TRAIN, SPLITS["val"]
    n = lambda k: max(1, int(round(k * scale)))  # noqa: E731
    if preset == "shipped":
        return [
            dict(name="restricted-train", materials=train, n=n(20), prange="restricted", seed=1),
            dict(name="restricted-params", materials=train, n=n(2), prange="restricted", seed=3),
            dict(name="restricted-materials", materials=val, n=n(6), prange="restricted", seed=4),
            dict(name="single-train", materials=(SINGLE_MATERIAL,), n=n(64), prange="full", seed=2),
            dict(name="single-params", materials=(SINGLE_MATERIAL,), n=n(12), prange="full", seed=5),
            dict(name="single-materials", materials=val, n=n(2), prange="full", seed=6),
            dict(name="restricted-train-2", materials=train, n=n(20), prange="restricted", seed=7),
            dict(name="single-train-2", materials=(SINGLE_MATERIAL,), n=n(64), prange="full", seed=8),
            # the second shipped models (recipes/exitwave-*.yaml): 35 more training materials, 110 SrTiO3 waves
            dict(name="restricted-train-extra", materials=EXTRA_TRAIN, n=n(8), prange="restricted", seed=9),
            dict(name="restricted-train-more", materials=SPLITS["train"], n=n(6), prange="restricted", seed=13),
            dict(name="single-train-110", materials=(SINGLE_MATERIAL,), n=n(110), prange="full", seed=2),
        ]
    if preset == "tests":
        return [
            dict(name="tiny-train", materials=("Si", "GaAs", "SrTiO3"), n=2, prange="restricted", seed=11,
                 gpts=64, crop=48),
            dict(name="tiny-test", materials=("MgO",), n=2, prange="restricted", seed=12, gpts=64, crop=48),
        ]
    raise SystemExit(f"unknown preset {preset!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=["shipped", "tests"])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the preset's waves per material")
    ap.add_argument("--name")
    ap.add_argument("--materials", nargs="*")
    ap.add_argument("--n-per-material", type=int, default=10)
    ap.add_argument("--range", default="full", choices=["full", "restricted"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gpts", type=int, default=192)
    ap.add_argument("--crop", type=int, default=144)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", help="names of preset sets to make (default all)")
    ap.add_argument("--warm-bench", type=int, default=0, metavar="N",
                    help="after the sets, simulate the N-wave validation sets that `scopenet bench exitwave "
                         "--n N --seed 0` uses for models trained on them (fills the cache)")
    args = ap.parse_args(argv)

    from pathlib import Path

    from scopenet.simulate.em.exitwave import save_waves, simulate_set

    if args.preset:
        sets = plan(args.preset, args.scale)
        if args.only:
            sets = [s for s in sets if s["name"] in args.only]
    else:
        if not (args.name and args.materials):
            ap.error("give --preset, or --name and --materials")
        sets = [dict(name=args.name, materials=tuple(args.materials), n=args.n_per_material, prange=args.range,
                     seed=args.seed, gpts=args.gpts, crop=args.crop)]
    out = Path(args.out)
    for s in sets:
        t0 = time.perf_counter()
        gpts, crop = s.get("gpts", args.gpts), s.get("crop", args.crop)
        waves, params = simulate_set(s["materials"], s["n"], prange=s["prange"], seed=s["seed"], gpts=gpts,
                                     crop=crop)
        meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()}
        meta.update(gpts=gpts, crop=crop, seconds=round(time.perf_counter() - t0, 1))
        path = save_waves(out / f"{s['name']}.npz", waves, params, meta)
        print(f"{path}: {len(waves)} waves in {meta['seconds']} s", flush=True)
    if args.warm_bench:
        from scopenet.tasks.exitwave.bench import simulate_validation_sets

        for s in sets:
            if s["name"].endswith("-train"):
                simulate_validation_sets([s], args.warm_bench, seed=0)
                print(f"validation sets of {s['name']} cached", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
