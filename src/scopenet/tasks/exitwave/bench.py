"""Benchmark: exit-wave phase from the amplitude, model vs random and zero phases (Ede's chapter 7).

Three cumulative validation sets, as the chapter's table 2, each of ``--n`` waves simulated with the
model's own pipeline and parameter ranges (read from its model card) and scored on ``--crop`` px
crops at a random position in one of the 8 flips/rotations:

1. **unseen transforms**: waves of the training set itself (the same materials and simulation
   parameters, re-simulated or read from the cache), new crops and flips;
2. **+ unseen parameters**: the training materials with new parameter draws;
3. **+ unseen materials**: materials no shipped model saw (``SPLITS["test"]``) or the crystal
   structures in ``--structures DIR`` (CIF or any file ASE reads), new parameter draws.

Metric: the mean absolute error of the phase components ``(cos theta, sin theta)`` per wave; the
table gives its mean and standard deviation over the waves, beside the uniform random baseline
(components ``U(-1, 1)``, expected 0.75), random unit phasors (expected 0.811 for uniform phases)
and zero phase. Also the mean phase confidence, the fraction of waves the model flags as unlike
its training data (:class:`~scopenet.tasks.exitwave.model.UnfamiliarInputWarning`) and the mean MAE
of the flagged and of the unflagged waves::

    scopenet bench exitwave [--structures DIR] [--n N] [--seed S] [--json]
    scopenet bench exitwave --model single            # the SrTiO3 model on its own distribution

``--json`` alone prints one JSON object (``mae_mean``, ``mae_sd``, ``random_mae``, ``n`` of the last,
unseen-materials set, and every set under ``sets``) instead of the tables; ``--json FILE`` writes it.
Needs the ``sim`` extra (abTEM, ASE).
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

from ...errors import InputError
from .._bench import BenchSpec, Report, Table, mean_sd
from .baselines import RANDOM_MAE, components, per_pixel_error, random_components, random_phase, zero_phase
from .model import DEFAULT_MODEL, ExitWaveEstimator, UnfamiliarInputWarning

SET_NAMES = ("unseen transforms", "+ unseen parameters", "+ unseen materials")
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".xyz", ".pdb", ".json", ".traj", ".cell", ".res")


def training_sets(est: ExitWaveEstimator) -> list[dict]:
    """The simulated sets a model was trained on (``card.training.data["sets"]``)."""
    data = est.card_.training.data
    sets = data.get("sets") if isinstance(data, dict) else None
    if not sets:
        raise InputError(f"model {est.name} does not record its training sets (card training.data.sets); "
                         "bench exitwave needs them to simulate its distribution")
    return sets


def structures_in(folder: Path) -> list[Path]:
    """Crystal-structure files in ``folder`` (CIF first; any suffix ASE reads in :data:`STRUCTURE_SUFFIXES`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--structures {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in STRUCTURE_SUFFIXES)
    if not files:
        raise InputError(f"--structures {folder}: no structure files ({', '.join(STRUCTURE_SUFFIXES)})")
    return files


def transform(wave: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``crop`` px crop of ``wave`` in one of the 8 flips/rotations (an unseen transform)."""
    from ...image.tta import dihedral

    h, w = wave.shape
    c = min(crop, h, w)
    y, x = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
    return np.ascontiguousarray(dihedral(wave[y:y + c, x:x + c], int(rng.integers(8))))


def score_waves(est: ExitWaveEstimator, waves: list[np.ndarray], rng: np.random.Generator, tta: int = 1) -> dict:
    """Per-wave MAEs of the model and the baselines, mean confidence and unfamiliar flags."""
    out: dict[str, list] = {k: [] for k in ("model", "random components", "random phase", "zero phase",
                                            "confidence", "flagged", "pixel_error_random")}
    for wv in waves:
        truth = components(wv)
        a, phase, conf = est.phase_and_confidence(np.abs(wv), tta)
        verdict = est._assess(a, conf)
        pred = components(phase)
        out["model"].append(float(per_pixel_error(pred, truth).mean()))
        rc = random_components(wv.shape, rng)
        out["random components"].append(float(per_pixel_error(rc, truth).mean()))
        out["random phase"].append(float(per_pixel_error(random_phase(wv.shape, rng), truth).mean()))
        out["zero phase"].append(float(per_pixel_error(zero_phase(wv.shape), truth).mean()))
        out["confidence"].append(float(conf.mean()))
        out["flagged"].append(0.0 if verdict["familiar"] else 1.0)
        out["pixel_error_random"].append(float(np.abs(rc - truth).std()))
    return out


def simulate_validation_sets(sets: list[dict], n: int, seed: int, structures: list[Path] | None = None,
                             progress: bool = True) -> dict[str, tuple[list[np.ndarray], list]]:
    """The three cumulative validation sets of ``n`` waves each (see the module docstring).

    Parameters
    ----------
    sets : list of dict
        The training sets (:func:`training_sets`: ``materials``, ``n``, ``prange``, ``seed``, ``gpts``,
        ``crop`` of each call of :func:`~scopenet.simulate.em.exitwave.simulate_set`).
    n, seed : int
        Waves per set and the draw of the validation parameters.
    structures : list of path, optional
        Structure files for the unseen-materials set (default ``SPLITS["test"]``).

    Returns
    -------
    dict set name -> (list of complex waves, list of WaveParams)
    """
    from ...simulate.em.exitwave import SPLITS, load_structure, sample_params, simulate_exit_wave

    first = sets[0]
    prange, gpts, crop = first["prange"], int(first.get("gpts", 192)), int(first.get("crop", 144))
    train_materials = sorted({m for s in sets for m in s["materials"]})
    # 1. the training set's own parameters (the generator's draws, in its order)
    jobs = []
    for s in sets:
        r = np.random.default_rng(int(s["seed"]))
        jobs += [sample_params(m, r, s["prange"], gpts=int(s.get("gpts", 192)), crop=int(s.get("crop", 144)))
                 for _ in range(int(s["n"])) for m in s["materials"]]
    pick = np.random.default_rng([seed, 1]).choice(len(jobs), size=min(n, len(jobs)), replace=False)
    seen = [jobs[i] for i in sorted(pick)]
    # 2. training materials, new parameters
    r2 = np.random.default_rng([seed, 2, 1000])
    params2 = [sample_params(train_materials[i % len(train_materials)], r2, prange, gpts=gpts, crop=crop)
               for i in range(n)]
    # 3. unseen materials, new parameters
    r3 = np.random.default_rng([seed, 3, 2000])
    if structures:
        units = {}
        for p in structures:
            try:
                units[str(p)] = load_structure(p)[0]
            except Exception as exc:  # a file ASE cannot read is reported and left out
                print(f"note: {p.name} left out: {exc}", file=sys.stderr)
        if not units:
            raise InputError("none of the --structures files could be read as a crystal")
        names = list(units)
    else:
        units, names = {}, list(SPLITS["test"])
    params3 = [sample_params(names[i % len(names)], r3, prange, gpts=gpts, crop=crop) for i in range(n)]
    todo = [(SET_NAMES[0], seen), (SET_NAMES[1], params2), (SET_NAMES[2], params3)]
    total = sum(len(p) for _, p in todo)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="simulate validation waves", unit="wave", file=sys.stderr)
    out = {}
    for name, plist in todo:
        waves = []
        for p in plist:
            struct = units.get(p.material, p.material)
            waves.append(simulate_exit_wave(p, structure=struct))
            if bar is not None:
                bar.update(1)
        out[name] = (waves, plist)
    if bar is not None:
        bar.close()
    return out


def _add_options(p) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"installed model name, alias (restricted, single) or path stem (default {DEFAULT_MODEL})")
    p.add_argument("--structures", type=Path, default=None,
                   help="folder of crystal structures (CIF, or any file ASE reads) for the unseen-materials set "
                        "(default: the built-in test materials)")
    p.add_argument("--n", type=int, default=12, help="waves per validation set (default 12; --quick 3)")
    p.add_argument("--crop", type=int, default=128, help="crop size scored, px (default 128)")
    p.add_argument("--tta", type=int, default=1, help="flipped/rotated views averaged by the model")


def run(args, report: Report) -> int:
    n = 3 if args.quick else int(args.n)
    if n < 1:
        raise InputError(f"--n must be >= 1, got {n}")
    est = ExitWaveEstimator.pretrained(args.model)
    structures = structures_in(args.structures) if args.structures else None
    seed = 0 if args.seed is None else int(args.seed)
    sets = simulate_validation_sets(training_sets(est), n, seed, structures,
                                    progress=not getattr(args, "_quiet", False))
    first = training_sets(est)[0]
    report.line(f"model {est.name}: trained on {first['prange']} ranges, materials "
                f"{', '.join(sorted({m for s in training_sets(est) for m in s['materials']}))}")
    rng = np.random.default_rng([seed, 9])
    t = Table(["validation set", "n", "model MAE", "random U(-1,1)", "random phase", "zero phase",
               "mean confidence", "flagged unfamiliar", "MAE flagged / unflagged"],
              title=f"Phase-component MAE, mean ± sd over waves ({args.crop} px crops, {est.name})")
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnfamiliarInputWarning)
        for name in SET_NAMES:
            waves, params = sets[name]
            views = [transform(w, args.crop, rng) for w in waves]
            s = score_waves(est, views, rng, args.tta)
            mae, flag = np.asarray(s["model"]), np.asarray(s["flagged"]) > 0
            split = [float(mae[flag].mean()) if flag.any() else None,
                     float(mae[~flag].mean()) if (~flag).any() else None]
            results[name] = {"n": len(views), "mae_mean": float(np.mean(s["model"])),
                             "mae_sd": float(np.std(s["model"], ddof=1)) if len(views) > 1 else 0.0,
                             "random_mae": float(np.mean(s["random components"])),
                             "random_phase_mae": float(np.mean(s["random phase"])),
                             "zero_phase_mae": float(np.mean(s["zero phase"])),
                             "mean_confidence": float(np.mean(s["confidence"])),
                             "flagged_fraction": float(np.mean(s["flagged"])),
                             "flagged_mae": split[0], "unflagged_mae": split[1],
                             "per_wave_confidence": s["confidence"], "per_wave_flagged": s["flagged"],
                             "materials": sorted({Path(p.material).name for p in params}),
                             "per_wave_mae": s["model"]}
            t.add(name, len(views), mean_sd(s["model"]), mean_sd(s["random components"]),
                  mean_sd(s["random phase"]), mean_sd(s["zero phase"]), f"{np.mean(s['confidence']):.2f}",
                  f"{np.mean(s['flagged']):.0%}",
                  " / ".join("-" if v is None else f"{v:.3f}" for v in split))
    t.notes.append(f"Expected MAE of random components U(-1,1): {RANDOM_MAE} for any phase distribution; "
                   "random unit phasors: 8/pi^2 = 0.811 for uniform phases. Sets are cumulative (chapter 7, "
                   "table 2): 3 = unseen materials" + (f" from {args.structures}" if structures else
                                                       " (SPLITS['test'])") + f"; seed {seed}.")
    report.table(t)
    last = results[SET_NAMES[-1]]
    report.data.update({"model": est.name, "n": last["n"], "mae_mean": last["mae_mean"], "mae_sd": last["mae_sd"],
                        "random_mae": last["random_mae"], "zero_phase_mae": last["zero_phase_mae"],
                        "seed": seed, "sets": results})
    return 0


class _ExitWaveBench(BenchSpec):
    """``--json`` without a file prints the JSON object (and nothing else) on stdout."""

    def parser(self):
        p = super().parser()
        for a in p._actions:
            if a.dest == "json":
                a.nargs, a.const = "?", Path("-")
                a.help = "print the results as one JSON object (or write them to this file)"
        return p

    def main(self, argv=None, *, report: Report | None = None) -> int:
        a = self.parser().parse_args(argv)
        if a.json is None or str(a.json) != "-":
            return super().main(argv, report=report)
        from ...errors import ScopenetError

        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        rep = report or Report(self.name, echo=False)
        a._quiet = True
        try:
            rc = int(self.run(a, rep) or 0)
        except ScopenetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from .._bench import _jsonable

        print(json.dumps(_jsonable({"bench": self.name, **rep.data})), flush=True)
        if a.out is not None:
            rep.write(a.out, None)
        return rc


SPEC = _ExitWaveBench("exitwave", __doc__.split("\n\n")[0], run, _add_options,
                      quick="3 waves per validation set", seed=0, threads=1)


def main(argv=None) -> int:
    return SPEC.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
