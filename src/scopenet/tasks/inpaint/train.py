"""Train the coverage-agnostic completion model (``scripts/train_inpaint.py``, ``main(config, resume)``).

A plain, resumable PyTorch loop (small enough for a laptop CPU): samples are drawn on the fly from a
pool of simulated micrographs (STEM / HRTEM / mesoscale, :mod:`scopenet.simulate.em`) and the
``train`` split of the real em-real micrographs, masked with spiral, jittered-grid, random-pixel and
random-segment paths at coverages 1/100 ... 1/10, infilled with nearest neighbours; loss
``200 * ALRC(MSE)`` against the Gaussian-blurred truth (plus, with ``adversarial=True``, an LSGAN term
from three multi-scale discriminators with experience replay). Checkpoints (``last.pt``) every
``checkpoint_every_s``; the run stops at ``max_steps`` or ``time_budget_s`` of training time and
writes ``<workdir>/model.safetensors`` + ``model.json``.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ...nn import build_architecture
from ...nn import partial_stem  # noqa: F401  (registers the architectures)
from ...training.alrc import ALRC
from .config import InpaintTrainConfig
from .data import make_batch, mask_bank


def image_pool(cfg: InpaintTrainConfig) -> tuple[list[np.ndarray], dict]:
    """Simulated + real (train split) images in [0, 1], each at least ``cfg.crop`` px on a side."""
    from ...simulate.em.api import simulate_batch

    sim = simulate_batch(cfg.n_simulated, cfg.simulated_size, seed=cfg.seed + 1000, kind="mixed")
    pool = [im for im in sim["images"]]
    info = {"simulated": cfg.n_simulated, "simulated_kinds": {k: sim["kinds"].count(k) for k in set(sim["kinds"])}}
    real_ids = []
    if cfg.use_em_real:
        try:
            from ...training.em_real import load_em_real

            for r in load_em_real(split="train"):
                if min(r.image.shape) >= cfg.crop:
                    # real images are large: add each several times so they carry ~half the samples
                    pool += [r.image] * 4
                    real_ids.append(r.id)
        except Exception as exc:  # the shared folder is optional
            info["em_real_error"] = str(exc)
    info["em_real_train_ids"] = real_ids
    return pool, info


def warm_start(net: torch.nn.Module, source) -> dict:
    """Copy the weights of ``source`` (a saved model name/path stem, or a module) into ``net``.

    Tensors of equal shape are copied; a convolution weight whose only difference is more input
    channels in ``net`` gets the old weights in its leading channels and zeros elsewhere (the layout of
    :class:`~scopenet.nn.partial_stem.InpaintUNet` appends new channels after the old ones, and
    pixel-unshuffle keeps them grouped per input channel). Returns ``{"copied": n, "expanded": [...],
    "skipped": [...]}``.
    """
    if not isinstance(source, torch.nn.Module):
        from ...training.packaging import load_model

        source = load_model(source)
    old = source.state_dict()
    new = net.state_dict()
    report = {"copied": 0, "expanded": [], "skipped": []}
    for k, v in new.items():
        o = old.get(k)
        if o is None:
            report["skipped"].append(k)
        elif o.shape == v.shape:
            new[k] = o.clone()
            report["copied"] += 1
        elif o.ndim == 4 and v.ndim == 4 and o.shape[0] == v.shape[0] and o.shape[1] < v.shape[1] \
                and o.shape[2:] == v.shape[2:]:
            w = torch.zeros_like(v)
            w[:, :o.shape[1]] = o
            new[k] = w
            report["expanded"].append(k)
        else:
            report["skipped"].append(k)
    net.load_state_dict(new)
    return report


def _lr(cfg: InpaintTrainConfig, frac: float) -> float:
    frac = min(max(frac, 0.0), 1.0)
    return cfg.lr * (cfg.lr_final_fraction + (1 - cfg.lr_final_fraction) * 0.5 * (1 + math.cos(math.pi * frac)))


def _ema(old: float | None, new: float, a: float = 0.95) -> float:
    """Running average for the progress log (the first value starts it)."""
    return new if old is None else a * old + (1 - a) * new


def _generator_adv_loss(disc, out: torch.Tensor, lambda_adv: float) -> torch.Tensor:
    """The generator's LSGAN loss on ``out``; the discriminators are frozen for it (gradient to the generator only)."""
    from ...nn.partial_stem import lsgan_generator_loss

    disc.requires_grad_(False)
    try:
        return lsgan_generator_loss(disc(out), lambda_adv)
    finally:
        disc.requires_grad_(True)


