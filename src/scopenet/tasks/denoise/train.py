"""Train the compact default denoiser: supervised, on a mix of simulated and real micrographs.

Each training pair is made with Ede's dose model (:func:`scopenet.simulate.em.noise.ede_noisy_pair`,
thesis ch. 6): a clean crop is min-max scaled to [0, 1], ``noisy = minmax(Poisson(clean * scale))`` and
the truth is the clean crop scaled to the noisy mean. Half the pairs use the low-dose scale
(25 + Exp(mean 75)) and half the high-dose scale (Uniform(200, 2500)), so one network covers both.
Clean crops come from simulated STEM lattices, simulated HRTEM, mesoscale textures and the ``train``
split of the real micrographs in ``../shared/data/em-real`` (the held-out list is never touched).

Loss: ``1000 * MSE`` Huberised to ``sqrt(1000 * MSE)`` above 1 (ch. 6, eq. 2); Adam with
``beta1 = 0.5``. The learning rate follows a cosine over the run's *time budget* (the run is meant
to finish in under an hour on 2 CPU cores), and the run writes ``last.ckpt`` every
``checkpoint_every_n_steps`` so that ``--resume`` continues where it stopped. It runs through
:mod:`scopenet.training.budget` (Lightning): CPU, a GPU, or several with ``strategy: ddp``.

Run it with ``scopenet train denoise --config run.yaml`` or ``python scripts/train_denoise.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from ...training.budget import (CHECKPOINT, BudgetedModule, SeededStream, check_accelerator, checkpoint_state,
                                cosine, fit_budgeted)
from ...training.config import DataConfig, OptimConfig, RunConfig, TrainerConfig

__all__ = ["default_config", "huber_mse_1000", "TrainingPool", "DenoiseModule", "main"]


def default_config() -> RunConfig:
    """The configuration of the shipped ``denoise-default`` model."""
    return RunConfig(
        task="denoise", name="denoise-default", out_dir=Path("runs"),
        model={"name": "denoise-compact", "config": {"widths": [24, 48, 96], "residual": True}},
        data=DataConfig(crop_size=96, batch_size=8, normalise="minmax", augment=True),
        optim=OptimConfig(optimizer="adam", lr=1e-3, betas=(0.5, 0.999), weight_decay=0.0),
        trainer=TrainerConfig(max_steps=100000, checkpoint_every_n_steps=50, seed=0, log_every=10),
        extra={"time_budget_min": 38.0, "n_sim_per_kind": 48, "sim_size": 256, "real_fraction": 0.5,
               "high_dose_fraction": 0.5, "bin_real_fraction": 0.5, "min_lr_fraction": 0.02,
               "threads": 1, "use_real": True, "init_weights": None},
    )


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

    def crop(self, rng: np.random.Generator, size: int, real_fraction: float, bin_fraction: float) -> np.ndarray:
        """One clean ``(size, size)`` crop in [0, 1], randomly flipped/rotated."""
        from ...training.data import dihedral

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
              high_fraction: float = 0.5, bin_fraction: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
        """``(noisy, truth)`` tensors ``(n, 1, size, size)`` made with Ede's dose model."""
        from ...simulate.em.noise import ede_noisy_pair

        xs, ys = [], []
        for _ in range(n):
            c = self.crop(rng, size, real_fraction, bin_fraction)
            if c.max() <= c.min():
                c = rng.random(c.shape).astype(np.float32)
            regime = "high" if rng.random() < high_fraction else "low"
            noisy, truth = ede_noisy_pair(c, rng, regime)
            xs.append(noisy)
            ys.append(truth)
        return (torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None]))


