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
writes ``<workdir>/model.safetensors`` + ``model.json``, with held-out figures in the card when
``evaluate`` is on. ``train(net, data, config)`` is the entry ``SuperResolver.fit`` calls.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InputError
from ...training.budget import BudgetedModule, SeededStream, check_accelerator, load_init, prepare_workdir, run
from ...training.schedules import cosine
from .config import SuperResTrainConfig

__all__ = ["default_config", "SuperResModule", "train", "main", "spm_pool", "stem_pool", "real_em_tiles"]

TRAIN_SIM_SEED = 1
STEM_TRAIN_SIM_SEED = 11  # the STEM bench's simulated images use STEM_EVAL_SIM_SEED
STEM_TILE = 256


def default_config() -> SuperResTrainConfig:
    """The configuration of the shipped ``superres-spm-x4`` (``scopenet train init superres``)."""
    return SuperResTrainConfig()


def forward(net: torch.nn.Module, coarse: torch.Tensor, factor: int, sampling: str) -> torch.Tensor:
    """``(B, 1, h, w)`` coarse -> ``(B, 1, f*h, f*w)``: the network on the sampling-aligned bicubic upsample;
    with ``"decimate"`` the measured samples are kept at ``[::f, ::f]``."""
    from .model import upsample

    y = net(upsample(coarse, factor, "bicubic", sampling))
    if sampling == "decimate":
        y = y.clone()
        y[..., ::factor, ::factor] = coarse
    return y


class SuperResModule(BudgetedModule):
    """The super-resolution run: Adam (cosine to ``lr * lr_final_fraction``), MSE, gradient clipping."""

    def __init__(self, config: SuperResTrainConfig, net: torch.nn.Module, pool: np.ndarray, progress: bool = False,
                 callback=None):
        from .model import make_pairs

        c = config
        fs, patch, sampling = list(c.factors), c.patch_, c.sampling_

        def make(rng):
            f = int(fs[rng.integers(len(fs))])
            lo, hi = make_pairs(pool, f, patch, c.batch_size, rng, sampling)
            return torch.from_numpy(lo), torch.from_numpy(hi), f

        super().__init__(SeededStream(make, c.seed), c.max_steps, c.time_budget_s, c.workdir,
                         checkpoint_every_s=c.checkpoint_every_s, checkpoint_every_n_steps=c.checkpoint_every_n_steps,
                         log_header=["step", "elapsed_s", "lr", "mse"], progress=progress)
        self.net, self.config, self.callback = net, config, callback
        self._window = [0.0, 0]

    def extra_state(self) -> dict:
        return {"window": list(self._window)}

    def load_extra_state(self, state: dict) -> None:
        self._window = list(state.get("window", [0.0, 0]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.config.lr)

    def training_step(self, batch, batch_idx):
        lo, hi, f = batch
        c = self.config
        opt = self.optimizers()
        lr = c.lr * cosine(self.fraction(), c.lr_final_fraction)
        for g in opt.optimizer.param_groups:
            g["lr"] = lr
        loss = F.mse_loss(forward(self.net, lo, int(f), c.sampling_).float(), hi)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if c.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.grad_clip)
        opt.step()
        self._window[0] += float(loss.detach())
        self._window[1] += 1
        row = None
        if (self.steps + 1) % c.log_every == 0:
            row = [self.steps + 1, f"{self.elapsed():.1f}", f"{lr:.3g}", f"{self._window[0] / self._window[1]:.4e}"]
            self._window = [0.0, 0]
        self.step_done(float(loss.detach()), row)
        if self.callback is not None:
            self.callback(self.steps - 1, self.losses[-1], self.net)


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


# ------------------------------------------------------------------------------ the shipped models' data
def spm_pool(c: SuperResTrainConfig) -> tuple[np.ndarray, str]:
    """Simulated SPM images plus gordon-hsi images outside the held-out fold, and a description."""
    from . import bench as B

    n_sim = 1200 if c.n_sim is None else c.n_sim
    sims = B.sim_images(n_sim, seed=TRAIN_SIM_SEED)
    parts, desc = [sims], (f"{len(sims)} simulated SPM images (scopenet.simulate.spm.simulate_batch seed "
                           f"{TRAIN_SIM_SEED}, 128 px, min-max [0,1])")
    if c.n_real:
        real_imgs, tr, _te = B.real_split()
        pick = np.sort(np.random.default_rng(0).permutation(tr)[:c.n_real])
        parts.append(real_imgs[pick])
        desc += (f" + {len(pick)} gordon-hsi STM images from sessions outside session_folds(k=5, seed=0) "
                 f"fold {B.HOLDOUT_FOLD}")
    return np.concatenate(parts), desc


