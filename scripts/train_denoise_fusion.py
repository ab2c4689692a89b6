"""Train the learned-fusion denoiser (``denoise-fusion``, :mod:`scopenet.tasks.denoise.fusion`).

Two stages, both resumable:

1. ``data``: training pairs from the training sources of ``denoise-default`` only (simulated STEM/HRTEM/
   mesoscale images at seeds 1000+, the em-real ``train`` split; never the bench's held-out seeds 9000+ or
   the em-real held-out split), half physical TEM/STEM/SEM acquisitions and half Ede's dose noise (low and
   high, real crops half binned 2x2); the candidate bank of each pair is computed once and cached in
   ``cache/pairs-XXXX.npz`` (float16). ``--worker i --workers n`` splits the pairs over processes.
2. ``train``: the fusion network on random crops of the cached banks (Adam, cosine, log-MSE per crop),
   checkpoints in ``cache/ckpt.pt`` (``--resume`` continues), then ``--out`` (a model: ``.safetensors`` +
   ``.json`` card with data, config and training time).

Usage::

    OMP_NUM_THREADS=1 python scripts/train_denoise_fusion.py data --config recipes/denoise-fusion.yaml
    OMP_NUM_THREADS=1 python scripts/train_denoise_fusion.py train --config recipes/denoise-fusion.yaml \\
        --out src/scopenet/weights/denoise-fusion [--resume]
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from scopenet.tasks.denoise.fusion import FusionDenoiser, FusionTrainConfig, train_fusion

SHARD = 10  # pairs per cached file
MODALITY_KIND = {"tem": 1, "stem": 0, "sem": 2}  # index of the simulated kind in TrainingPool.sim (stem, hrtem, meso)


def _config(path: str | None) -> FusionTrainConfig:
    return FusionTrainConfig.model_validate(yaml.safe_load(Path(path).read_text()) if path else {})


def _estimator(cfg: FusionTrainConfig) -> FusionDenoiser:
    return FusionDenoiser(candidates=cfg.candidates, arch_config=cfg.arch_config, normalise=cfg.normalise,
                          percentiles=cfg.percentiles)


def make_data(cfg: FusionTrainConfig, worker: int = 0, workers: int = 1) -> None:
    from scopenet.simulate.em.noise import ede_noisy_pair
    from scopenet.tasks.denoise.pairs import physical_pair
    from scopenet.tasks.denoise.train import TrainingPool

    cfg.cache.mkdir(parents=True, exist_ok=True)
    todo = [s for s in range(0, cfg.n_pairs, SHARD) if (s // SHARD) % workers == worker
            and not (cfg.cache / f"pairs-{s // SHARD:04d}.npz").exists()]
    if not todo:
        print("all shards cached", flush=True)
        return
    t0 = time.perf_counter()
    pool = TrainingPool(cfg.n_sim_per_kind, cfg.sim_size, seed=0, real=True)
    print(f"pool: {len(pool.sim)} simulated, {len(pool.real)} real train images ({time.perf_counter() - t0:.0f} s)",
          flush=True)
    n = cfg.n_sim_per_kind
    est = _estimator(cfg)
    timings: dict[str, float] = {}
    for s in todo:
        xs, ys, tags = [], [], []
        for i in range(s, min(s + SHARD, cfg.n_pairs)):
            rng = np.random.default_rng([cfg.seed, i])
            if rng.random() < cfg.physical_fraction:
                mod = ("tem", "stem", "sem")[int(rng.integers(3))]
                sub = copy.copy(pool)
                j = MODALITY_KIND[mod]
                sub.sim = pool.sim[j * n:(j + 1) * n]
                c = sub.crop(rng, cfg.size, cfg.physical_real_fraction, 0.0, tuple(cfg.zoom_range))
                if c.max() <= c.min():
                    c = rng.random(c.shape).astype(np.float32)
                noisy, truth = physical_pair(c, rng, mod)
                tag = f"physical-{mod}"
            else:
                regime = "high" if rng.random() < cfg.high_dose_fraction else "low"
                c = pool.crop(rng, cfg.size, cfg.real_fraction, cfg.bin_fraction)
                if c.max() <= c.min():
                    c = rng.random(c.shape).astype(np.float32)
                noisy, truth = ede_noisy_pair(c, rng, regime)
                tag = f"ede-{regime}"
            t1 = time.perf_counter()
            x, y = est.prepare_pair(noisy, truth)
            timings["candidates"] = timings.get("candidates", 0.0) + time.perf_counter() - t1
            xs.append(x.astype(np.float16))
            ys.append(y[None].astype(np.float16))
            tags.append(tag)
        out = cfg.cache / f"pairs-{s // SHARD:04d}.npz"
        tmp = out.with_name(out.stem + ".tmp.npz")
        np.savez(tmp, x=np.stack(xs), y=np.stack(ys), tags=np.array(tags))
        tmp.rename(out)
        done = s + SHARD
        print(f"shard {s // SHARD} done ({done}/{cfg.n_pairs}); {time.perf_counter() - t0:.0f} s; "
              f"candidates {timings['candidates'] / max(1, len(tags)) :.2f} s per pair (last shard avg)", flush=True)
        timings.clear()


def load_data(cfg: FusionTrainConfig):
    xs, ys, tags = [], [], []
    for f in sorted(cfg.cache.glob("pairs-*.npz")):
        if ".tmp" in f.name:
            continue
        d = np.load(f)
        xs += list(d["x"])
        ys += list(d["y"])
        tags += [str(t) for t in d["tags"]]
    return xs, ys, tags


def train(cfg: FusionTrainConfig, out: Path, resume: bool = False) -> None:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    xs, ys, tags = load_data(cfg)
    if len(xs) < 2:
        raise SystemExit(f"no cached pairs in {cfg.cache}: run the data stage first")
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(xs))
    nval = max(1, int(round(cfg.val_fraction * len(xs)))) if cfg.val_fraction > 0 else 0
    val_idx, tr_idx = order[:nval], order[nval:]
    est = _estimator(cfg)
    ckpt = cfg.cache / "ckpt.pt"
    start, opt_state, hist0, elapsed0 = 0, None, [], 0.0
    if resume and ckpt.exists():
        st = torch.load(ckpt, weights_only=False)
        est.net_.load_state_dict(st["net"])
        start, opt_state, hist0, elapsed0 = st["step"], st["opt"], st["history"], st["elapsed_s"]
        print(f"resuming at step {start}", flush=True)
    t0 = time.perf_counter()
    best = {"val": float("inf")}
    log_path = cfg.cache / "train.log"

    def log(line: str) -> None:
        print(line, flush=True)
        with log_path.open("a") as fh:
            fh.write(line + "\n")

    def checkpoint(step, hist, val):
        st = {"net": est.net_.state_dict(), "opt": est.net_.opt_.state_dict(), "step": step,
              "history": hist0 + hist, "elapsed_s": elapsed0 + time.perf_counter() - t0, "val": val}
        torch.save(st, cfg.cache / "ckpt.tmp.pt")
        (cfg.cache / "ckpt.tmp.pt").rename(ckpt)
        if val is not None and val < best["val"]:
            best["val"] = val
            torch.save(st, cfg.cache / "best.pt")

    budget = None if cfg.time_budget_s is None else max(1.0, cfg.time_budget_s - elapsed0)
    hist = train_fusion(est.net_, [xs[i] for i in tr_idx], [ys[i] for i in tr_idx], steps=cfg.steps,
                        batch_size=cfg.batch_size, patch=cfg.patch, lr=cfg.lr, lr_final_fraction=cfg.lr_final_fraction,
                        seed=cfg.seed, time_budget_s=budget,
                        val=([np.asarray(xs[i], np.float32) for i in val_idx],
                             [np.asarray(ys[i], np.float32) for i in val_idx]),
                        checkpoint=checkpoint, checkpoint_every=cfg.checkpoint_every, start_step=start,
                        optimizer_state=opt_state, log=log)
    st = torch.load(ckpt, weights_only=False)
    train_s = st["elapsed_s"]
    counts = {t: tags.count(t) for t in sorted(set(tags))}
    est.update_card(
        description=("Learned fusion denoiser: a small dilated CNN choosing per pixel (softmax weights plus a residual "
                     "bounded by the candidates' spread) among the robust-normalised input, fast classical filters "
                     "and the denoise-default / denoise-high-dose networks."),
        training={"data": {"pairs": len(xs), "train": len(tr_idx), "validation": len(val_idx), "kinds": counts,
                           "sources": "TrainingPool(seed 0): simulated stem/hrtem/meso at seeds 1000-1002 "
                                      f"({cfg.n_sim_per_kind} per kind, {cfg.sim_size} px) and the em-real train split; "
                                      "physical pairs: scopenet.simulate.em.degrade (modality-matched content); "
                                      "Ede ch. 6 dose noise (low/high, real crops half 2x2-binned)"},
                  "config": json.loads(cfg.model_dump_json()), "steps": st["step"], "time_s": round(train_s, 1),
                  "final_val_loss": st["val"], "hardware": "CPU, 1 torch thread, shared 2-core machine",
                  "script": "scripts/train_denoise_fusion.py", "recipe": "recipes/denoise-fusion.yaml"},
    )
    est.history_ = hist0 + hist
    est.save(out, overwrite=True)
    log(f"saved {out} after {st['step']} steps, {train_s:.0f} s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["data", "train"])
    p.add_argument("--config", default="recipes/denoise-fusion.yaml")
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", default="runs/denoise-fusion/model")
    p.add_argument("--resume", action="store_true")
    a = p.parse_args(argv)
    cfg = _config(a.config)
    if a.stage == "data":
        make_data(cfg, a.worker, a.workers)
    else:
        train(cfg, Path(a.out), a.resume)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
