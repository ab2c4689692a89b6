#!/usr/bin/env python
"""Train the default sparse-scan completion model: ``python scripts/train_inpaint.py [config.yaml] [--no-resume]``."""
import sys

from scopenet.tasks.inpaint.train import main

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    stem = main(args[0] if args else None, resume="--no-resume" not in sys.argv)
    print(f"saved {stem}.safetensors")