def real_em_tiles(tile: int = STEM_TILE) -> tuple[np.ndarray, list[str]]:
    """Non-overlapping ``tile x tile`` tiles of the em-real TRAIN split (each image in [0, 1], 0.01/99.99
    percentile stretch, as :func:`load_em_real`), with the ids used. Never reads the held-out split."""
    from ...training.em_real import HELD_OUT, load_em_real

    tiles, ids = [], []
    for r in load_em_real(split="train"):
        if r.id in HELD_OUT:
            raise InputError(f"em-real held-out image {r.id} in the train split")
        a = r.image
        for y in range(0, a.shape[0] - tile + 1, tile):
            for x in range(0, a.shape[1] - tile + 1, tile):
                tiles.append(a[y:y + tile, x:x + tile])
        ids.append(r.id)
    return np.stack(tiles).astype(np.float32), ids


def stem_pool(c: SuperResTrainConfig) -> tuple[np.ndarray, str]:
    """Training images for the STEM model and a description for the card."""
    from ...simulate.em.api import simulate_batch
    from . import bench as B

    n_sim = 600 if c.n_sim is None else c.n_sim
    sims = B.unit(simulate_batch(n_sim, STEM_TILE, seed=STEM_TRAIN_SIM_SEED, kind="mixed")["images"])
    desc = (f"{len(sims)} simulated EM micrographs (scopenet.simulate.em.api.simulate_batch kind='mixed', seed "
            f"{STEM_TRAIN_SIM_SEED}, {STEM_TILE} px, min-max [0,1])")
    if not c.n_real:
        return sims, desc
    real, ids = real_em_tiles()
    desc += (f" + {len(real)} non-overlapping {STEM_TILE} px tiles of the {len(ids)} em-real train-split images "
             "(scopenet.training.em_real.load_em_real(split='train'), 0.01/99.99 percentile stretch); "
             "no held-out image")
    return np.concatenate([sims, real]), desc


def _evaluate(est, c: SuperResTrainConfig) -> tuple[dict, str]:
    """Held-out figures for the card (the benchmark's images), and a note saying which."""
    from . import bench as B

    if c.domain == "stem":
        res = B.stem_benchmark(est, tuple(c.factors))
        metrics = {f"em_real_heldout_{g}_x{f}": {m: {q: round(x, 5) for q, x in v.items() if np.isfinite(x)}
                                                 for m, v in r[f].items()}
                   for g, (r, _n) in res.items() for f in r}
        ns = {g: n for g, (_r, n) in res.items()}
        return metrics, (f"python -m scopenet.tasks.superres.bench --domain stem: centre crops of the em-real "
                         f"held-out images ({ns.get('stem')} STEM, {ns.get('all')} in all) decimated by f")
    metrics = {}
    fine = B.sim_images(c.n_eval_sim)
    for f in sorted(c.factors, reverse=True):
        metrics[f"sim_x{f}"] = B.evaluate(est, fine, f)
    note = f"held-out: {len(fine)} sims seed {B.EVAL_SIM_SEED}"
    if c.n_real:
        real_imgs, _tr, te = B.real_split()
        held = real_imgs[np.sort(np.random.default_rng(0).permutation(te)[:c.n_eval_real])]
        for f in sorted(c.factors, reverse=True):
            metrics[f"real_heldout_x{f}"] = B.evaluate(est, held, f)
        note += f"; {len(held)} gordon-hsi images of fold {B.HOLDOUT_FOLD} sessions"
    metrics = {k: {m: {q: round(x, 5) for q, x in r.items()} for m, r in v.items()} for k, v in metrics.items()}
    return metrics, note + "; RMS on [0,1] fine images"


def main(config: SuperResTrainConfig | str | Path, resume: bool = False, *, progress: bool = True,
         overwrite: bool = False) -> Path | None:
    """Train the super-resolution model described by ``config`` (a configuration or its YAML file); returns
    the saved model's path stem ``<workdir>/model`` (None on DDP ranks > 0)."""
    from ...nn.vdsr import VDSR
    from .model import SuperResolver

    if not isinstance(config, SuperResTrainConfig):
        from ..runconfig import read_run_config

        config = read_run_config(config, task="superres")
    c = config
    if c.workdir is None:
        raise InputError("a training run needs a workdir")
    check_accelerator(c.accelerator)
    wd = prepare_workdir(c, resume, overwrite)
    torch.manual_seed(c.seed)
    net = VDSR(c.layers, c.channels)
    if c.init_from and not (resume and (wd / "last.ckpt").exists()):
        load_init(net, c.init_from)
    torch.set_num_threads(c.threads)
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
    if c.evaluate:
        values, note = _evaluate(est, c)
        est.update_card(metrics={"values": values, "command": note})
    stem = wd / "model"
    est.save(stem, overwrite=True)
    return stem
