"""Train the surface-agnostic tip judge (``autopilot-judge``) and validate it surface by surface.

The judge is a small MLP on :func:`scopenet.autopilot.judge.native_tip_features` (line glitches, lattice-peak
sharpness, autocorrelation ghosts, spectral resolution, noise), trained on

- simulated constant-current scans of several surfaces (``simulate.spm.surfaces``: H:Si(100), Au(111),
  Cu(111), HOPG, a random 2-D lattice) imaged with good and bad apexes
  (:func:`~scopenet.simulate.spm.probe.random_bad_apex`) through the autopilot's apex-to-image model,
  with domain randomisation (field of view, pixels, noise, glitch lines: several for unstable or
  adsorbate apexes, at most one for good ones),
- frames of the autopilot's own simulated microscope (:func:`scopenet.autopilot.judge_train.sim_frames`: good
  apexes and random bad ones after random conditioning actions, 8 nm x 64 px frames, the simulator's
  steps and contamination, no added glitch lines; seeds from ``sim_microscope_seed``), counted
  ``sim_microscope_weight`` times: without them the judge learnt "bad = glitch lines" and called the
  simulator's blunt, double and adsorbate tips good (issue 23), and
- optionally the gordon-hsi crowd verdicts on real H:Si(100) (``../shared/data/gordon-hsi``).

The data pieces, the fit (an ensemble of ``ensemble`` MLPs, the Mahalanobis domain model and the k-NN
familiarity rule) and the feature cache live in :mod:`scopenet.autopilot.judge_train`.

Validation here (nothing looks at the hand-labelled fixture crops; they are scored by
``scopenet bench autopilot --real --judge autopilot-judge``):

- gordon-hsi, session-grouped 5-fold cross-validation of the shipped recipe (out-of-fold accuracy);
- the simulated microscope's frames, 5-fold cross-validation.

Leave one surface family out (re-fitted without it, scored on its real and simulated images, with and
without the familiarity rule): ``scopenet bench autopilot --episodes 0 --loso``.

Usage::

    python scripts/train_autopilot_judge.py --config recipes/autopilot-judge/tip-judge.yaml \
        -o src/scopenet/weights/autopilot-judge.json [--overwrite]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from scopenet.autopilot.judge import TIP_FEATURE_NAMES  # noqa: E402
from scopenet.autopilot.judge_train import DEFAULTS, fit, training_sources  # noqa: E402


def predict(params: dict, F: np.ndarray) -> np.ndarray:
    from scopenet.autopilot.judge import TipJudge

    return TipJudge(params).proba(F)


def acc_report(p: np.ndarray, y: np.ndarray, band: float) -> dict:
    judged = np.abs(p - 0.5) >= band
    pr = p >= 0.5
    return {"images": int(len(y)), "good_fraction": round(float(y.mean()), 4),
            "majority_accuracy": round(float(max(y.mean(), 1 - y.mean())), 4),
            "accuracy_all": round(float((pr == y).mean()), 4),
            "coverage": round(float(judged.mean()), 4),
            "accuracy_judged": round(float((pr == y)[judged].mean()), 4) if judged.any() else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=None, help="YAML recipe (keys of DEFAULTS)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="judge parameters + card (JSON)")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--cache", type=Path, default=Path("runs/autopilot-judge"),
                    help="folder of cached feature rows (keyed by the recipe)")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    if a.out.exists() and not a.overwrite:
        raise SystemExit(f"{a.out} exists: pass --overwrite")
    cfg = dict(DEFAULTS)
    if a.config:
        cfg.update(yaml.safe_load(a.config.read_text()) or {})
    torch.set_num_threads(1)
    t0 = time.time()
    surfaces = list(cfg["surfaces"])
    src = training_sources(cfg, a.shared, a.cache)
    Fs = np.concatenate([src[f"sim_{s}"]["F"] for s in surfaces])
    ys = np.concatenate([src[f"sim_{s}"]["y"] for s in surfaces])
    empty = {"F": np.zeros((0, len(TIP_FEATURE_NAMES)), np.float32), "y": np.zeros(0, bool), "groups": np.zeros(0, int)}
    Fh, yh, gh = (src.get("gordon", empty)[k] for k in ("F", "y", "groups"))
    Fm, ym = (src.get("simmic", empty)[k] for k in ("F", "y"))
    wm = int(cfg["sim_microscope_weight"])
    FmW, ymW = np.repeat(Fm, wm, 0), np.repeat(ym, wm)
    t_data = time.time() - t0
    print(f"{len(Fs)} simulated, {len(Fm)} simulated-microscope, {len(Fh)} gordon-hsi feature rows ({t_data:.0f} s)")
    use_hsi = bool(cfg["use_hsi"]) and len(Fh)
    band = float(cfg["band"])
    val: dict = {}
    if len(Fh):
        # session-grouped 5-fold CV of the shipped recipe
        folds = np.arange(gh.max() + 1) % 5
        rng = np.random.default_rng(cfg["seed"])
        folds = rng.permutation(folds)[gh]
        p = np.zeros(len(Fh))
        for f in range(5):
            te = folds == f
            F = np.concatenate([Fs, FmW, Fh[~te]]) if use_hsi else np.concatenate([Fs, FmW])
            y = np.concatenate([ys, ymW, yh[~te]]) if use_hsi else np.concatenate([ys, ymW])
            pm = fit(F, y, cfg, cfg["seed"] + f)
            p[te] = predict(pm, Fh[te])
        val["real_hsi_cv5_sessions"] = acc_report(p, yh, band)
        print(f"  real H:Si, 5-fold session CV: {val['real_hsi_cv5_sessions']}")
    if len(Fm):
        # the simulated microscope's frames, 5-fold CV (frames are independent microscopes)
        folds = np.random.default_rng(cfg["seed"]).permutation(np.arange(len(Fm)) % 5)
        p = np.zeros(len(Fm))
        for f in range(5):
            te = folds == f
            Fw, yw = np.repeat(Fm[~te], wm, 0), np.repeat(ym[~te], wm)
            pm = fit(np.concatenate([Fs, Fw] + ([Fh] if use_hsi else [])),
                     np.concatenate([ys, yw] + ([yh] if use_hsi else [])), cfg, cfg["seed"] + f)
            p[te] = predict(pm, Fm[te])
        val["sim_microscope_cv5"] = acc_report(p, ym, band)
        print(f"  simulated microscope, 5-fold CV: {val['sim_microscope_cv5']}")
    t1 = time.time()
    F = np.concatenate([Fs, FmW, Fh]) if use_hsi else np.concatenate([Fs, FmW])
    y = np.concatenate([ys, ymW, yh]) if use_hsi else np.concatenate([ys, ymW])
    params = fit(F, y, cfg, cfg["seed"])
    t_fit = time.time() - t1
    card = {
        "name": a.out.stem, "task": "autopilot-judge", "version": 3,
        "description": "surface-agnostic STM tip judge: an MLP on tip_features (line glitches, lattice-peak "
                       "sharpness, autocorrelation ghosts, spectral resolution, noise) -> good-tip probability, "
                       "(the mean of an ensemble of MLPs fitted with different seeds), with unknown for blank, "
                       "noise-only, coarse, out-of-domain (Mahalanobis) or unfamiliar (k-NN distance) images and a "
                       "low-confidence band",
        "training": {"config": cfg, "script": "scripts/train_autopilot_judge.py",
                     "data": f"{len(Fs)} simulated scans ({', '.join(surfaces)}; {cfg['sim_per_surface']} each, "
                             f"seed {cfg['seed']}) + {len(Fm)} simulated-microscope frames (sim_frames, seeds "
                             f"{cfg['sim_microscope_seed']}.., x{wm})" + (f" + {len(Fh)} gordon-hsi H:Si(100) images with the crowd "
                                                        "verdict" if use_hsi else ""),
                     "time_s": round(time.time() - t0, 1), "data_time_s": round(t_data, 1),
                     "fit_time_s": round(t_fit, 2), "hardware": f"1 CPU thread, {platform.machine()}"},
        "metrics": {"validation": val},
        "judge": params,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(card, indent=1))
    tmp.replace(a.out)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e3:.0f} kB) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
