"""Lightning modules: a generic image-to-image module that tasks subclass or configure."""
from __future__ import annotations

from typing import Callable

import lightning.pytorch as pl
import torch
import torch.nn as nn

from ..errors import InputError
from .config import OptimConfig
from .schedules import make_lr_lambda, total_training_steps

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _mse(pred, target):
    return (pred - target) ** 2


def _l1(pred, target):
    return (pred - target).abs()


def _quartic(pred, target):
    return (pred - target) ** 4


LOSSES: dict[str, LossFn] = {"mse": _mse, "l1": _l1, "quartic": _quartic}


def elementwise_loss(name: str | LossFn) -> LossFn:
    """Element-wise loss ``f(pred, target) -> tensor of pred's shape`` by name or as given."""
    if callable(name):
        return name
    if name not in LOSSES:
        raise InputError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)} or pass a callable")
    return LOSSES[name]


def make_clipper(name: str | None, params: dict | None = None) -> nn.Module | None:
    """Loss clipper from :func:`scopenet.training.alrc.make_clipper`, or None for ``None``/"none"."""
    if name in (None, "none"):
        return None
    try:
        from .alrc import make_clipper as _make
    except ImportError as exc:  # pragma: no cover - alrc.py is written separately
        raise InputError(f"loss clipper {name!r} requested but scopenet.training.alrc is unavailable: {exc}") from exc
    return _make(name, **(params or {}))


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum ``betas[0]``) from an :class:`OptimConfig`."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.betas[0], weight_decay=cfg.weight_decay)


def psnr_per_example(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each example, with the target's own range as peak: shape (N,)."""
    dims = tuple(range(1, pred.ndim))
    mse = ((pred - target) ** 2).mean(dim=dims)
    rng = target.amax(dim=dims) - target.amin(dim=dims)
    return 10 * torch.log10(rng.clamp_min(1e-12) ** 2 / mse.clamp_min(1e-20))


class ImageToImageModule(pl.LightningModule):
    """Train any ``network`` mapping images to images on ``(input, target)`` batches.

    The element-wise loss map goes through the optional loss clipper (ALRC and friends, which clip
    per example or per element according to their ``mode``) and is then averaged.
    Logs ``train_loss`` (unclipped), ``val_loss`` and ``val_psnr``.

    Parameters
    ----------
    network : nn.Module
        Maps ``(N, C_in, H, W)`` to ``(N, C_out, H, W)``.
    loss : {"mse", "l1", "quartic"} or callable
        Element-wise loss ``f(pred, target)``.
    optim : OptimConfig
        Optimiser, schedule and clipper settings.
    clipper : nn.Module, optional
        Overrides ``optim.clipper``; called on the element-wise loss ``(N, C, H, W)``.

    Notes
    -----
    Subclasses change behaviour by overriding :meth:`compute_loss` (e.g. masked N2V losses) or
    :meth:`forward`. The clipper is a submodule, so its running moments are in the checkpoints.
    """

    def __init__(self, network: nn.Module, loss: str | LossFn = "mse", optim: OptimConfig | None = None,
                 clipper: nn.Module | None = None):
        super().__init__()
        self.network = network
        self.optim_config = optim or OptimConfig()
        self.loss_fn = elementwise_loss(loss)
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
        self.clipper = clipper if clipper is not None else make_clipper(self.optim_config.clipper,
                                                                        self.optim_config.clipper_params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def per_example_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of each example, shape (N,)."""
        el = self.loss_fn(pred, target)
        return el.reshape(el.shape[0], -1).mean(dim=1)

    def compute_loss(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(element-wise loss (N, ...), prediction, target)`` for a batch.

        Override for other losses (masked pixels, weights...); the clipper groups the element-wise
        loss into per-example (or per-element) losses according to its ``mode``.
        """
        x, y = batch[0], batch[1]
        pred = self(x)
        return self.loss_fn(pred, y), pred, y

    def training_step(self, batch, batch_idx):
        el, _, _ = self.compute_loss(batch)
        loss = self.clipper(el).mean() if self.clipper is not None else el.mean()
        self.log("train_loss", el.detach().mean(), prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        el, pred, y = self.compute_loss(batch)
        n = el.shape[0]
        self.log(f"{stage}_loss", el.mean(), prog_bar=stage == "val", on_epoch=True, sync_dist=True, batch_size=n)
        self.log(f"{stage}_psnr", psnr_per_example(pred, y).mean(), on_epoch=True, sync_dist=True, batch_size=n)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def configure_optimizers(self):
        opt = build_optimizer(self.parameters(), self.optim_config)
        total = total_training_steps(self.trainer) if self._trainer is not None else 1
        lam = make_lr_lambda(self.optim_config.schedule, total, self.optim_config.schedule_params)
        if lam is None:
            return opt
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
