#!/usr/bin/env python
"""Train the default sparse-scan completion model: ``python scripts/train_inpaint.py [config.yaml] [--no-resume]``.

The shipped ``inpaint-default`` was made in three stages (its model card lists them)::

    python scripts/train_inpaint.py scripts/configs/inpaint-default-stage1.yaml
    python scripts/train_inpaint.py scripts/configs/inpaint-default-stage2.yaml
    python scripts/train_inpaint.py scripts/configs/inpaint-default-stage3.yaml

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