class DenoiseModule(BudgetedModule):
    """The denoising run: Adam, cosine learning rate over the time budget, Ede's Huberised loss."""

    def __init__(self, config: RunConfig, model: torch.nn.Module, pool: TrainingPool, ex: dict,
                 workdir: Path | None, progress: bool):
        d = config.data
        fr = (float(ex["real_fraction"]), float(ex["high_dose_fraction"]), float(ex["bin_real_fraction"]))

        def make(rng):
            return pool.batch(rng, d.batch_size, d.crop_size, *fr)

        t = config.trainer
        super().__init__(SeededStream(make, t.seed), t.max_steps, float(ex["time_budget_min"]) * 60.0, workdir,
                         checkpoint_every_s=None, checkpoint_every_n_steps=t.checkpoint_every_n_steps,
                         log_header=["step", "elapsed_s", "lr", "loss", "mse"], progress=progress)
        self.net, self.config, self.floor = model, config, float(ex["min_lr_fraction"])
        self._window = [0.0, 0.0, 0]  # loss sum, mse sum, steps since the last log row

    def configure_optimizers(self):
        o = self.config.optim
        return torch.optim.Adam(self.net.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt = self.optimizers()
        lr = self.config.optim.lr * cosine(self.fraction(), self.floor)
        for g in opt.optimizer.param_groups:
            g["lr"] = lr
        pred = self.net(x).float()
        loss = huber_mse_1000(pred, y)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        w = self._window
        w[0] += float(loss.detach())
        w[1] += float(torch.mean((pred.detach().clamp(0, 1) - y) ** 2))
        w[2] += 1
        row = None
        if (self.steps + 1) % self.config.trainer.log_every == 0:
            row = [self.steps + 1, f"{self.elapsed():.1f}", f"{lr:.3g}", f"{w[0] / w[2]:.5f}", f"{w[1] / w[2]:.3e}"]
            self._window = [0.0, 0.0, 0]
        self.step_done(float(loss.detach()), row)


def main(config: RunConfig | str | Path, resume: bool = False, *, progress: bool = True) -> Path:
    """Train the compact denoiser described by ``config``; returns the run folder.

    The run folder holds ``run.yaml``, ``last.ckpt`` (resumable checkpoint), ``log.csv`` and, at the
    end, ``model.safetensors`` + ``model.json`` (a saved model loadable with ``Denoiser.load``). The
    trainer section's ``accelerator``, ``devices``, ``strategy`` ("ddp" for several GPUs) and
    ``precision`` choose where it runs (Lightning).
    """
    from ...nn import build_architecture
    from ...training.packaging import save_model
    from . import net  # noqa: F401  (registers "denoise-compact")

    if not isinstance(config, RunConfig):
        config = RunConfig.from_yaml(config)
    if config.task != "denoise":
        raise InputError(f"configuration is for task {config.task!r}, not 'denoise'")
    ex = {**default_config().extra, **config.extra}
    check_accelerator(config.trainer.accelerator)  # before the pool is simulated
    torch.set_num_threads(int(ex.get("threads", 2)))
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / CHECKPOINT
    if not (run_dir / "run.yaml").exists():
        config.to_yaml(run_dir / "run.yaml")
    elif not resume and ckpt.exists():
        raise InputError(f"{run_dir} already holds a run; pass resume=True (--resume) or choose another name")

    torch.manual_seed(config.trainer.seed)
    model = build_architecture(config.model["name"], config.model.get("config", {}))
    init = ex.get("init_weights")
    if init and not (resume and ckpt.exists()):  # fine-tuning: start from a saved model or a run's checkpoint
        ip = Path(init)
        if ip.suffix == ".ckpt":
            model.load_state_dict(checkpoint_state(ip)["modules"]["net"])
        elif ip.suffix == ".pt":  # runs made before training moved to Lightning
            model.load_state_dict(torch.load(ip, map_location="cpu", weights_only=False)["model"])
        else:
            from ...training.packaging import load_model

            model.load_state_dict(load_model(ip).state_dict())
    pool = TrainingPool(int(ex["n_sim_per_kind"]), int(ex["sim_size"]), config.trainer.seed, bool(ex["use_real"]))
    module = DenoiseModule(config, model, pool, ex, run_dir, progress)
    t = config.trainer
    trainer = fit_budgeted(module, resume=resume, accelerator=t.accelerator, devices=t.devices, strategy=t.strategy,
                           precision=t.precision, num_workers=config.data.num_workers)
    if not trainer.is_global_zero:
        return run_dir
    card = {"task": "denoise", "training_data": pool.describe(), "training_time_s": round(module.elapsed(), 1),
            "training_steps": module.steps, "config": config.to_dict(),
            "noise_model": "Ede ch.6: minmax(Poisson(clean*scale)), low 25+Exp(75) / high U(200,2500), 50/50"}
    save_model(run_dir / "model", model.cpu().eval(), card, overwrite=True)
    return run_dir
