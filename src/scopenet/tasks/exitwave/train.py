"""Train an exit-wave model on the engine (``scripts/train_exitwave.py --config recipes/exitwave-*.yaml``).

Chapter 7's recipe, scaled to CPU cores: random ``crop`` px crops of the simulated waves in one of
the 8 flips/rotations; the amplitude of each crop is divided by its mean; the generator's unit
output is scored against ``(cos theta, sin theta)`` with ``loss_scale * MSE`` clipped by ALRC
(:mod:`scopenet.training.alrc`), plus ``raw_weight`` times the MSE of the raw output (the phase
confidence); an optional least-squares GAN term from a spectrally normalised discriminator on
``{A cos theta, A sin theta}`` with the chapter's learning-rate balancing (eq. 24).

The run goes through :mod:`scopenet.training.budget` (Lightning; resumable from ``last.ckpt``) and writes
``<workdir>/model.safetensors`` + ``model.json``; the held-out figures come from
``scopenet bench exitwave --model <workdir>/model``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InputError
from ...image.micrograph import Micrograph
from ...image.tta import dihedral
from ...training.alrc import ALRC, NoClip
from ...training.budget import BudgetedModule, SeededStream, init_weights, run, start_run
from .config import ExitWaveTrainConfig

__all__ = ["load_pool", "make_batch", "calibrate", "ExitWaveModule", "train", "main"]


def load_pool(data: Any) -> np.ndarray:
    """Complex waves ``(N, H, W)`` complex64 from an array, a list of 2-D complex arrays / Micrographs,
    or ``.npz`` paths written by :func:`scopenet.simulate.em.exitwave.save_waves` (all of one size)."""
    if isinstance(data, (str, Path)):
        data = [data]
    if isinstance(data, np.ndarray):
        arrs = [data] if data.ndim == 2 else list(data)
    elif isinstance(data, (list, tuple)):
        arrs = []
        for d in data:
            if isinstance(d, (str, Path)):
                from ...simulate.em.exitwave import load_waves

                arrs.extend(list(load_waves(d)[0]))
            else:
                arrs.append(np.asarray(d.data if isinstance(d, Micrograph) else d))
    else:
        raise InputError(f"training waves must be an array, a list or .npz paths, got {type(data).__name__}")
    if not arrs:
        raise InputError("no training waves")
    shapes = {np.shape(a) for a in arrs}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise InputError(f"training waves must be 2-D and of one size, got shapes {sorted(shapes)[:4]}")
    pool = np.stack(arrs)
    if not np.iscomplexobj(pool):
        raise InputError("training waves must be complex (A exp(i theta)); a real array has no phase")
    if not np.isfinite(pool).all():
        raise InputError("training waves have non-finite values")
    return pool.astype(np.complex64)


def make_batch(pool: np.ndarray, crop: int, batch_size: int, rng: np.random.Generator,
               scale: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Random crops in random flips/rotations: ``(amplitude (B, 1, c, c), components (B, 2, c, c))``.

    Each crop's amplitude is divided by its mean (``scale="range"``: mapped from its range onto
    [0, 2]), as :meth:`~scopenet.tasks.exitwave.ExitWaveEstimator.predict` does.
    """
    n, h, w = pool.shape
    amps, comps = [], []
    for _ in range(batch_size):
        i = int(rng.integers(n))
        y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        wv = dihedral(pool[i, y:y + crop, x:x + crop], int(rng.integers(8)))
        a = np.abs(wv).astype(np.float64)
        if scale == "range":
            lo, hi = a.min(), a.max()
            a = 2.0 * (a - lo) / (hi - lo) if hi > lo else np.ones_like(a)
        else:
            a = a / max(a.mean(), 1e-12)
        th = np.angle(wv)
        amps.append(a.astype(np.float32))
        comps.append(np.stack([np.cos(th), np.sin(th)]).astype(np.float32))
    return np.stack(amps)[:, None], np.stack(comps)


