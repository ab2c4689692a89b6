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
    a = p.parse_args(argv)
    cfg = ExitWaveTrainConfig.from_yaml(ROOT / "recipes" / f"exitwave-{a.recipe}.yaml")
    update = {k: v for k, v in (("time_budget_s", a.budget), ("workdir", a.workdir), ("data", a.data))
              if v is not None}
    if update:
        cfg = ExitWaveTrainConfig.model_validate({**cfg.model_dump(), **update})
    stem = train_main(cfg, resume=a.resume, overwrite=a.overwrite)
    print("saved", stem)
    if a.install and stem is not None:
        for ext in (".safetensors", ".json"):
            shutil.copyfile(f"{stem}{ext}", ROOT / "src" / "scopenet" / "weights" / f"exitwave-{a.recipe}{ext}")
        print("installed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
