"""Train the learned-fusion denoiser (``denoise-fusion``, :mod:`scopenet.tasks.denoise.fusion`).

Two stages, both resumable:

1. ``data``: training pairs from the training sources of ``denoise-default`` only (simulated STEM/HRTEM/
   mesoscale images at seeds 1000+, the em-real ``train`` split; never the bench's held-out seeds 9000+ or
   the em-real held-out split), half physical TEM/STEM/SEM acquisitions and half Ede's dose noise (low and
   high, real crops half binned 2x2); the candidate bank of each pair is computed once and cached in
   ``cache/pairs-XXXX.npz`` (float16). ``--worker i --workers n`` splits the pairs over processes.
2. ``train``: the image-wide stage (the MLP choosing convex weights over the candidates from image-wide
   features) trained exactly and full-batch on every crop's candidate error Gram matrix (seconds), then, when
   the recipe's ``arch_config.width > 0``, the per-pixel stage on random crops of the cached banks (log-MSE
   per crop, checkpoints in ``cache/ckpt.pt``); the model is written to ``--out`` (``.safetensors`` +
   ``.json`` card with the data, config and training time).

Usage::

    OMP_NUM_THREADS=1 python scripts/train_denoise_fusion.py data --config recipes/denoise-fusion/fusion.yaml
    OMP_NUM_THREADS=1 python scripts/train_denoise_fusion.py train --config recipes/denoise-fusion/fusion.yaml \\
        --out src/scopenet/weights/denoise-fusion
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


def _grams(xs, ys) -> np.ndarray:
    out = []
    for x, y in zip(xs, ys):
        e = (np.asarray(x, np.float32) - np.asarray(y, np.float32)).reshape(len(x), -1)
        out.append(e @ e.T / e.shape[1])
    return np.stack(out)


def train(cfg: FusionTrainConfig, out: Path) -> None:
    from scopenet.nn.fusion import global_features

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
    net = est.net_
    ckpt = cfg.cache / "ckpt.pt"
    log_path = cfg.cache / "train.log"

    def log(line: str) -> None:
        print(line, flush=True)
        with log_path.open("a") as fh:
            fh.write(line + "\n")

    t0 = time.perf_counter()
    # stage 1: the image-wide weights, exactly on full crops: MSE(w) = w^T G w with G the candidates' error Gram
    with torch.no_grad():
        feats = torch.cat([global_features(torch.from_numpy(np.asarray(x, np.float32)[None])) for x in xs])
    tr, va = torch.from_numpy(tr_idx), torch.from_numpy(val_idx)
    net.set_feature_norm(feats[tr].mean(0), feats[tr].std(0) + 1e-6)
    G = torch.from_numpy(_grams(xs, ys))
    opt = torch.optim.Adam(net.mlp.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    kinds = np.array(tags)

    def loss(idx):
        w = torch.softmax(net.mlp((feats[idx] - net.feature_mean) / net.feature_std), dim=1)
        m = torch.einsum("nk,nkl,nl->n", w, G[idx], w)
        if cfg.loss == "crop":
            return torch.log(m + 1e-6).mean()
        k = kinds[idx.numpy()]
        return torch.stack([torch.log(m[torch.from_numpy(k == t)].mean() + 1e-6) for t in sorted(set(k))]).mean()

    hist = []
    for step in range(cfg.steps):
        lval = loss(tr)
        opt.zero_grad(set_to_none=True)
        lval.backward()
        opt.step()
        hist.append(float(lval))
        if (step + 1) % max(1, cfg.steps // 10) == 0:
            with torch.no_grad():
                v = float(loss(va)) if len(va) else None
            log(f"global step {step + 1} train {hist[-1]:.4f} val {v}")
    with torch.no_grad():
        ref = {c: float(torch.log(G[va][:, k, k] + 1e-6).mean()) for k, c in enumerate(cfg.candidates)} if len(va) else {}
        for t in sorted(set(tags)):
            sel = torch.from_numpy(kinds[val_idx] == t)
            w = torch.softmax(net.mlp((feats[va][sel] - net.feature_mean) / net.feature_std), dim=1)
            mm = torch.einsum("nk,nkl,nl->n", w, G[va][sel], w).mean()
            log(f"  val {t}: mean MSE {float(mm) * 1e3:.3f}e-3; input {float(G[va][sel][:, 0, 0].mean()) * 1e3:.3f}e-3; "
                + ", ".join(f"{c} {float(G[va][sel][:, j, j].mean()) * 1e3:.3f}" for j, c in enumerate(cfg.candidates[1:], 1)))
        v_final = float(loss(va)) if len(va) else None
    log(f"global stage done in {time.perf_counter() - t0:.1f} s; val log-MSE {v_final}; single candidates: "
        + ", ".join(f"{c} {r:.3f}" for c, r in ref.items()))
    st = {"net": net.state_dict(), "step": cfg.steps, "history": hist, "elapsed_s": time.perf_counter() - t0,
          "val": v_final, "ref": ref}
    torch.save(st, ckpt)
    # stage 2 (optional): the per-pixel refinement on patches
    if cfg.pixel_steps > 0 and net.head is not None:
        def checkpoint(step, h, val):
            torch.save({**st, "net": net.state_dict(), "step": cfg.steps + step, "history": hist + h,
                        "elapsed_s": time.perf_counter() - t0, "val": val}, ckpt)

        train_fusion(net, [xs[i] for i in tr_idx], [ys[i] for i in tr_idx], steps=cfg.pixel_steps,
                     batch_size=cfg.batch_size, patch=cfg.patch, lr=cfg.pixel_lr,
                     lr_final_fraction=cfg.lr_final_fraction, seed=cfg.seed, time_budget_s=cfg.time_budget_s,
                     val=([np.asarray(xs[i], np.float32) for i in val_idx],
                          [np.asarray(ys[i], np.float32) for i in val_idx]),
                     checkpoint=checkpoint, checkpoint_every=cfg.checkpoint_every, log=log)
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
                  "hardware": "CPU, 1 torch thread, shared 2-core machine",
                  "command": "python scripts/train_denoise_fusion.py data|train --config recipes/denoise-fusion/fusion.yaml",
                  "stages": [{"name": "image-wide weights (full-batch, exact Gram loss)", "steps": cfg.steps, "loss": cfg.loss,
                              "val_log_mse": st["val"], "val_log_mse_single_candidates": st.get("ref", {})},
                             *([{"name": "per-pixel", "steps": st["step"] - cfg.steps}] if st["step"] > cfg.steps
                               else [])]},
        preprocessing={"input": "one 2-D image of any size; each frame scaled by robust percentiles (0.1, 99.9) "
                                "and clipped to [0, 1]; the candidate bank (config.candidates) is computed outside "
                                "the network; the output is mapped back to the input's units",
                       "input_shape": [1, len(cfg.candidates), 64, 64]},
    )
    est.history_ = list(st["history"])
    est.save(out, overwrite=True)
    log(f"saved {out} after {st['step']} steps, {train_s:.0f} s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["data", "train"])
    p.add_argument("--config", default="recipes/denoise-fusion/fusion.yaml")
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", default="runs/denoise-fusion/model")
    a = p.parse_args(argv)
    cfg = _config(a.config)
    if a.stage == "data":
        make_data(cfg, a.worker, a.workers)
    else:
        train(cfg, Path(a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
