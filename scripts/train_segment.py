"""Train the shipped segmentation model ``segment-particles`` (CPU, resumable).

A thin wrapper of ``scopenet train segment --config recipes/segment-particles.yaml`` (the recipe holds the
data, network and budget; :mod:`scopenet.tasks.segment.train` the run)::

    OMP_NUM_THREADS=1 nohup .venv/bin/python scripts/train_segment.py [--resume] [--budget 2400] [--install] &

``--install`` copies the result to ``src/scopenet/weights/segment-particles.*`` (check it first with
``scopenet bench segment --model runs/segment-particles/model``).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from scopenet.tasks.segment.config import SegmentTrainConfig
    from scopenet.tasks.segment.train import main as train_main

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="segment-particles")
    p.add_argument("--budget", type=float, default=None, help="training seconds (default: the recipe's)")
    p.add_argument("--workdir", default=None, help="default: the recipe's")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="start the run over in an existing workdir")
    p.add_argument("--install", action="store_true")
    a = p.parse_args(argv)
    cfg = SegmentTrainConfig.from_yaml(ROOT / "recipes" / f"{a.recipe}.yaml")
    update = {k: v for k, v in (("time_budget_s", a.budget), ("workdir", a.workdir)) if v is not None}
    stem = train_main(cfg.model_copy(update=update) if update else cfg, resume=a.resume, overwrite=a.overwrite)
    print("saved", stem)
    if a.install and stem is not None:
        for ext in (".safetensors", ".json"):
            shutil.copyfile(f"{stem}{ext}", ROOT / "src" / "scopenet" / "weights" / f"{a.recipe}{ext}")
        print("installed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
