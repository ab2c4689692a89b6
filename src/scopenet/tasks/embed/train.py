"""Train the embedding VAE on the engine (``scripts/train_embed.py``, ``Embedder.fit``).

Ede's recipe, scaled to a CPU budget: 96x96 inputs min-max scaled, random flips/rotations, Adam
(``lr`` 1e-3) with a stepwise exponential decay (halved ``halvings`` times in equal steps of the
budget), batch ``batch_size``; the loss is ``50 MSE + 50 MSE(Sobel) + MSE(sigma, 1)`` with encoding
normalisation (``norm: encoding``), or the traditional ``50 MSE + KL`` (``norm: kl``). The run goes
through :mod:`scopenet.training.budget` (resumable from ``last.ckpt``) and writes
``<workdir>/model.safetensors`` + ``model.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from ...training.budget import BudgetedModule, SeededStream, init_weights, run, start_run
from .config import EmbedTrainConfig
from .data import sample_batch, training_pool

__all__ = ["EmbedModule", "build_net", "default_config", "main", "train"]


def default_config() -> EmbedTrainConfig:
    """The configuration of the shipped ``embed-default``."""
    return EmbedTrainConfig()


def build_net(c: EmbedTrainConfig) -> torch.nn.Module:
    """The VAE a configuration describes."""
    from ...nn.vae import VAE

    return VAE(size=c.size, latent=c.latent, widths=c.widths, convs=c.convs, hidden=c.hidden, norm=c.norm,
               lambda_mu=c.lambda_mu)


class EmbedModule(BudgetedModule):
    """The VAE run: Adam with stepwise halvings, Ede's loss (or the KL-VAE's), gradient clipping."""

    def __init__(self, config: EmbedTrainConfig, net: torch.nn.Module, images: list[np.ndarray],
                 weights: np.ndarray | None, progress: bool = False):
        c = config

        def make(rng):
            return torch.from_numpy(sample_batch(images, weights, c.batch_size, c.size, rng))

        super().__init__(SeededStream(make, c.seed), c.max_steps, c.time_budget_s, c.workdir,
                         checkpoint_every_s=c.checkpoint_every_s, checkpoint_every_n_steps=c.checkpoint_every_n_steps,
                         log_header=["step", "elapsed_s", "lr", "loss", "mse", "sobel_or_kl", "sigma_mean"],
                         progress=progress)
        self.net, self.config = net, config
        self._window = np.zeros(5)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.config.lr)

    def lr_now(self) -> float:
        c = self.config
        return c.lr * 0.5 ** min(int(self.fraction() * (c.halvings + 1)), c.halvings)

    def training_step(self, batch, batch_idx):
        from ...nn.vae import encoding_loss, kl_loss

        c = self.config
        self.net.train()
        opt = self.optimizers()
        lr = self.lr_now()
        for g in opt.optimizer.param_groups:
            g["lr"] = lr
        x = batch
        recon, mu, sigma = self.net.reconstruct(x)
        if c.norm == "encoding":
            loss, parts = encoding_loss(recon, x, sigma, c.lambda_mse, c.lambda_sobel)
            second = parts["sobel"]
        else:
            loss, parts = kl_loss(recon, x, mu, sigma, c.lambda_mse)
            second = parts["kl"]
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if c.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.grad_clip)
        opt.step()
        self._window += [float(loss.detach()), parts["mse"], second, float(sigma.detach().mean()), 1]
        row = None
        if (self.steps + 1) % c.log_every == 0:
            w = self._window[:4] / max(self._window[4], 1)
            row = [self.steps + 1, f"{self.elapsed():.1f}", f"{lr:.3g}"] + [f"{v:.4e}" for v in w]
            self._window[:] = 0
        self.step_done(float(loss.detach()), row)


def _pool(data: Any, size: int) -> list[np.ndarray]:
    imgs = list(data) if not isinstance(data, np.ndarray) or data.ndim == 3 else [data]
    out = [np.asarray(getattr(a, "data", a), np.float32) for a in imgs]
    if not out or any(a.ndim != 2 or min(a.shape) < 8 or not np.isfinite(a).all() for a in out):
        raise InputError("training needs a non-empty list of finite 2-D images of at least 8 px")
    return out


def train(net: torch.nn.Module, data: Any, config: EmbedTrainConfig | None = None, *, weights=None,
          device: str | None = None, progress: bool = False, resume: bool = False) -> list[float]:
    """Train the VAE ``net`` on images ``data`` (a list of 2-D arrays, or an ``(N, H, W)`` stack) as
    ``config`` says; returns the per-step losses."""
    c = config or EmbedTrainConfig(workdir=None)
    module = EmbedModule(c, net, _pool(data, c.size), weights, progress)
    net.train()
    run(module, c, resume=resume, device=device)
    net.eval()
    return list(module.losses)


def main(config: EmbedTrainConfig | str | Path, resume: bool = False, *, progress: bool = True,
         overwrite: bool = False) -> Path | None:
    """Train the embedding model described by ``config`` (a configuration or its YAML file) on the shipped
    model's pool; returns the saved model's path stem ``<workdir>/model``."""
    import time

    from .._estimator import estimator_class

    Embedder = estimator_class("embed")
    c, wd = start_run(config, EmbedTrainConfig, resume, overwrite)
    net = build_net(c)
    init_weights(net, c, wd, resume)
    t0 = time.time()
    images, weights, labels, desc = training_pool(c)
    if progress:
        print(f"data ({time.time() - t0:.0f} s): {desc}", flush=True)
    module = EmbedModule(c, net, images, weights, progress)
    net.train()
    trainer = run(module, c, resume=resume)
    if not trainer.is_global_zero:
        return None
    net.eval()
    est = Embedder(arch_config=dict(net.config))
    est.net_ = net.cpu().eval()
    est.update_card(training_data=desc, training={"config": c.to_dict(), "steps": module.steps,
                                                  "time_s": round(module.elapsed(), 1)})
    stem = wd / "model"
    est.save(stem, overwrite=True)
    return stem
