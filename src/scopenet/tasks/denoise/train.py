"""Train a denoiser on the engine: ``scopenet train denoise --config run.yaml [--resume]`` or ``Denoiser.fit``.

The shipped ``denoise-default`` is trained supervised on a mix of simulated and real micrographs. Each
training pair is made with Ede's dose model (:func:`scopenet.simulate.em.noise.ede_noisy_pair`,
thesis ch. 6): a clean crop is min-max scaled to [0, 1], ``noisy = minmax(Poisson(clean * scale))`` and
the truth is the clean crop scaled to the noisy mean. Half the pairs use the low-dose scale
(25 + Exp(mean 75)) and half the high-dose scale (Uniform(200, 2500)), so one network covers both.
Clean crops come from simulated STEM lattices, simulated HRTEM, mesoscale textures and the ``train``
split of the real micrographs in ``../shared/data/em-real`` (the held-out list is never touched).
``Denoiser.fit`` trains the same way on the user's images (supervised, Noise2Noise or Noise2Void).

Loss: ``1000 * MSE`` Huberised to ``sqrt(1000 * MSE)`` above 1 (ch. 6, eq. 2); Adam with
``beta1 = 0.5``. The learning rate follows a cosine over the run's budget (the shipped run: a 38-minute
time budget on 2 CPU cores). Everything is in :class:`~scopenet.tasks.denoise.config.DenoiseTrainConfig`;
the run goes through :mod:`scopenet.training.budget` (Lightning): CPU, a GPU, or several with
``strategy: ddp``, resumable exactly from ``last.ckpt``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...training.budget import BudgetedModule, SeededStream, init_weights, run, start_run
from ...training.schedules import cosine
from .config import DenoiseTrainConfig

__all__ = ["default_config", "huber_mse_1000", "TrainingPool", "DenoiseModule", "user_batches", "train", "main"]


def default_config() -> DenoiseTrainConfig:
    """The configuration of the shipped ``denoise-default`` model (``scopenet train init denoise``)."""
    return DenoiseTrainConfig()


def huber_mse_1000(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Ede's loss (ch. 6, eq. 2): ``L = 1000*MSE`` if ``1000*MSE < 1`` else ``sqrt(1000*MSE)``.

    Parameters
    ----------
    pred, target : Tensor, same shape

    Returns
    -------
    Tensor, scalar
    """
    m = 1000.0 * torch.mean((pred - target) ** 2)
    return torch.where(m < 1.0, m, torch.sqrt(m.clamp_min(1.0)))


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(a, np.float32)


