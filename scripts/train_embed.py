"""Train the shipped embedding VAE ``embed-default`` (CPU, resumable).

The recipe ``recipes/embed-default.yaml`` holds the data, network and budget;
:mod:`scopenet.tasks.embed.train` the run::

    OMP_NUM_THREADS=1 nohup .venv/bin/python scripts/train_embed.py [--resume] [--budget 1980] &
    .venv/bin/python scripts/train_embed.py --recipe recipes/embed-kl.yaml     # the KL-VAE for comparison

``--install`` copies ``<workdir>/model.*`` to ``src/scopenet/weights/<name>.*`` (check it first with
``scopenet bench embed --model <workdir>/model``).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from scopenet.tasks.embed.config import EmbedTrainConfig
    from scopenet.tasks.embed.train import main as train_main

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "embed-default.yaml"))
    p.add_argument("--budget", type=float, default=None, help="training seconds (default: the recipe's)")
    p.add_argument("--workdir", default=None, help="default: the recipe's")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="start the workdir's run over")
    p.add_argument("--install", action="store_true")
    a = p.parse_args(argv)
    cfg = EmbedTrainConfig.from_yaml(a.recipe)
    update = {k: v for k, v in (("time_budget_s", a.budget), ("workdir", a.workdir)) if v is not None}
    if update:
        cfg = EmbedTrainConfig.model_validate({**cfg.model_dump(), **update})
    stem = train_main(cfg, resume=a.resume, overwrite=a.overwrite)
    print("saved", stem, flush=True)
    if a.install and stem is not None:
        name = Path(a.recipe).stem
        for ext in (".safetensors", ".json"):
            shutil.copyfile(f"{stem}{ext}", ROOT / "src" / "scopenet" / "weights" / f"{name}{ext}")
        print("installed", name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
