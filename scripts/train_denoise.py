#!/usr/bin/env python
"""Train the shipped ``denoise-default`` model (about 38 min on 2 CPU cores) and install it.

    nohup nice python scripts/train_denoise.py --out runs &        # start (or --resume to continue)
    python scripts/train_denoise.py --out runs --resume --install  # finish and copy into weights/

A thin wrapper of ``scopenet train denoise --config recipes/denoise-default.yaml``: the
run folder ``<out>/denoise-default`` holds run.yaml, last.ckpt (resumable), log.csv and the saved model.
``--resume --minutes M`` with a larger M continues a finished run: the cosine learning-rate schedule is
re-evaluated over the new budget (so the rate restarts part-way up and decays again). Only ``--install``
a result after checking it with ``scopenet bench denoise --model default,<run>/denoise-default/model``.

``--config recipes/denoise-physical.yaml`` trains the physical-degradation candidate instead (run folder
``<out>/<workdir name of the recipe>``); check it with ``--degradation physical`` as well before
``--install`` (which then copies it to ``weights/denoise-default.*`` only with ``--install-as default``,
else to ``weights/denoise-physical.*``).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main(argv=None) -> int:
    from scopenet.tasks.denoise.train import default_config, main as train_main

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs"))
    p.add_argument("--minutes", type=float, default=None, help="time budget (default 38)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--install", action="store_true", help="copy the result to src/scopenet/weights/denoise-default.*")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--config", type=Path, default=None, help="a recipe YAML instead of the default configuration")
    p.add_argument("--install-as", default=None, help="installed name: denoise-<NAME> (default: from the recipe)")
    a = p.parse_args(argv)
    if a.config is not None:
        from scopenet.tasks.denoise.config import DenoiseTrainConfig

        cfg = DenoiseTrainConfig.from_yaml(a.config)
        name = Path(cfg.workdir or "denoise-run").name
    else:
        cfg, name = default_config(), "denoise-default"
    cfg = cfg.model_copy(update={"workdir": a.out / name})
    if a.minutes is not None:
        cfg = cfg.model_copy(update={"time_budget_s": a.minutes * 60.0})
    run = train_main(cfg, resume=a.resume, progress=not a.no_progress)
    print(f"run folder: {run}")
    if a.install:
        from scopenet.weights import SHIPPED_DIR

        target = f"denoise-{a.install_as}" if a.install_as else name
        for ext in (".safetensors", ".json"):
            shutil.copyfile(run / f"model{ext}", SHIPPED_DIR / f"{target}{ext}")
        print(f"installed into {SHIPPED_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
