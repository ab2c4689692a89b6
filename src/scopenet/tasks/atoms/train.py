"""Train an atom finder on the engine: ``scripts/train_atoms.py`` (recipe ``recipes/atoms-default.yaml``).

Every batch is simulated on the fly, so the run never sees the same image twice: HAADF-STEM columns of
the *training* crystals (:func:`scopenet.simulate.em.atoms.atom_image`, ``split="train"``: the
structures in :data:`~scopenet.simulate.em.atoms.HELD_OUT_STRUCTURES` never appear) at spacings of
4-30 px and peak doses of 10-1000 counts, and a share of SPM-like surfaces
(:func:`~scopenet.simulate.em.atoms.spm_atom_image`). The network (a U-Net without normalisation layers)
maps the normalised image (:func:`~scopenet.tasks.atoms.postprocess.normalise`) to heatmap logits; the
target is a Gaussian of peak 1 at each atom (:func:`~scopenet.simulate.em.atoms.heatmap`), the loss the
binary cross-entropy. Users' own images train through :meth:`AtomFinder.fit` (the same module on their
images and coordinates or masks).

The run goes through :mod:`scopenet.training.budget` (Lightning; resumable from ``last.ckpt``) and writes
``<workdir>/model.safetensors`` + ``model.json``; its held-out figures come from ``scopenet bench atoms``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...simulate.em.atoms import atom_image, heat_sigma, heatmap, spm_atom_image
from ...training.budget import AdamCosineModule, init_weights, run, start_run
from .config import AtomsTrainConfig
from .postprocess import normalise

__all__ = ["default_config", "simulated_batch", "pool_batch_maker", "AtomsModule", "train", "main"]


def default_config() -> AtomsTrainConfig:
    """The configuration of the shipped ``atoms-default``."""
    return AtomsTrainConfig()


def simulated_batch(rng: np.random.Generator, batch_size: int, patch: int, spm_fraction: float = 0.15,
                    split: str = "train", sigma_frac: tuple[float, float] | None = None,
                    sigma_frac_p: float = 1.0, detector_p: float = 0.0,
                    support_max: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A batch of simulated images and target heatmaps (column widths drawn from ``sigma_frac`` x the
    spacing when given, for a share ``sigma_frac_p`` of the STEM images; else the simulator's default range; a
    share ``detector_p`` of them with the detector and scan-electronics model; the support's amplitude from 0 to
    ``support_max`` when given, else the simulator's default).

    Returns
    -------
    x, y : ndarray, float32, shape (B, 1, patch, patch)
        Normalised images and heatmaps in [0, 1].
    """
    xs, ys = [], []
    for _ in range(batch_size):
        if rng.random() < spm_fraction:
            a = spm_atom_image(rng, patch)
        else:
            wide = sigma_frac is not None and (sigma_frac_p >= 1.0 or rng.random() < sigma_frac_p)
            sf = float(rng.uniform(*sigma_frac)) if wide else None
            det = detector_p > 0 and rng.random() < detector_p
            supp = float(rng.uniform(0.0, support_max)) if support_max is not None else None
            a = atom_image(rng, patch, split=split, sigma_frac=sf, detector=det, support=supp)
        xs.append(normalise(a.image))
        ys.append(heatmap(a.image.shape, a.atoms, heat_sigma(a.spacing_px)))
    return np.stack(xs)[:, None].astype(np.float32), np.stack(ys)[:, None].astype(np.float32)


def pool_batch_maker(images: np.ndarray, targets: np.ndarray, batch_size: int, patch: int
                     ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Random crops (with flips and 90-degree turns) of the user's normalised images and heatmaps."""
    n, h, w = images.shape

    def make(rng):
        xs, ys = [], []
        for _ in range(batch_size):
            i = int(rng.integers(n))
            r, c = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
            x, y = images[i, r:r + patch, c:c + patch], targets[i, r:r + patch, c:c + patch]
            k = int(rng.integers(4))
            x, y = np.rot90(x, k), np.rot90(y, k)
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[:, ::-1]
            xs.append(x)
            ys.append(y)
        return np.stack(xs)[:, None].astype(np.float32), np.stack(ys)[:, None].astype(np.float32)

    return make


class AtomsModule(AdamCosineModule):
    """The atom-finding run: Adam (cosine to ``lr * lr_final_fraction``), BCE on heatmap logits."""

    def __init__(self, config: AtomsTrainConfig, net: torch.nn.Module, make=None, progress: bool = False,
                 callback=None):
        c = config
        if make is None:
            def make(rng):
                return simulated_batch(rng, c.batch_size, c.patch, c.spm_fraction, sigma_frac=c.sigma_frac,
                                       sigma_frac_p=c.sigma_frac_p, detector_p=c.detector_p,
                                       support_max=c.support_max)

        def to_torch(rng):
            x, y = make(rng)
            return torch.from_numpy(x), torch.from_numpy(y)

        super().__init__(c, net, to_torch, loss_name="bce", progress=progress, callback=callback)

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        return F.binary_cross_entropy_with_logits(self.net(x).float(), y)


def train(net: torch.nn.Module, config: AtomsTrainConfig, make=None, *, device: str | None = None,
          progress: bool = False, resume: bool = False, callback=None) -> list[float]:
    """Train ``net`` as ``config`` says on batches ``make(rng) -> (x, y)`` (None: simulated); returns the
    per-step losses. With ``config.workdir`` the run checkpoints there (``resume`` continues it)."""
    module = AtomsModule(config, net, make, progress, callback)
    run(module, config, resume=resume, device=device)
    net.eval()
    return list(module.losses)


def main(config: AtomsTrainConfig | str | Path, resume: bool = False, *, progress: bool = True,
         overwrite: bool = False) -> Path | None:
    """Train the atom finder described by ``config`` (a configuration or its YAML file); returns the saved
    model's path stem ``<workdir>/model``."""
    from ...nn.unet import UNet
    from .._estimator import estimator_class

    AtomFinder = estimator_class("atoms")  # from the registry: its module calls this one's train()

    c, wd = start_run(config, AtomsTrainConfig, resume, overwrite)
    arch = {"in_channels": 1, "out_channels": 1, "depth": c.depth, "base_channels": c.base_channels,
            "norm": "none"}
    net = UNet(**arch)
    init_weights(net, c, wd, resume)
    module = AtomsModule(c, net, None, progress)
    run(module, c, resume=resume)
    net.eval()
    est = AtomFinder(arch_config=arch)
    est.net_ = net.cpu().eval()
    est.update_card(training_data=("simulated on the fly: HAADF-STEM columns of the training crystals "
                                   f"(held out: see scopenet.simulate.em.atoms.HELD_OUT_STRUCTURES), "
                                   f"{c.spm_fraction:.0%} SPM-like surfaces; {c.patch} px patches"),
                    training={"config": c.to_dict(), "steps": module.steps, "time_s": round(module.elapsed(), 1)})
    stem = wd / "model"
    est.save(stem, overwrite=True)
    return stem
