"""Train a segmentation model on the engine: ``scopenet train segment --config run.yaml [--resume]``.

The shipped ``segment-particles`` (recipe ``recipes/segment-particles.yaml``): simulated particle
micrographs (:func:`scopenet.simulate.em.particle_data.particle_batch`, setting ``"train"``, 256 px,
seed 0) with their exact masks; random 128 px crops, flips and quarter turns; cross-entropy plus soft
Dice. With ``images``/``masks`` folders the run trains on the user's own pairs instead.

The run goes through :mod:`scopenet.training.budget` (Lightning; resumable from ``last.ckpt``) and
writes ``<workdir>/model.safetensors`` + ``model.json``; held-out figures come from
``scopenet bench segment --model <workdir>/model``. ``train(net, images, masks, config)`` is the entry
``Segmenter.fit`` calls.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InputError
from ...training.budget import AdamCosineModule, init_weights, run, start_run
from .config import SegmentTrainConfig
from .data import load_pairs, normalise

__all__ = ["default_config", "SegmentModule", "train", "main", "sample_patches", "segmentation_loss"]


def default_config() -> SegmentTrainConfig:
    """The configuration of the shipped ``segment-particles`` (``scopenet train init segment``)."""
    return SegmentTrainConfig()


def sample_patches(images: list[np.ndarray], masks: list[np.ndarray], patch: int, batch: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` random ``patch`` px crops (flipped, quarter-turned) of scaled images and their masks.

    Images smaller than ``patch`` are reflect-padded (masks with the background class)."""
    xs, ys = [], []
    for _ in range(batch):
        i = int(rng.integers(len(images)))
        a, m = images[i], masks[i]
        h, w = a.shape
        if h < patch or w < patch:
            ph, pw = max(0, patch - h), max(0, patch - w)
            a = np.pad(a, ((0, ph), (0, pw)), mode="reflect" if ph < h and pw < w else "edge")
            m = np.pad(m, ((0, ph), (0, pw)))
            h, w = a.shape
        y0, x0 = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
        pa, pm = a[y0:y0 + patch, x0:x0 + patch], m[y0:y0 + patch, x0:x0 + patch]
        k = int(rng.integers(4))
        pa, pm = np.rot90(pa, k), np.rot90(pm, k)
        if rng.random() < 0.5:
            pa, pm = pa[:, ::-1], pm[:, ::-1]
        xs.append(pa)
        ys.append(pm)
    return np.ascontiguousarray(np.stack(xs)[:, None], np.float32), np.ascontiguousarray(np.stack(ys), np.int64)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy plus ``dice_weight`` times the soft Dice loss of the non-background classes.

    ``logits`` (B, K, H, W), ``target`` (B, H, W) class indices."""
    ce = F.cross_entropy(logits, target)
    if dice_weight == 0:
        return ce
    p = logits.softmax(1)[:, 1:]
    t = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(p.dtype)
    inter = (p * t).sum((0, 2, 3))
    dice = (2 * inter + 1) / (p.sum((0, 2, 3)) + t.sum((0, 2, 3)) + 1)
    return ce + dice_weight * (1 - dice.mean())


class SegmentModule(AdamCosineModule):
    """The segmentation run: Adam (cosine to ``lr * lr_final_fraction``), CE + Dice, gradient clipping."""

    def __init__(self, config: SegmentTrainConfig, net: torch.nn.Module, images: list[np.ndarray],
                 masks: list[np.ndarray], progress: bool = False, callback=None, max_steps: int | None = None,
                 time_budget_s: float | None = None, seed: int | None = None):
        c = config

        def make(rng):
            x, y = sample_patches(images, masks, c.patch, c.batch_size, rng)
            return torch.from_numpy(x), torch.from_numpy(y)

        super().__init__(c, net, make, loss_name="loss", progress=progress, callback=callback, max_steps=max_steps,
                         time_budget_s=time_budget_s, seed=seed)

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        self.net.train()
        return segmentation_loss(self.net(x).float(), y, self.config.dice_weight)


def training_data(c: SegmentTrainConfig) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """The run's scaled images and masks, and a description for the model card."""
    if c.images is not None:
        xs, ms, _ = load_pairs(c.images, c.masks, len(c.classes))
        desc = f"{len(xs)} image/mask pairs from {c.images} and {c.masks}"
    else:
        if len(c.classes) != 2:
            raise InputError("simulated training data has two classes (background, particle); give images "
                             "and masks folders for more")
        from ...simulate.em.particle_data import particle_batch

        x, m = particle_batch(c.n_sim, c.sim_size, c.sim_seed, c.sim_setting)
        xs, ms = list(x), [a.astype(np.int64) for a in m]
        desc = (f"{c.n_sim} simulated particle micrographs (scopenet.simulate.em.particle_data, setting "
                f"{c.sim_setting!r}, {c.sim_size} px, seed {c.sim_seed})")
    return [normalise(a, c.percentiles) for a in xs], ms, desc


def _members(net: torch.nn.Module) -> list[torch.nn.Module]:
    return list(net.members) if hasattr(net, "members") else [net]


def train(net: torch.nn.Module, images: list[np.ndarray], masks: list[np.ndarray],
          config: SegmentTrainConfig | None = None, *, device: str | None = None, progress: bool = False,
          resume: bool = False, callback=None) -> list[float]:
    """Train ``net`` (a :class:`~scopenet.nn.seg_unet.SegUNet`, or an ensemble of them: each member in turn,
    seeds ``seed + k``, the budget shared) on scaled images and int64 masks; returns the per-step losses."""
    c = config or SegmentTrainConfig(workdir=None)
    members = _members(net)
    losses: list[float] = []
    for k, member in enumerate(members):
        cfg = c if len(members) == 1 else c.model_copy(
            update={"workdir": None if c.workdir is None else Path(c.workdir) / f"member{k}"})
        torch.manual_seed(c.seed + k)
        module = SegmentModule(cfg, member, images, masks, progress, callback, seed=c.seed + k,
                               time_budget_s=None if c.time_budget_s is None else c.time_budget_s / len(members))
        run(module, cfg, resume=resume, device=device)
        losses += list(module.losses)
        member.eval()
    net.eval()
    return losses


def main(config: SegmentTrainConfig | str | Path, resume: bool = False, *, progress: bool = True,
         overwrite: bool = False) -> Path | None:
    """Train the segmentation model described by ``config`` (a configuration or its YAML file); returns the
    saved model's path stem ``<workdir>/model``."""
    from .._estimator import estimator_class

    Segmenter = estimator_class("segment")
    c, wd = start_run(config, SegmentTrainConfig, resume, overwrite)
    est = Segmenter(classes=list(c.classes), unet=c.unet, ensemble=c.ensemble, percentiles=c.percentiles)
    init_weights(est.net_, c, wd, resume)
    xs, ms, desc = training_data(c)
    if progress:
        print(f"data: {desc}", flush=True)
    import time

    t0 = time.perf_counter()
    losses = train(est.net_, xs, ms, c, progress=progress, resume=resume)
    est.history_ = losses
    est.update_card(training_data=desc, training={"config": c.to_dict(), "steps": len(losses),
                                                  "time_s": round(time.perf_counter() - t0, 1)})
    stem = wd / "model"
    est.save(stem, overwrite=True)
    return stem