def _discriminator_step(disc, d_opt, replay, fake: torch.Tensor, real: torch.Tensor) -> float:
    """One LSGAN update of the discriminators: ``real`` = blurred truths, fake = replayed generator outputs."""
    from ...nn.partial_stem import lsgan_discriminator_loss

    d_loss = lsgan_discriminator_loss(disc(real), disc(replay.push_and_sample(fake.detach())))
    d_opt.zero_grad()
    d_loss.backward()
    d_opt.step()
    return float(d_loss.detach())


def main(config: InpaintTrainConfig | dict | str | Path | None = None, resume: bool = True) -> Path:
    """Run (or resume) a training run; returns the path stem of the saved model."""
    from ...training.packaging import save_model

    if config is None:
        cfg = InpaintTrainConfig()
    elif isinstance(config, InpaintTrainConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = InpaintTrainConfig(**config)
    else:
        cfg = InpaintTrainConfig.from_yaml(config)
    torch.set_num_threads(cfg.threads)
    wd = Path(cfg.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(wd / "config.yaml")
    torch.manual_seed(cfg.seed)
    net = build_architecture(cfg.architecture, cfg.arch_config)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    clip = ALRC(mode="example", **cfg.alrc)
    disc = d_opt = replay = None
    if cfg.adversarial:
        from ...nn.partial_stem import MultiScaleDiscriminator
        from .adversarial import ReplayBuffer

        disc = MultiScaleDiscriminator(cfg.disc_channels, tuple(cfg.disc_crop_sizes), cfg.disc_input)
        d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))
        replay = ReplayBuffer(cfg.replay_size, seed=cfg.seed)
    step, elapsed = 0, 0.0
    ck = wd / "last.pt"
    if resume and ck.exists():
        st = torch.load(ck, weights_only=False)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        clip.load_state_dict(st["clip"])
        if disc is not None and "disc" in st:
            disc.load_state_dict(st["disc"])
            d_opt.load_state_dict(st["d_opt"])
            replay.load_state_dict(st["replay"])
        step, elapsed = st["step"], st["elapsed"]
        print(f"resumed at step {step} ({elapsed:.0f} s)", flush=True)
    elif cfg.init_from:
        rep = warm_start(net, cfg.init_from)
        print(f"warm start from {cfg.init_from}: {rep['copied']} tensors copied, expanded {rep['expanded']}, "
              f"skipped {rep['skipped']}", flush=True)
    pool, info = image_pool(cfg)
    masks = mask_bank(cfg.kinds, cfg.coverage_min, cfg.coverage_max, cfg.n_coverages, cfg.masks_per_level,
                      seed=cfg.seed)
    print(f"pool {len(pool)} images, {len(masks)} masks", flush=True)
    rng = np.random.default_rng([cfg.seed, step])
    log = open(wd / "log.csv", "a")
    t0, last_ck = time.time(), time.time()
    run_loss = run_rms = run_nn = None
    run_adv = {"g_adv": None, "d": None}

    def save_ck():
        state = {"net": net.state_dict(), "opt": opt.state_dict(), "clip": clip.state_dict(),
                 "step": step, "elapsed": elapsed + time.time() - t0}
        if disc is not None:
            state.update(disc=disc.state_dict(), d_opt=d_opt.state_dict(), replay=replay.state_dict())
        torch.save(state, wd / "last.tmp")
        (wd / "last.tmp").replace(ck)

    net.train()
    clip.train()
    while step < cfg.max_steps and elapsed + time.time() - t0 < cfg.time_budget_s:
        frac = max(step / cfg.max_steps, (elapsed + time.time() - t0) / cfg.time_budget_s)
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, frac)
        x, y, truth = make_batch(pool, masks, cfg.batch_size, cfg.crop, rng, cfg.blur_size, cfg.blur_sigma)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        out = net(x)
        mse = ((out - y) ** 2).mean(dim=(1, 2, 3))
        loss = clip(cfg.loss_scale * mse)
        if disc is not None:
            g_adv = _generator_adv_loss(disc, out, cfg.lambda_adv)
            loss = loss + g_adv
        opt.zero_grad()
        loss.backward()
        opt.step()
        if disc is not None:  # after the generator's step, so its graph saw the discriminators unchanged
            d_loss = _discriminator_step(disc, d_opt, replay, out, y)
            run_adv = {"g_adv": _ema(run_adv["g_adv"], float(g_adv.detach())), "d": _ema(run_adv["d"], d_loss)}
        step += 1
        with torch.no_grad():
            rms = float(((out.numpy() - truth) ** 2).mean() ** 0.5)
            nnr = float(((x[:, :1].numpy() - truth) ** 2).mean() ** 0.5)
        run_loss, run_rms, run_nn = _ema(run_loss, float(loss.detach())), _ema(run_rms, rms), _ema(run_nn, nnr)
        if step % cfg.log_every == 0:
            t = elapsed + time.time() - t0
            line = f"{step},{t:.0f},{run_loss:.4f},{run_rms:.4f},{run_nn:.4f}"
            adv = ""
            if disc is not None:  # two more columns: the generator's adversarial loss, the discriminators' loss
                line += f",{run_adv['g_adv']:.4f},{run_adv['d']:.4f}"
                adv = f" g_adv={run_adv['g_adv']:.4f} d={run_adv['d']:.4f}"
            log.write(line + "\n")
            log.flush()
            print(f"step {step} t={t:.0f}s loss={run_loss:.4f} rms={run_rms:.4f} (nn infill {run_nn:.4f}){adv}",
                  flush=True)
        if time.time() - last_ck > cfg.checkpoint_every_s:
            save_ck()
            last_ck = time.time()
    save_ck()
    total = elapsed + time.time() - t0
    card = {"task": "inpaint", "input_shape": [1, 2, 64, 64], "training_time_s": round(total, 1), "steps": step,
            "training_data": {"description": "simulated STEM/HRTEM/meso micrographs + em-real train split",
                              **info},
            "training_config": cfg.model_dump(mode="json"),
            "input": "[nn_infill(partial, mask), mask] with intensities in [0, 1]",
            "final_running_rms_vs_truth": run_rms, "final_running_rms_nn_infill": run_nn}
    if disc is not None:
        card["adversarial"] = {"lambda_adv": cfg.lambda_adv, "discriminator_crops": cfg.disc_crop_sizes,
                               "discriminator_input": cfg.disc_input, "replay_size": cfg.replay_size,
                               "final_running_g_adv": run_adv["g_adv"], "final_running_d_loss": run_adv["d"]}
    stem = wd / "model"
    save_model(stem, net.eval(), card, overwrite=True)
    (wd / "done.json").write_text(json.dumps({"steps": step, "time_s": total}))
    return stem


def export_checkpoint(workdir: str | Path, stem: str | Path, extra_card: dict | None = None,
                      overwrite: bool = False) -> Path:
    """Package ``<workdir>/last.pt`` of a (possibly still running) run as ``<stem>.safetensors`` + ``.json``."""
    from ...training.packaging import save_model

    wd = Path(workdir)
    cfg = InpaintTrainConfig.from_yaml(wd / "config.yaml")
    st = torch.load(wd / "last.pt", weights_only=False, map_location="cpu")
    net = build_architecture(cfg.architecture, cfg.arch_config)
    net.load_state_dict(st["net"])
    card = {"task": "inpaint", "input_shape": [1, 2, 64, 64], "training_time_s": round(float(st["elapsed"]), 1), "steps": int(st["step"]),
            "training_data": "simulated STEM/HRTEM/meso micrographs (scopenet.simulate.em, 256 px) + em-real "
                             "train split; spiral/grid/random/segments masks at coverages 1/100..1/10",
            "training_config": cfg.model_dump(mode="json"),
            "input": "[nn_infill(partial, mask), mask] with intensities scaled to [0, 1]"}
    card.update(extra_card or {})
    save_model(stem, net.eval(), card, overwrite=overwrite)
    return Path(stem)
