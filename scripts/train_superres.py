"""Train the shipped super-resolution models ``superres-spm-x4`` and ``superres-stem-x4`` (CPU, resumable).

``--domain spm`` (default): simulated SPM images (``simulate_batch(seed=1)``, 128x128, [0, 1]) plus
real gordon-hsi STM images from the sessions outside the held-out fold; coarse scans are block means.
Multi-scale (x2, x4) training on 64x64 patches, MSE on per-patch [0, 1] intensities.

``--domain stem``: simulated EM micrographs (``scopenet.simulate.em.api.simulate_batch(kind="mixed")``,
256x256, seed 11) plus 256x256 tiles of the em-real TRAIN split (never the held-out split, the test
set of every EM benchmark); coarse scans are decimations ``fine[::f, ::f]`` (STEM sub-lattice
scans); x2 and x4 on 96x96 patches.

A checkpoint is written every ``--ckpt-every`` steps to ``--workdir`` and picked up again on restart.

    nice .venv/bin/python scripts/train_superres.py --budget 840 --out src/scopenet/weights/superres-spm-x4
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/train_superres.py --domain stem --budget 900
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from scopenet.tasks.superres import bench as B
from scopenet.tasks.superres import VDSR, SuperResolver

TRAIN_SIM_SEED = 1
STEM_TRAIN_SIM_SEED = 11  # the STEM bench's simulated images use STEM_EVAL_SIM_SEED
STEM_TILE = 256


def real_em_tiles(tile: int = STEM_TILE) -> tuple[np.ndarray, list[str]]:
    """Non-overlapping ``tile x tile`` tiles of the em-real TRAIN split (each image in [0, 1], 0.01/99.99
    percentile stretch, as :func:`load_em_real`), with the ids used. Never reads the held-out split."""
    from scopenet.training.em_real import HELD_OUT, load_em_real

    tiles, ids = [], []
    for r in load_em_real(split="train"):
        assert r.id not in HELD_OUT
        a = r.image
        for y in range(0, a.shape[0] - tile + 1, tile):
            for x in range(0, a.shape[1] - tile + 1, tile):
                tiles.append(a[y:y + tile, x:x + tile])
        ids.append(r.id)
    return np.stack(tiles).astype(np.float32), ids


def stem_pool(n_sim: int) -> tuple[np.ndarray, str]:
    """Training images for the STEM model and a description for the card."""
    from scopenet.simulate.em.api import simulate_batch

    sims = B.unit(simulate_batch(n_sim, STEM_TILE, seed=STEM_TRAIN_SIM_SEED, kind="mixed")["images"])
    real, ids = real_em_tiles()
    desc = (f"{len(sims)} simulated EM micrographs (scopenet.simulate.em.api.simulate_batch kind='mixed', seed "
            f"{STEM_TRAIN_SIM_SEED}, {STEM_TILE} px, min-max [0,1]) + {len(real)} non-overlapping {STEM_TILE} px tiles "
            f"of the {len(ids)} em-real train-split images (scopenet.training.em_real.load_em_real(split='train'), "
            "0.01/99.99 percentile stretch); no held-out image")
    return np.concatenate([sims, real]), desc


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--domain", choices=("spm", "stem"), default="spm",
                   help="spm: block-mean coarse scans (default); stem: decimated sub-lattice scans of EM images")
    p.add_argument("--n-sim", type=int, default=None, help="simulated images (default 1200 spm, 600 stem)")
    p.add_argument("--n-real", type=int, default=400, help="gordon-hsi images (spm only; stem uses all em-real train)")
    p.add_argument("--budget", type=float, default=840.0, help="training seconds (this run)")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=None, help="fine patch px (default 64 spm, 96 stem)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--workdir", default=None, help="default runs/superres (spm), runs/superres-stem (stem)")
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--out", default=None, help="default src/scopenet/weights/superres-<domain>-x4")
    p.add_argument("--n-eval-sim", type=int, default=60)
    p.add_argument("--n-eval-real", type=int, default=120)
    a = p.parse_args(argv)
    stem = a.domain == "stem"
    a.n_sim = a.n_sim if a.n_sim is not None else (600 if stem else 1200)
    a.patch = a.patch if a.patch is not None else (96 if stem else 64)
    a.workdir = a.workdir or ("runs/superres-stem" if stem else "runs/superres")
    a.out = a.out or f"src/scopenet/weights/superres-{a.domain}-x4"
    torch.set_num_threads(1)
    wd = Path(a.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    if stem:
        return main_stem(a, wd)

    t0 = time.time()
    sims = B.sim_images(a.n_sim, seed=TRAIN_SIM_SEED)
    real_imgs, tr, _te = B.real_split()
    pick = np.sort(np.random.default_rng(0).permutation(tr)[:a.n_real])
    pool = np.concatenate([sims, real_imgs[pick]])
    print(f"data: {len(sims)} sim + {len(pick)} real train images ({time.time() - t0:.0f}s)", flush=True)

    est, steps, train_s = _train(a, wd, pool, "block_mean")

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


def _train(a, wd: Path, pool: np.ndarray, sampling: str) -> tuple[SuperResolver, int, float]:
    """Resumable training loop shared by both domains; returns the estimator, steps and seconds."""
    net = VDSR(a.layers, a.channels)
    ckpt = wd / "last.pt"
    done, elapsed = 0, 0.0
    if ckpt.exists():
        st = torch.load(ckpt, map_location="cpu")
        net.load_state_dict(st["net"])
        done, elapsed = st["step"], st["elapsed"]
        print(f"resumed at step {done} ({elapsed:.0f}s trained)", flush=True)
    est = SuperResolver(net, sampling=sampling)
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

    est.fit(pool, factors=(2, 4), steps=a.steps - done, batch_size=a.batch, patch=a.patch,
            lr=a.lr if done == 0 else a.lr * 0.3, seed=1000 + done, time_budget_s=a.budget, callback=cb)
    steps = done + len(est.history_)
    train_s = elapsed + time.time() - t_start
    torch.save({"net": net.state_dict(), "step": steps, "elapsed": train_s}, ckpt)
    print(f"trained {steps} steps, {train_s:.0f}s", flush=True)
    return est, steps, train_s


def main_stem(a, wd: Path) -> int:
    """Train ``superres-stem-x4`` (decimation sampling) and write it with its benchmark in the card."""
    t0 = time.time()
    pool, desc = stem_pool(a.n_sim)
    print(f"data: {desc} ({time.time() - t0:.0f}s)", flush=True)
    est, steps, train_s = _train(a, wd, pool, "decimate")

    res = B.stem_benchmark(est, (2, 4))
    metrics = {f"em_real_heldout_{g}_x{f}": {m: {q: round(x, 5) for q, x in v.items() if np.isfinite(x)}
                                             for m, v in r[f].items()}
               for g, (r, _n) in res.items() for f in r}
    for k, v in metrics.items():
        print(k, json.dumps({m: (r["rms"], r["rms_b"]) for m, r in v.items()}), flush=True)
    ns = {g: n for g, (_r, n) in res.items()}
    est.card = {
        "name": Path(a.out).name, "task": "inpaint", "kind": "super-resolution", "sampling": "decimate",
        "input_shape": [1, 1, 128, 128],
        "description": "VDSR-style residual CNN on the bicubic upsample (aligned to the decimation grid) of a STEM "
                       "uniform sub-lattice scan, coarse = fine[::f, ::f]; the measured samples are kept in the "
                       "output; trained at x2 and x4.",
        "training_data": desc,
        "config": {"layers": a.layers, "channels": a.channels, "batch": a.batch, "patch": a.patch, "lr": a.lr,
                   "factors": [2, 4], "sampling": "decimate",
                   "loss": "MSE on per-patch [0,1] intensities", "steps": steps},
        "training_time_s": round(train_s, 1),
        "metrics": metrics,
        "metrics_note": f"python -m scopenet.tasks.superres.bench --domain stem: centre crops (512 px, or "
                        f"the largest that fits, >= 256) of the em-real held-out images ({ns['stem']} STEM, "
                        f"{ns['all']} in all) decimated by f; rms/psnr/ssim against the crop in [0,1], "
                        "rms_b/psnr_b/ssim_b against the crop blurred by a 5x5 sigma-2.5 Gaussian; "
                        "bicubic+blur = bicubic given the same blur; ms per image on one CPU thread",
    }
    est.save(a.out, overwrite=True)
    print("saved", a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