class TrainingPool:
    """Clean images to draw crops from: simulated (stem, hrtem, meso) and real (em-real train split).

    Parameters
    ----------
    n_sim_per_kind : int
        Simulated images of each kind.
    sim_size : int
        Side of the simulated images, px.
    seed : int
        Simulation seed (training images use seeds ``seed + 1000``; the benchmark uses others).
    real : bool
        Include the real micrographs when the em-real folder is present.
    """

    def __init__(self, n_sim_per_kind: int = 48, sim_size: int = 256, seed: int = 0, real: bool = True):
        from ...simulate.em import simulate_batch

        self.sim: list[np.ndarray] = []
        for j, kind in enumerate(("stem", "hrtem", "meso")):
            b = simulate_batch(n_sim_per_kind, size=sim_size, seed=seed + 1000 + j, kind=kind)
            self.sim.extend(np.asarray(b["images"], np.float32))
        self.real: list[np.ndarray] = []
        self.real_ids: list[str] = []
        if real:
            try:
                from ...training.em_real import load_em_real

                for r in load_em_real(split="train"):
                    self.real.append(r.image)
                    self.real_ids.append(r.id)
            except Exception:  # the shared data folder is optional
                self.real = []

    def describe(self) -> dict[str, Any]:
        return {"simulated": len(self.sim), "real_train": self.real_ids}

    def crop(self, rng: np.random.Generator, size: int, real_fraction: float, bin_fraction: float,
             zoom_range: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
        """One clean ``(size, size)`` crop in [0, 1], randomly flipped/rotated (and, with a ``zoom_range``
        other than (1, 1), resampled by a log-uniform zoom: random pixel sampling)."""
        from ...image.tta import dihedral

        if zoom_range[0] != 1.0 or zoom_range[1] != 1.0:
            from ...simulate.em.degrade import resample_period

            zoom = float(np.exp(rng.uniform(np.log(zoom_range[0]), np.log(zoom_range[1]))))
            side = int(np.ceil(size / zoom)) + 2
            c = self.crop(rng, side, real_fraction, bin_fraction)
            return _minmax(resample_period(c, zoom, (size, size), rng))

        if self.real and rng.random() < real_fraction:
            img = self.real[rng.integers(len(self.real))]
            if rng.random() < bin_fraction and min(img.shape) >= 2 * size + 2:
                h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
                img = img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        else:
            img = self.sim[rng.integers(len(self.sim))]
        h, w = img.shape
        if h < size or w < size:
            img = np.pad(img, ((0, max(0, size - h)), (0, max(0, size - w))), mode="reflect")
            h, w = img.shape
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        c = img[y:y + size, x:x + size]
        return _minmax(np.ascontiguousarray(dihedral(c, int(rng.integers(8)))))

    def batch(self, rng: np.random.Generator, n: int, size: int, real_fraction: float = 0.5,
              high_fraction: float = 0.5, bin_fraction: float = 0.5, *, degradation: str = "ede",
              physical_fraction: float = 0.7, zoom_range: tuple[float, float] = (1.0, 1.0),
              normalise: str = "minmax", percentiles: tuple[float, float] = (0.1, 99.9)
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(noisy, truth)`` tensors ``(n, 1, size, size)`` made with Ede's dose model (``degradation="ede"``)
        or the physical model / a mix (:func:`scopenet.tasks.denoise.pairs.make_pair`)."""
        from ...simulate.em.noise import ede_noisy_pair
        from .pairs import make_pair

        xs, ys = [], []
        for _ in range(n):
            c = self.crop(rng, size, real_fraction, bin_fraction, zoom_range)
            if c.max() <= c.min():
                c = rng.random(c.shape).astype(np.float32)
            if degradation != "ede" or normalise != "minmax":
                noisy, truth = make_pair(c, rng, degradation, high_fraction=high_fraction,
                                         physical_fraction=physical_fraction, normalise=normalise,
                                         percentiles=percentiles)
                xs.append(noisy)
                ys.append(truth)
                continue
            regime = "high" if rng.random() < high_fraction else "low"
            noisy, truth = ede_noisy_pair(c, rng, regime)
            xs.append(noisy)
            ys.append(truth)
        return (torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None]))


class DenoiseModule(BudgetedModule):
    """The denoising run: Adam, cosine learning rate over the budget, Ede's Huberised loss.

    ``make(rng)`` returns ``(noisy, truth)`` or, for Noise2Void, ``(masked, original, mask)`` tensors
    ``(B, 1, S, S)``; with a mask the loss is taken at the masked pixels only.
    """

    def __init__(self, config: DenoiseTrainConfig, net: torch.nn.Module, make: Callable, progress: bool = False):
        c = config
        super().__init__(SeededStream(make, c.seed), c.max_steps, c.time_budget_s, c.workdir,
                         checkpoint_every_s=c.checkpoint_every_s, checkpoint_every_n_steps=c.checkpoint_every_n_steps,
                         log_header=["step", "elapsed_s", "lr", "loss", "mse"], progress=progress)
        self.net, self.config = net, config
        self._window = [0.0, 0.0, 0]  # loss sum, mse sum, steps since the last log row

    def extra_state(self) -> dict:
        return {"window": list(self._window)}

    def load_extra_state(self, state: dict) -> None:
        self._window = list(state.get("window", [0.0, 0.0, 0]))

    def configure_optimizers(self):
        c = self.config
        return torch.optim.Adam(self.net.parameters(), lr=c.lr, betas=tuple(c.betas), weight_decay=c.weight_decay)

    def training_step(self, batch, batch_idx):
        x, y, *mask = batch
        opt = self.optimizers()
        lr = self.config.lr * cosine(self.fraction(), self.config.lr_final_fraction)
        for g in opt.optimizer.param_groups:
            g["lr"] = lr
        pred = self.net(x).float()
        if mask:
            m = mask[0]
            loss = huber_mse_1000(pred[m], y[m])
        else:
            loss = huber_mse_1000(pred, y)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        w = self._window
        w[0] += float(loss.detach())
        w[1] += float(torch.mean((pred.detach().clamp(0, 1) - y) ** 2))
        w[2] += 1
        row = None
        if (self.steps + 1) % self.config.log_every == 0:
            row = [self.steps + 1, f"{self.elapsed():.1f}", f"{lr:.3g}", f"{w[0] / w[2]:.5f}", f"{w[1] / w[2]:.3e}"]
            self._window = [0.0, 0.0, 0]
        self.step_done(float(loss.detach()), row)


def _unit(a: np.ndarray) -> tuple[np.ndarray, float, float]:
    a = np.asarray(a, np.float64)
    lo, hi = float(a.min()), float(a.max())
    return (((a - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros(a.shape, np.float32)), lo, hi


def user_batches(images: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None,
                 config: DenoiseTrainConfig) -> Callable[[np.random.Generator], tuple]:
    """``make(rng)`` of training batches from the user's images (``Denoiser.fit``), by ``config.mode``.

    ``supervised``: clean ``images`` get Ede's dose noise, unless ``targets`` are given (then ``images``
    are the noisy inputs). ``n2n``: ``targets`` hold a second noisy frame of each image, or the images are
    stacks of >= 2 frames (two different frames per crop). ``n2v``: blind-spot masking
    (:func:`~scopenet.tasks.denoise.model.n2v_mask`). Pairs are scaled jointly by the input crop's range.
    Images are 2-D arrays (or ``(n, H, W)`` stacks) at least ``crop_size`` on a side.
    """
    from ...image.tta import dihedral
    from ...simulate.em.noise import ede_noisy_pair

    mode, size = config.mode, config.crop_size
    srcs = [np.asarray(a) for a in images]
    tgts = None if targets is None else [np.asarray(a) for a in targets]

    def crop_pair(rng):
        i = int(rng.integers(len(srcs)))
        a = srcs[i]
        if a.ndim == 3:  # stack: pick frames
            j, k = rng.choice(a.shape[0], 2, replace=False) if a.shape[0] >= 2 else (0, 0)
            a, b = a[j], a[k]
        else:
            b = tgts[i] if tgts is not None else None
        h, w = a.shape
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        t = int(rng.integers(8))
        ca = dihedral(a[y:y + size, x:x + size], t)
        cb = dihedral(b[y:y + size, x:x + size], t) if b is not None else None
        return ca, cb

    def make(rng):
        from .n2v import n2v_mask

        xs, ys, ms = [], [], []
        for _ in range(config.batch_size):
            ca, cb = crop_pair(rng)
            if mode == "supervised" and cb is None:
                noisy, truth = ede_noisy_pair(ca, rng, "high" if rng.random() < config.high_dose_fraction else "low")
                xs.append(noisy), ys.append(truth)
                continue
            if config.normalise == "robust":
                from ...image.scaling import robust_unit_scale

                u, rs = robust_unit_scale(ca, tuple(config.percentiles))
                lo, hi = rs.lo, rs.lo + rs.span
            else:
                u, lo, hi = _unit(ca)
            scale = (hi - lo) if hi > lo else 1.0
            if mode == "n2v":
                masked, mask = n2v_mask(u, rng, config.n2v_fraction, config.n2v_radius,
                                        struct=config.n2v_struct, axis=config.n2v_struct_axis,
                                        sampling=config.n2v_sampling)
                xs.append(masked), ys.append(u), ms.append(mask)
            else:
                tb = ((np.asarray(cb, np.float64) - lo) / scale).astype(np.float32)
                if mode == "n2n" and rng.random() < 0.5:  # symmetric: either frame may be the input
                    u, tb = tb, u
                xs.append(u), ys.append(tb)
        out = (torch.from_numpy(np.stack(xs)[:, None].astype(np.float32)),
               torch.from_numpy(np.stack(ys)[:, None].astype(np.float32)))
        return out + (torch.from_numpy(np.stack(ms)[:, None]),) if ms else out

    return make


def train(net: torch.nn.Module, data: Any = None, config: DenoiseTrainConfig | None = None, *,
          device: str | None = None, progress: bool = False, resume: bool = False) -> list[float]:
    """Train ``net`` as ``config`` says; returns the loss of every step of the run.

    Parameters
    ----------
    net : torch.nn.Module
        Trained in place (left in eval mode).
    data : None, TrainingPool, (images, targets) or callable
        None: a :class:`TrainingPool` made from the configuration; a pool; the user's images and targets
        (or None) for :func:`user_batches`; or ``make(rng) -> batch``.
    config : DenoiseTrainConfig
        With a ``workdir`` the run writes ``last.ckpt`` and ``log.csv`` there (and ``resume`` continues it);
        with ``workdir=None`` nothing is written.
    device : str, optional
        "cpu", "cuda", "cuda:1", "mps" (an estimator's device); default the configuration's accelerator.
    """
    return list(_run(net, data, config, device=device, progress=progress, resume=resume)[0].losses)


def _run(net, data, config, *, device=None, progress=False, resume=False):
    c = config or DenoiseTrainConfig()
    if data is None:
        data = TrainingPool(c.n_sim_per_kind, c.sim_size, c.seed, c.use_real)
    if isinstance(data, TrainingPool):
        pool = data
        fr = (c.real_fraction, c.high_dose_fraction, c.bin_real_fraction)

        def make(rng):
            return pool.batch(rng, c.batch_size, c.crop_size, *fr, degradation=c.degradation,
                              physical_fraction=c.physical_fraction, zoom_range=tuple(c.zoom_range),
                              normalise=c.normalise, percentiles=tuple(c.percentiles))
    elif callable(data):
        make = data
    else:
        images, targets = data
        make = user_batches(images, targets, c)
    module = DenoiseModule(c, net, make, progress)
    trainer = run(module, c, resume=resume, device=device)
    net.eval()
    return module, trainer


def _noise_model_text(c: DenoiseTrainConfig) -> str:
    ede = (f"Ede ch.6: minmax(Poisson(clean*scale)), low 25+Exp(75) / high U(200,2500), "
           f"{round(100 * (1 - c.high_dose_fraction))}/{round(100 * c.high_dose_fraction)}")
    phys = "physical (scopenet.simulate.em.degrade.random_degradation: TEM/STEM/SEM)"
    txt = {"ede": ede, "physical": phys,
           "mixed": f"{round(100 * c.physical_fraction)}% {phys}, else {ede}"}[c.degradation]
    if tuple(c.zoom_range) != (1.0, 1.0):
        txt += f"; clean crops resampled by zoom log-U{tuple(c.zoom_range)}"
    if c.normalise == "robust":
        txt += f"; inputs scaled by robust percentiles {tuple(c.percentiles)} and clipped to [0,1]"
    return txt


def main(config: DenoiseTrainConfig | str | Path, resume: bool = False, *, progress: bool = True,
         overwrite: bool = False) -> Path:
    """Train the denoiser described by ``config`` (a configuration or its YAML file); returns the run folder.

    The run folder (``workdir``) holds ``run.yaml``, ``last.ckpt`` (resumable checkpoint), ``log.csv`` and,
    at the end, ``model.safetensors`` + ``model.json`` (a saved model loadable with ``Denoiser.load``).
    """
    from ...nn import build_architecture
    from ...training.packaging import save_model

    c, run_dir = start_run(config, DenoiseTrainConfig, resume, overwrite)  # before the pool is simulated
    model = build_architecture(c.architecture, c.arch_config)
    init_weights(model, c, run_dir, resume)  # fine-tuning a saved model or a run
    pool = TrainingPool(c.n_sim_per_kind, c.sim_size, c.seed, c.use_real)
    module, trainer = _run(model, pool, c, progress=progress, resume=resume)
    if not trainer.is_global_zero:
        return run_dir
    card = {"task": "denoise", "training_data": pool.describe(), "training_time_s": round(module.elapsed(), 1),
            "training_steps": module.steps, "config": c.to_dict(),
            "noise_model": _noise_model_text(c)}
    save_model(run_dir / "model", model.cpu().eval(), card, overwrite=True)
    return run_dir
