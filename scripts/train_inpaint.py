#!/usr/bin/env python
"""Train a sparse-scan completion model: ``python scripts/train_inpaint.py [config.yaml] [--no-resume]``.

A thin wrapper of ``scopenet train inpaint --config config.yaml --resume`` (also a launcher for ``torchrun``).
The shipped ``inpaint-default`` was made in three stages (its model card lists them)::

    scopenet train inpaint --config recipes/inpaint-default.stage1.yaml
    scopenet train inpaint --config recipes/inpaint-default.stage2.yaml
    scopenet train inpaint --config recipes/inpaint-default.yaml

then ``runs/inpaint-nc2/model.*`` was copied to ``src/scopenet/weights/inpaint-default.*`` with the card filled in.
"""
import sys

from scopenet.tasks.inpaint.train import main

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    restart = "--no-resume" in sys.argv  # start over, replacing the workdir's checkpoint
    stem = main(args[0] if args else None, resume=not restart, overwrite=restart)
    if stem is not None:  # None on the other processes of a DDP run
        print(f"saved {stem}.safetensors")
