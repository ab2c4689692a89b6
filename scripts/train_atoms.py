"""Train the shipped atom finder ``atoms-default`` (CPU, resumable), from ``recipes/atoms-default.yaml``::

    OMP_NUM_THREADS=1 nice .venv/bin/python scripts/train_atoms.py [--resume] [--budget 2400] [--install]

The run (:mod:`scopenet.tasks.atoms.train`) writes ``<workdir>/model.*``; the uncertainty calibration
(``sigma_scale``) is then measured on simulated *training-setting* images
(:func:`scopenet.tasks.atoms.bench.calibrate`) and stored in the model's config. ``--install`` copies the
result to ``src/scopenet/weights/atoms-default.*`` (check it first with
``scopenet bench atoms --model <workdir>/model``).

A run that continues the shipped model (``init_from``, e.g. ``recipes/atoms-v2.yaml``) is turned into a
candidate with the shipped post-processing settings and calibrated on training crystals::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_atoms.py --candidate runs/atoms-v2 --out runs/atoms-v2/cand-b \
        [--choose-threshold]

then judged with ``scopenet bench atoms --model runs/atoms-v2/cand-b`` and ``scopenet bench atoms-abtem --model ...``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from scopenet.tasks.atoms.config import AtomsTrainConfig
    from scopenet.tasks.atoms.train import main as train_main

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "atoms-default.yaml"))
    p.add_argument("--budget", type=float, default=None, help="training seconds (default: the recipe's)")
    p.add_argument("--workdir", default=None, help="default: the recipe's")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-calibrate", action="store_true")
    p.add_argument("--install", action="store_true")
    p.add_argument("--candidate", default=None, help="a finished run's folder: build a calibrated candidate")
    p.add_argument("--out", default=None, help="with --candidate: the candidate's file stem")
    p.add_argument("--choose-threshold", action="store_true", help="with --candidate: re-choose the threshold")
    p.add_argument("--bin-above", type=float, default=None, help="with --candidate: bin_above_px")
    a = p.parse_args(argv)
    if a.candidate:
        out = a.out or str(Path(a.candidate) / "candidate")
        build_candidate(a.candidate, out, choose_threshold=a.choose_threshold, bin_above_px=a.bin_above,
                        calibrate_it=not a.no_calibrate)
        return 0
    cfg = AtomsTrainConfig.from_yaml(a.recipe)
    update = {k: v for k, v in (("time_budget_s", a.budget), ("workdir", a.workdir)) if v is not None}
    cfg = AtomsTrainConfig.model_validate({**cfg.model_dump(), **update}) if update else cfg
    stem = train_main(cfg, resume=a.resume, overwrite=a.overwrite)
    print("saved", stem)
    if stem is None:
        return 0
    if not a.no_calibrate:
        from scopenet.tasks.atoms.bench import calibrate

        print("calibrated", calibrate(stem))
    if a.install:
        install(stem)
    return 0


def build_candidate(run_dir, out, base: str = "default", choose_threshold: bool = False,
                    bin_above_px: float | None = None, calibrate_it: bool = True) -> dict:
    """The network of the run in ``run_dir`` (``model.safetensors``) in the shipped model ``base``'s settings
    (threshold, faint-peak rule, fit windows, tiling; ``bin_above_px`` set, chosen by
    ``scripts/atoms_binning_study.py``), saved at ``out`` and calibrated on training crystals
    (:func:`scopenet.tasks.atoms.bench.calibrate`, 48 images; the threshold re-chosen when
    ``choose_threshold``); returns the calibration."""
    import json

    from safetensors.torch import load_file

    from scopenet.tasks.atoms.bench import calibrate
    from scopenet.tasks.atoms.model import AtomFinder

    run_dir = Path(run_dir)
    est = AtomFinder.pretrained(base)
    est.net_.load_state_dict(load_file(str(run_dir / "model.safetensors")))
    run_card = json.loads((run_dir / "model.json").read_text())
    est.update_card(training=run_card.get("training", {}))
    est.config.bin_above_px = bin_above_px
    est.save(out, overwrite=True)
    if not calibrate_it:
        return {}
    cal = calibrate(out, n=48, choose_threshold=choose_threshold)
    print("candidate", out, "calibrated", cal)
    return cal


def install(stem, name: str = "atoms-default", metrics: dict | None = None, notes: dict | None = None) -> Path:
    """Save the model at ``stem`` as the shipped ``src/scopenet/weights/<name>.*`` (card name ``name``),
    with ``metrics`` (the card's metrics section: headline, command, values) and ``notes`` when given. The
    model it replaces is recorded in ``previous_versions`` with its figures and settings, and the version
    number goes up by one."""
    import json

    from scopenet.tasks.atoms.model import AtomFinder

    est = AtomFinder.load(stem)
    defaults = type(est.config)()
    for k in ("tile", "overlap", "max_direct_pixels"):  # inference settings follow the current defaults
        setattr(est.config, k, getattr(defaults, k))
    est.update_card(description="U-Net heatmap of atomic columns (HAADF-STEM) and surface atoms (SPM), peaks "
                                "refined by 2-D Gaussian fits on the image; trained on simulated lattices",
                    **({"metrics": metrics} if metrics else {}), **({"notes": notes} if notes else {}))
    out = ROOT / "src" / "scopenet" / "weights" / name
    old_card = Path(f"{out}.json")
    if old_card.exists():  # the replaced model's figures and settings stay in the card
        old = json.loads(old_card.read_text())
        tr = old.get("training") or {}
        entry = {"version": old.get("version", 1), "created": old.get("created"), "metrics": old.get("metrics"),
                 "config": old.get("config"), "steps": tr.get("steps"), "time_s": tr.get("time_s"),
                 "data": tr.get("data")}
        est.update_card(version=int(old.get("version", 1)) + 1,
                        previous_versions=list(old.get("previous_versions") or []) + [entry])
    est.save(out, overwrite=True)
    print("installed", out)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
