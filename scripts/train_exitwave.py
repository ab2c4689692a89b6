"""Train the shipped exit-wave models ``exitwave-restricted`` and ``exitwave-srtio3`` (CPU, resumable).

The recipes (``recipes/exitwave-<recipe>.yaml``) hold the data files, network and budget;
:mod:`scopenet.tasks.exitwave.train` the run. Make the data first with
``scripts/make_exitwave_data.py --preset shipped``::

    OMP_NUM_THREADS=1 nice .venv/bin/python scripts/train_exitwave.py --recipe restricted [--resume] [--install]
    OMP_NUM_THREADS=1 nice .venv/bin/python scripts/train_exitwave.py --recipe srtio3 --budget 1200

``--install`` copies the result to ``src/scopenet/weights/exitwave-<recipe>.*`` (check it first with
``scopenet bench exitwave --model <workdir>/exitwave-<recipe>``).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from scopenet.tasks.exitwave.config import ExitWaveTrainConfig
    from scopenet.tasks.exitwave.train import main as train_main

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=("restricted", "srtio3"), default="restricted")
    p.add_argument("--budget", type=float, default=None, help="training seconds (default: the recipe's)")
    p.add_argument("--workdir", default=None, help="default: the recipe's")
    p.add_argument("--data", nargs="*", default=None, help="data files (default: the recipe's)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--install", action="store_true")
    p.add_argument("--install-only", metavar="STEM", default=None,
                   help="install an already trained model (path stem) instead of training")
    p.add_argument("--bench-json", type=Path, default=None,
                   help="with --install/--install-only: `scopenet bench exitwave --json` output of the model, "
                        "recorded in its card's metrics")
    a = p.parse_args(argv)
    if a.install_only:
        install(a.install_only, a.recipe, a.bench_json)
        return 0
    cfg = ExitWaveTrainConfig.from_yaml(ROOT / "recipes" / f"exitwave-{a.recipe}.yaml")
    update = {k: v for k, v in (("time_budget_s", a.budget), ("workdir", a.workdir), ("data", a.data))
              if v is not None}
    if update:
        cfg = ExitWaveTrainConfig.model_validate({**cfg.model_dump(), **update})
    stem = train_main(cfg, resume=a.resume, overwrite=a.overwrite)
    print("saved", stem)
    if a.install and stem is not None:
        install(stem, a.recipe, a.bench_json)
    return 0


def install(stem, recipe: str, bench_json: Path | None = None) -> None:
    """Copy a trained model to ``src/scopenet/weights/exitwave-<recipe>.*``, with its bench figures."""
    import json

    from scopenet.tasks.exitwave import ExitWaveEstimator

    from scopenet.tasks.exitwave.config import ExitWaveTrainConfig
    from scopenet.tasks.exitwave.train import calibrate, load_pool

    est = ExitWaveEstimator.load(stem)
    cfg = ExitWaveTrainConfig.from_yaml(ROOT / "recipes" / f"exitwave-{recipe}.yaml")
    if all(Path(p).exists() for p in cfg.data):  # the unfamiliar-input thresholds, from the training waves
        pool = load_pool([str(p) for p in cfg.data])
        est.config = est.config.model_copy(update=calibrate(est, pool, cfg.crop, seed=cfg.seed))
    if bench_json is not None:
        b = json.loads(Path(bench_json).read_text())
        flag = "" if recipe == "restricted" else " --model single"
        values = {f"{k} mae": [round(v["mae_mean"], 4), round(v["mae_sd"], 4)] for k, v in b["sets"].items()}
        values.update(random_mae=round(b["random_mae"], 4), zero_phase_mae=round(b["zero_phase_mae"], 4), n=b["n"])
        est.update_card(metrics={"values": values, "command": f"scopenet bench exitwave{flag} --n {b['n']} "
                                                               f"--seed {b['seed']}",
                                 "headline": {"label": "phase MAE, unseen materials", "value": round(b["mae_mean"], 3)}})
    name = f"exitwave-{recipe}"
    dest = ROOT / "src" / "scopenet" / "weights" / name
    tmp = Path(f"/tmp/{name}")
    est.save(tmp, overwrite=True)
    for ext in (".safetensors", ".json"):
        shutil.copyfile(f"{tmp}{ext}", f"{dest}{ext}")
    print("installed", dest)


if __name__ == "__main__":
    raise SystemExit(main())