def _lr_factor(fraction: float, halvings: int) -> float:
    """Stepwise exponential decay: halved ``halvings`` times at equal intervals of the run."""
    if halvings <= 0:
        return 1.0
    return 0.5 ** min(halvings, int(fraction * (halvings + 1)))


class ExitWaveModule(BudgetedModule):
    """The exit-wave run: Adam, 10 * ALRC(MSE) of unit components + raw MSE (+ optional LSGAN)."""

    def __init__(self, config: ExitWaveTrainConfig, net: torch.nn.Module, pool: np.ndarray, progress: bool = False,
                 callback=None):
        c = config

        def make(rng):
            a, t = make_batch(pool, c.crop, c.batch_size, rng, c.scale)
            return torch.from_numpy(a), torch.from_numpy(t)

        super().__init__(SeededStream(make, c.seed), c.max_steps, c.time_budget_s, c.workdir,
                         checkpoint_every_s=c.checkpoint_every_s, checkpoint_every_n_steps=c.checkpoint_every_n_steps,
                         log_header=["step", "elapsed_s", "lr", "loss", "mae"], progress=progress)
        self.net, self.config, self.callback = net, config, callback
        self.clipper = ALRC(n_max=3.0, mu1_init=25.0, mu2_init=30.0 ** 2, mode="example") if c.alrc else NoClip()
        self.disc = None
        if c.gan:
            from ...nn.exitwave import PhaseDiscriminator

            self.disc = PhaseDiscriminator(c.d_channels)
        self.register_buffer("mu_d", torch.tensor(0.5))
        self._window = [0.0, 0.0, 0]

    def extra_state(self) -> dict:
        return {"window": list(self._window)}

    def load_extra_state(self, state: dict) -> None:
        self._window = list(state.get("window", [0.0, 0.0, 0]))

    def configure_optimizers(self):
        g = torch.optim.Adam(self.net.parameters(), lr=self.config.lr, betas=(0.9, 0.999))
        if self.disc is None:
            return g
        d = torch.optim.Adam(self.disc.parameters(), lr=self.config.d_lr, betas=(0.5, 0.999))
        return [g, d]

    def training_step(self, batch, batch_idx):
        amp, truth = batch
        c = self.config
        opts = self.optimizers()
        opt_g = opts[0] if isinstance(opts, (list, tuple)) else opts
        lr = c.lr * _lr_factor(self.fraction(), c.lr_halvings)
        for g in opt_g.optimizer.param_groups:
            g["lr"] = lr
        unit, raw = self.net.forward_raw(amp)
        per_example = c.loss_scale * ((unit - truth) ** 2).mean((1, 2, 3))
        loss = self.clipper(per_example)
        if c.raw_weight > 0:
            loss = loss + c.raw_weight * F.mse_loss(raw, truth)
        if self.disc is not None:
            fake = amp * unit
            loss = loss + c.gan_weight * ((self.disc(fake) - 1.0) ** 2).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        if self.disc is not None:  # chapter eqs. 22 and 24
            opt_d = opts[1]
            real, fake = amp * truth, (amp * unit).detach()
            d_fake = self.disc(fake)
            with torch.no_grad():
                self.mu_d.mul_(0.99).add_(0.01 * d_fake.mean())
            for g in opt_d.optimizer.param_groups:
                g["lr"] = c.d_lr / (1.0 + math.exp(-20.0 * (float(self.mu_d) - 0.5)))
            d_loss = ((self.disc(real) - 1.0) ** 2).mean() + (d_fake ** 2).mean()
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
        mae = float((unit.detach() - truth).abs().mean())
        self._window[0] += float(loss.detach())
        self._window[1] += mae
        self._window[2] += 1
        row = None
        if (self.steps + 1) % c.log_every == 0:
            k = self._window[2]
            row = [self.steps + 1, f"{self.elapsed():.1f}", f"{lr:.3g}", f"{self._window[0] / k:.4f}",
                   f"{self._window[1] / k:.4f}"]
            self._window = [0.0, 0.0, 0]
        self.step_done(float(loss.detach()), row)
        if self.callback is not None:
            self.callback(self.steps - 1, self.losses[-1], self.net)


