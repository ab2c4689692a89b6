#!/usr/bin/env python
"""Train the adaptive-scan models: ``python scripts/train_adaptive_scan.py [recipe.yaml ...] [--no-resume]``.

Without arguments it runs the CPU experiment in order (each stage is ``scopenet train adaptive-scan
--config recipes/adaptive-scan-<stage>.yaml --resume``)::

    spiral    the fixed-spiral baseline generator (coverage 1/23.04)
    grid      the fixed-grid baseline generator
    free      first attempt: generator from the spiral's, actor cloned from a spiral, then free RDPG
    chapter   Ede's chapter as written (everything from scratch)
    spiral2   the spiral generator trained as long as the adaptive ones that start from it (fair baseline)
    default   the shipped adaptive scanner: "free" plus a behaviour-cloning term and a lower actor rate

then ``runs/adaptive-scan-<stage>/model.*`` were copied to ``src/scopenet/weights/adaptive-scan-<stage>.*``
(``scopenet bench adaptive-scan`` fills in the cards' metrics). The full-size run for a GPU is
``recipes/adaptive-scan-gpu.yaml``.
"""
import sys
import time

from scopenet.tasks.adaptive_scan.train import main

STAGES = ["spiral", "grid", "free", "chapter", "spiral2", "default"]

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    restart = "--no-resume" in sys.argv
    recipes = args or [f"recipes/adaptive-scan-{s}.yaml" for s in STAGES]
    for r in recipes:
        t0 = time.time()
        stem = main(r, resume=not restart, overwrite=restart, progress=False)
        print(f"{r}: saved {stem}.safetensors in {time.time() - t0:.0f} s", flush=True)
