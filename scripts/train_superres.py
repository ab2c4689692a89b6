"""Train the shipped SPM super-resolution model ``superres-spm-x4`` (CPU, resumable).

Training data: simulated SPM images (``simulate_batch(seed=1)``, 128x128, [0, 1]) plus real
gordon-hsi STM images from the sessions outside the held-out fold. Multi-scale (x2, x4) training on
64x64 patches, MSE on per-patch [0, 1] intensities. A checkpoint is written every ``--ckpt-every``
steps to ``--workdir`` and picked up again on restart.

    nice .venv/bin/python scripts/train_superres.py --budget 840 --out src/scopenet/weights/superres-spm-x4
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from scopenet.tasks.inpaint import bench_superres as B
from scopenet.tasks.inpaint.superres import VDSR, SuperResolver

TRAIN_SIM_SEED = 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n-sim", type=int, default=1200)
    p.add_argument("--n-real", type=int, default=400)
    p.add_argument("--budget", type=float, default=840.0, help="training seconds (this run)")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--workdir", default="runs/superres")
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--out", default="src/scopenet/weights/superres-spm-x4")
    p.add_argument("--n-eval-sim", type=int, default=60)
    p.add_argument("--n-eval-real", type=int, default=120)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    wd = Path(a.workdir)
    wd.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    sims = B.sim_images(a.n_sim, seed=TRAIN_SIM_SEED)
    real_imgs, tr, _te = B.real_split()
    pick = np.sort(np.random.default_rng(0).permutation(tr)[:a.n_real])
    pool = np.concatenate([sims, real_imgs[pick]])
    print(f"data: {len(sims)} sim + {len(pick)} real train images ({time.time() - t0:.0f}s)", flush=True)

    net = VDSR(a.layers, a.channels)
    ckpt = wd / "last.pt"
    done, elapsed = 0, 0.0
    if ckpt.exists():
        st = torch.load(ckpt, map_location="cpu")
        net.load_state_dict(st["net"])
        done, elapsed = st["step"], st["elapsed"]
        print(f"resumed at step {done} ({elapsed:.0f}s trained)", flush=True)
    est = SuperResolver(net)
    t_start = time.time()
    losses: list[float] = []

    def cb(step, loss, model):
        losses.append(loss)
        s = done + step + 1
        if s % a.ckpt_every == 0:
            torch.save({"net": model.state_dict(), "step": s, "elapsed": elapsed + time.time() - t_start},
                       wd / "tmp.pt")
            (wd / "tmp.pt").replace(ckpt)
            print(f"step {s}  mse(last 100) {np.mean(losses[-100:]):.3e}  {time.time() - t_start:.0f}s", flush=True)

    # a fresh seed per resume so a restart does not replay the same batches
    est.fit(pool, factors=(2, 4), steps=a.steps - done, batch_size=a.batch, patch=a.patch,
            lr=a.lr if done == 0 else a.lr * 0.3, seed=1000 + done, time_budget_s=a.budget, callback=cb)
    steps = done + len(est.history_)
    train_s = elapsed + time.time() - t_start
    torch.save({"net": net.state_dict(), "step": steps, "elapsed": train_s}, ckpt)
    print(f"trained {steps} steps, {train_s:.0f}s", flush=True)

    metrics = {}
    fine = B.sim_images(a.n_eval_sim)
    for f in (4, 2):
        metrics[f"sim_x{f}"] = B.evaluate(est, fine, f)
    real_held = real_imgs[np.sort(np.random.default_rng(0).permutation(_te)[:a.n_eval_real])]
    for f in (4, 2):
        metrics[f"real_heldout_x{f}"] = B.evaluate(est, real_held, f)
    for k, v in metrics.items():
        print(k, json.dumps({m: round(r["rms"], 5) for m, r in v.items()}), flush=True)
    card = {
        "name": Path(a.out).name, "task": "inpaint", "kind": "super-resolution",
        "input_shape": [1, 1, 128, 128],
        "description": "VDSR-style residual CNN on the bicubic upsample of a coarse (block-mean) SPM scan; "
                       "trained at x2 and x4 (32->128, 64->128).",
        "training_data": f"{len(sims)} simulated SPM images (scopenet.simulate.spm.simulate_batch seed "
                         f"{TRAIN_SIM_SEED}, 128 px, min-max [0,1]) + {len(pick)} gordon-hsi STM images from "
                         f"sessions outside session_folds(k=5, seed=0) fold {B.HOLDOUT_FOLD}",
        "config": {"layers": a.layers, "channels": a.channels, "batch": a.batch, "patch": a.patch, "lr": a.lr,
                   "factors": [2, 4], "loss": "MSE on per-patch [0,1] intensities", "steps": steps},
        "training_time_s": round(train_s, 1),
        "metrics": {k: {m: {q: round(x, 5) for q, x in r.items()} for m, r in v.items()} for k, v in metrics.items()},
        "metrics_note": f"held-out: {len(fine)} sims seed {B.EVAL_SIM_SEED}; {len(real_held)} gordon-hsi images "
                        f"of fold {B.HOLDOUT_FOLD} sessions; RMS on [0,1] fine images",
    }
    est.card = card
    est.save(a.out, overwrite=True)
    print("saved", a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