def train(net: torch.nn.Module, data: Any, config: ExitWaveTrainConfig, *, device: str | None = None,
          progress: bool = False, resume: bool = False, callback=None) -> list[float]:
    """Train ``net`` (an :class:`~scopenet.nn.exitwave.ExitWaveNet`) on complex waves ``data`` as ``config``
    says; returns the per-step losses. With ``config.workdir`` the run checkpoints there."""
    return list(_run(net, data, config, device=device, progress=progress, resume=resume,
                     callback=callback)[0].losses)


def _run(net, data, config, *, device=None, progress=False, resume=False, callback=None):
    pool = load_pool(data)
    if min(pool.shape[1:]) < config.crop:
        raise InputError(f"training waves of shape {pool.shape[1:]} are smaller than crop {config.crop}")
    net.train()
    module = ExitWaveModule(config, net, pool, progress, callback)
    trainer = run(module, config, resume=resume, device=device)
    net.eval()
    return module, trainer


def calibrate(est, pool: np.ndarray, crop: int, n: int = 32, seed: int = 0) -> dict:
    """Unfamiliar-input thresholds from the training distribution: ``ood_confidence`` and
    ``ood_confidence_quantile`` (the low-confidence rule, :func:`~.familiar.calibrate_confidence`),
    ``amplitude_sd_range`` (the amplitude sd range of ``n`` training crops widened by a factor 1.5 each
    way) and ``high_frequency_max`` (1.25 times the largest fraction of variance above 2/3 of Nyquist,
    at least 0.01)."""
    from .familiar import calibrate_confidence, high_frequency_fraction

    rng = np.random.default_rng([seed, 7])
    amps, _ = make_batch(pool, min(crop, *pool.shape[1:]), n, rng, est.config.scale)
    sds = amps[:, 0].std((1, 2))
    hf = max(high_frequency_fraction(a) for a in amps[:, 0])
    return {**calibrate_confidence(est, pool, seed=seed),
            "amplitude_sd_range": (float(sds.min() / 1.5), float(sds.max() * 1.5)),
            "high_frequency_max": float(np.clip(max(1.25 * hf, 0.01), 0.0, 1.0))}


def main(config: ExitWaveTrainConfig | str | Path, resume: bool = False, *, progress: bool = True,
         overwrite: bool = False) -> Path | None:
    """Train the model described by ``config`` (a configuration or its YAML file); returns the saved model's
    path stem ``<workdir>/model`` (None on DDP ranks > 0)."""
    from ...nn.exitwave import ExitWaveNet
    from .._estimator import estimator_class

    Est = estimator_class("exitwave")
    c, wd = start_run(config, ExitWaveTrainConfig, resume, overwrite)
    net = ExitWaveNet(c.channels, c.blocks, c.context)
    init_weights(net, c, wd, resume)
    pool = load_pool([str(p) for p in c.data])
    desc = f"{len(pool)} simulated exit waves {pool.shape[1]}x{pool.shape[2]} from " + \
        ", ".join(Path(p).name for p in c.data)
    if progress:
        print(f"data: {desc}", flush=True)
    module, trainer = _run(net, pool, c, progress=progress, resume=resume)
    if not trainer.is_global_zero:
        return None
    est = Est(scale=c.scale, arch_config=dict(net.config))
    est.net_ = net.cpu().eval()
    est.config = est.config.model_copy(update=calibrate(est, pool, c.crop, seed=c.seed))
    from ...simulate.em.exitwave import load_waves

    sets = [load_waves(p)[2] for p in c.data]
    est.update_card(training={"config": c.to_dict(), "steps": module.steps, "time_s": round(module.elapsed(), 1),
                              "data": {"description": desc, "sets": sets}})
    stem = wd / c.name
    est.save(stem, overwrite=True)
    return stem
