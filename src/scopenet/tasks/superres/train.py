"""Train a super-resolution model on the engine: ``scopenet train superres --config run.yaml [--resume]``.

The shipped ``superres-spm-x4`` and ``superres-stem-x4`` (recipes in ``recipes/``):

``domain: spm``: simulated SPM images (``simulate_batch(seed=1)``, 128x128, [0, 1]) plus real gordon-hsi
STM images from the sessions outside the benchmark's held-out fold; coarse scans are block means.
Multi-scale (x2, x4) training on 64x64 patches, MSE on per-patch [0, 1] intensities.

``domain: stem``: simulated EM micrographs (``scopenet.simulate.em.api.simulate_batch(kind="mixed")``,
256x256, seed 11) plus 256x256 tiles of the em-real TRAIN split (never the held-out split, the test
set of every EM benchmark); coarse scans are decimations ``fine[::f, ::f]`` (STEM sub-lattice
scans); x2 and x4 on 96x96 patches.

The run goes through :mod:`scopenet.training.budget` (Lightning; resumable exactly from ``last.ckpt``) and
writes ``<workdir>/model.safetensors`` + ``model.json``; its held-out figures come from
``scopenet bench superres --model <workdir>/model``. ``train(net, data, config)`` is the entry
``SuperResolver.fit`` calls; the data (patch pairs, the shipped models' pools) is :mod:`.data`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InputError
from ...training.budget import AdamCosineModule, init_weights, run, start_run
from .baselines import upsample
from .config import SuperResTrainConfig
from .data import make_pairs, spm_pool, stem_pool

__all__ = ["default_config", "SuperResModule", "train", "main"]

def default_config() -> SuperResTrainConfig:
    """The configuration of the shipped ``superres-spm-x4`` (``scopenet train init superres``)."""
    return SuperResTrainConfig()


def forward(net: torch.nn.Module, coarse: torch.Tensor, factor: int, sampling: str) -> torch.Tensor:
    """``(B, 1, h, w)`` coarse -> ``(B, 1, f*h, f*w)``: the network on the sampling-aligned bicubic upsample;
    with ``"decimate"`` the measured samples are kept at ``[::f, ::f]``."""
    y = net(upsample(coarse, factor, "bicubic", sampling))
    if sampling == "decimate":
        y = y.clone()
        y[..., ::factor, ::factor] = coarse
    return y


class SuperResModule(AdamCosineModule):
    """The super-resolution run: Adam (cosine to ``lr * lr_final_fraction``), MSE, gradient clipping."""

    def __init__(self, config: SuperResTrainConfig, net: torch.nn.Module, pool: np.ndarray, progress: bool = False,
                 callback=None):
        c = config
        fs, patch, sampling = list(c.factors), c.patch_, c.sampling_

        def make(rng):
            f = int(fs[rng.integers(len(fs))])
            lo, hi = make_pairs(pool, f, patch, c.batch_size, rng, sampling)
            return torch.from_numpy(lo), torch.from_numpy(hi), f

        super().__init__(c, net, make, loss_name="mse", progress=progress, callback=callback)

    def loss(self, batch) -> torch.Tensor:
        lo, hi, f = batch
        return F.mse_loss(forward(self.net, lo, int(f), self.config.sampling_).float(), hi)


def _pool(images: Any, patch: int) -> np.ndarray:
    if isinstance(images, np.ndarray):
        pool = np.asarray(images, np.float32)
    else:
        pool = np.stack([np.asarray(getattr(im, "data", im), np.float32) for im in images])
    if pool.ndim != 3 or len(pool) == 0 or min(pool.shape[1:]) < patch or not np.isfinite(pool).all():
        raise InputError(f"training needs finite (N, H, W) images of at least {patch} px, got shape {pool.shape}")
    return pool


def train(net: torch.nn.Module, data: Any = None, config: SuperResTrainConfig | None = None, *,
          device: str | None = None, progress: bool = False, resume: bool = False, callback=None) -> list[float]:
    """Train ``net`` (a network on bicubic upsamples, e.g. :class:`~scopenet.nn.vdsr.VDSR`) on the fine images
    ``data`` ((N, H, W) array or a sequence of 2-D images; None: the domain's pool) as ``config`` says;
    returns the per-step MSE. With ``config.workdir`` the run checkpoints there (``resume`` continues it).
    ``callback(step, loss, net)`` runs after every step."""
    return list(_run(net, data, config, device=device, progress=progress, resume=resume,
                     callback=callback)[0].losses)


def _run(net, data, config, *, device=None, progress=False, resume=False, callback=None):
    c = config or SuperResTrainConfig()
    pool = (spm_pool(c) if c.domain == "spm" else stem_pool(c))[0] if data is None else data
    module = SuperResModule(c, net, _pool(pool, c.patch_), progress, callback)
    trainer = run(module, c, resume=resume, device=device)
    net.eval()
    return module, trainer


def main(config: SuperResTrainConfig | str | Path, resume: bool = False, *, progress: bool = True,
         overwrite: bool = False) -> Path | None:
    """Train the super-resolution model described by ``config`` (a configuration or its YAML file); returns
    the saved model's path stem ``<workdir>/model`` (None on DDP ranks > 0)."""
    from ...nn.vdsr import VDSR
    from .._estimator import estimator_class

    SuperResolver = estimator_class("superres")  # from the registry: its module calls this one's train()
    c, wd = start_run(config, SuperResTrainConfig, resume, overwrite)
    net = VDSR(c.layers, c.channels)
    init_weights(net, c, wd, resume)
    pool, desc = spm_pool(c) if c.domain == "spm" else stem_pool(c)
    if progress:
        print(f"data: {desc}", flush=True)
    module, trainer = _run(net, pool, c, progress=progress, resume=resume)
    if not trainer.is_global_zero:
        return None
    est = SuperResolver(sampling=c.sampling_, arch_config={"n_layers": c.layers, "channels": c.channels})
    est.net_ = net.cpu().eval()
    est.update_card(training_data=desc, training={"config": c.to_dict(), "steps": module.steps,
                                                  "time_s": round(module.elapsed(), 1)})
    stem = wd / "model"
    est.save(stem, overwrite=True)
    return stem
