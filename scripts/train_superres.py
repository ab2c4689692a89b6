"""Train the shipped super-resolution models ``superres-spm-x4`` and ``superres-stem-x4`` (CPU, resumable).

A thin wrapper of ``scopenet train superres --config recipes/superres-<domain>-x4.yaml`` (the recipes hold
the data, network and budget; :mod:`scopenet.tasks.superres.train` the run)::

    nice .venv/bin/python scripts/train_superres.py --domain spm [--resume] [--budget 840] [--install]
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/train_superres.py --domain stem --budget 900

``--install`` copies the result to ``src/scopenet/weights/superres-<domain>-x4.*`` (check it first with
``scopenet bench superres``).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from scopenet.tasks.runconfig import read_run_config
    from scopenet.tasks.superres.train import main as train_main

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domain", choices=("spm", "stem"), default="spm")
    p.add_argument("--budget", type=float, default=None, help="training seconds (default: the recipe's)")
    p.add_argument("--workdir", default=None, help="default: the recipe's")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--install", action="store_true")
    a = p.parse_args(argv)
    cfg = read_run_config(ROOT / "recipes" / f"superres-{a.domain}-x4.yaml", task="superres")
    update = {k: v for k, v in (("time_budget_s", a.budget), ("workdir", a.workdir)) if v is not None}
    stem = train_main(cfg.model_copy(update=update) if update else cfg, resume=a.resume)
    print("saved", stem)
    if a.install and stem is not None:
        for ext in (".safetensors", ".json"):
            shutil.copyfile(f"{stem}{ext}", ROOT / "src" / "scopenet" / "weights" / f"superres-{a.domain}-x4{ext}")
        print("installed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
