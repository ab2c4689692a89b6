"""Train the coverage-agnostic completion model: ``scopenet train inpaint --config run.yaml [--resume]``.

A resumable Lightning run (manual optimisation; CPU, GPU or multi-GPU DDP from the config's
``accelerator``/``devices``/``strategy``; small enough for a laptop CPU): samples are drawn on the fly from a
pool of simulated micrographs (STEM / HRTEM / mesoscale, :mod:`scopenet.simulate.em`) and the
``train`` split of the real em-real micrographs, masked with spiral, jittered-grid, random-pixel and
random-segment paths at coverages 1/100 ... 1/10, infilled with nearest neighbours; loss
``200 * ALRC(MSE)`` against the Gaussian-blurred truth (plus, with ``adversarial=True``, an LSGAN term
from three multi-scale discriminators with experience replay). Checkpoints (``last.ckpt``) every
``checkpoint_every_s``; the run stops at ``max_steps`` or ``time_budget_s`` of training time and
writes ``<workdir>/model.safetensors`` + ``model.json``. ``train(net, data, config)`` is the entry the
estimator's ``fit`` calls; ``main(config, resume)`` the one of ``scopenet train inpaint``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ...nn import build_architecture
from ...nn import partial_stem  # noqa: F401  (registers the architectures)
from ...training.alrc import ALRC
from ...training.budget import BudgetedModule, SeededStream, checkpoint_state, run, start_run
from ...training.schedules import cosine
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
    return cfg.lr * cosine(frac, cfg.lr_final_fraction)


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


def _discriminator_step(disc, d_opt, replay, fake: torch.Tensor, real: torch.Tensor, backward=None) -> float:
    """One LSGAN update of the discriminators: ``real`` = blurred truths, fake = replayed generator outputs.

    ``backward(loss)`` runs the backward pass (Lightning's ``manual_backward`` in training; default
    ``loss.backward()``).
    """
    from ...nn.partial_stem import lsgan_discriminator_loss

    d_loss = lsgan_discriminator_loss(disc(real), disc(replay.push_and_sample(fake.detach())))
    d_opt.zero_grad()
    (backward or torch.Tensor.backward)(d_loss)
    d_opt.step()
    return float(d_loss.detach())


class InpaintModule(BudgetedModule):
    """The completion run: generator (and optional discriminators) with manual optimisation.

    The learning rate follows a cosine from ``lr`` to ``lr * lr_final_fraction`` over whichever of
    ``max_steps`` and ``time_budget_s`` runs out first. Ede's two-scale generator also trains its
    auxiliary "trainer" head: its half-size completion gets the same loss (own ALRC statistics)
    against the half-size target.
    """

    def __init__(self, cfg: InpaintTrainConfig, net: torch.nn.Module, pool: list[np.ndarray],
                 masks: list[np.ndarray], workdir: Path | None = None, verbose: bool = True):
        def make(rng):
            x, y, truth = make_batch(pool, masks, cfg.batch_size, cfg.crop, rng, cfg.blur_size, cfg.blur_sigma)
            return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(truth)

        super().__init__(SeededStream(make, cfg.seed), cfg.max_steps, cfg.time_budget_s, workdir,
                         checkpoint_every_s=cfg.checkpoint_every_s,
                         checkpoint_every_n_steps=cfg.checkpoint_every_n_steps)
        self.cfg, self.verbose = cfg, verbose
        self.net = net
        self.clip = ALRC(mode="example", **cfg.alrc)
        self.aux = bool(getattr(net, "arch_name", "") == "partial-stem-generator")
        self.clip_aux = ALRC(mode="example", **cfg.alrc) if self.aux else None
        self.disc = self.replay = None
        if cfg.adversarial:
            from ...nn.partial_stem import MultiScaleDiscriminator
            from .adversarial import ReplayBuffer

            self.disc = MultiScaleDiscriminator(cfg.disc_channels, tuple(cfg.disc_crop_sizes), cfg.disc_input)
            self.replay = ReplayBuffer(cfg.replay_size, seed=cfg.seed)
        self.running = {"loss": None, "rms": None, "nn": None, "g_adv": None, "d": None}

    def extra_state(self) -> dict:
        st = {"running": dict(self.running), "config": self.cfg.model_dump(mode="json")}
        if self.replay is not None:
            st["replay"] = self.replay.state_dict()
        return st

    def load_extra_state(self, state: dict) -> None:
        self.running.update(state.get("running", {}))
        if self.replay is not None and "replay" in state:
            self.replay.load_state_dict(state["replay"])

    def on_train_start(self):
        super().on_train_start()
        if self.verbose and self.steps:
            self.print(f"resumed at step {self.steps} ({self.elapsed_before:.0f} s)", flush=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr)
        if self.disc is None:
            return opt
        return [opt, torch.optim.Adam(self.disc.parameters(), lr=self.cfg.disc_lr, betas=(0.5, 0.999))]

    def training_step(self, batch, batch_idx):
        cfg = self.cfg
        x, y, truth = batch
        opts = self.optimizers()
        g_opt, d_opt = (opts[0], opts[1]) if self.disc is not None else (opts, None)
        for g in g_opt.optimizer.param_groups:
            g["lr"] = _lr(cfg, self.fraction())
        if self.aux:
            out, half = self.net(x, return_aux=True)
            y_half = torch.nn.functional.avg_pool2d(y, 2)
            loss = self.clip(cfg.loss_scale * ((out.float() - y) ** 2).mean(dim=(1, 2, 3))) \
                + self.clip_aux(cfg.loss_scale * ((half.float() - y_half) ** 2).mean(dim=(1, 2, 3)))
        else:
            out = self.net(x)  # losses in float32 also under mixed precision
            loss = self.clip(cfg.loss_scale * ((out.float() - y) ** 2).mean(dim=(1, 2, 3)))
        g_adv = d_loss = None
        if self.disc is not None:
            g_adv = _generator_adv_loss(self.disc, out, cfg.lambda_adv)
            loss = loss + g_adv
        g_opt.zero_grad()
        self.manual_backward(loss)
        g_opt.step()
        if self.disc is not None:  # after the generator's step, so its graph saw the discriminators unchanged
            d_loss = _discriminator_step(self.disc, d_opt, self.replay, out, y, self.manual_backward)
        with torch.no_grad():
            rms = float(((out.float() - truth) ** 2).mean().sqrt())
            nnr = float(((x[:, :1] - truth) ** 2).mean().sqrt())
        r = self.running
        r["loss"], r["rms"], r["nn"] = _ema(r["loss"], float(loss.detach())), _ema(r["rms"], rms), _ema(r["nn"], nnr)
        if g_adv is not None:
            r["g_adv"], r["d"] = _ema(r["g_adv"], float(g_adv.detach())), _ema(r["d"], d_loss)
        due = (self.steps + 1) % cfg.log_every == 0
        row = None
        if due:
            row = [self.steps + 1, f"{self.elapsed():.0f}", f"{r['loss']:.4f}", f"{r['rms']:.4f}", f"{r['nn']:.4f}"]
            if self.disc is not None:  # two more columns: the generator's adversarial loss, the discriminators' loss
                row += [f"{r['g_adv']:.4f}", f"{r['d']:.4f}"]
        self.step_done(float(loss.detach()), row)
        if due and self.verbose and self.global_rank == 0:
            adv = f" g_adv={r['g_adv']:.4f} d={r['d']:.4f}" if self.disc is not None else ""
            print(f"step {self.steps} t={self.elapsed():.0f}s loss={r['loss']:.4f} rms={r['rms']:.4f} "
                  f"(nn infill {r['nn']:.4f}){adv}", flush=True)


def train_network(net: torch.nn.Module, pool: list[np.ndarray], cfg: InpaintTrainConfig, *,
                  workdir: Path | None = None, resume: bool = True, verbose: bool = True,
                  mask_size: int | None = None, device: str | None = None) -> InpaintModule:
    """Train ``net`` on ``pool`` (images in [0, 1]) with Lightning; returns the finished module.

    With a ``workdir`` the run writes ``last.ckpt`` (every ``checkpoint_every_s`` and at the end) and
    ``log.csv``, and resumes from ``last.ckpt`` when ``resume``; without one nothing is written.
    Masks are cut from a bank of ``mask_size`` px paths (default ``max(512, crop)``). The module's
    ``is_global_zero_`` tells whether this process should save results (DDP).
    """
    masks = mask_bank(cfg.kinds, cfg.coverage_min, cfg.coverage_max, cfg.n_coverages, cfg.masks_per_level,
                      size=mask_size or max(512, cfg.crop), seed=cfg.seed)
    module = InpaintModule(cfg, net, pool, masks, workdir, verbose)
    if verbose:
        print(f"pool {len(pool)} images, {len(masks)} masks", flush=True)
    trainer = run(module, cfg, resume=resume, device=device, find_unused_parameters=cfg.adversarial)
    module.is_global_zero_ = trainer.is_global_zero
    return module


def train(net: torch.nn.Module, data: list[np.ndarray] | None = None, config: InpaintTrainConfig | None = None, *,
          device: str | None = None, progress: bool = False, resume: bool = False,
          mask_size: int | None = None) -> list[float]:
    """Train ``net`` on ``data`` (images in [0, 1]; None: the pool of :func:`image_pool`) as ``config`` says;
    returns the loss of every step. With ``config.workdir`` the run checkpoints there (``resume`` continues
    it); with ``workdir=None`` nothing is written. ``progress`` prints the running losses."""
    cfg = config or InpaintTrainConfig()
    pool = image_pool(cfg)[0] if data is None else data
    if cfg.workdir is not None:  # checkpoints and log.csv go there (Inpainter.fit(workdir=...) as much as the CLI)
        Path(cfg.workdir).mkdir(parents=True, exist_ok=True)
    module = train_network(net, pool, cfg, workdir=cfg.workdir, resume=resume, verbose=progress,
                           mask_size=mask_size, device=device)
    net.eval()
    return list(module.losses)


def default_config() -> InpaintTrainConfig:
    """The default run (``scopenet train init inpaint``)."""
    return InpaintTrainConfig()


def load_config(path: str | Path) -> InpaintTrainConfig:
    """Read a run configuration (``scopenet train inpaint --config``)."""
    return InpaintTrainConfig.from_yaml(path)


def main(config: InpaintTrainConfig | dict | str | Path | None = None, resume: bool = True,
         overwrite: bool = False) -> Path | None:
    """Run (or resume) a training run; returns the path stem of the saved model (None on DDP ranks > 0).

    ``resume=False`` on a workdir that holds a checkpoint is refused unless ``overwrite=True``
    (which starts the run over from step 0).

    Runs through Lightning: ``accelerator``/``devices``/``strategy`` in the config choose CPU, GPU or
    multi-GPU DDP (``strategy="ddp"``; launch the script directly or with ``torchrun``).
    """
    from ...training.packaging import save_model

    if config is None:
        cfg = InpaintTrainConfig()
    elif isinstance(config, InpaintTrainConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = InpaintTrainConfig(**config)
    else:
        cfg = config
    cfg, wd = start_run(cfg, InpaintTrainConfig, resume, overwrite)  # before the pool is simulated
    net = build_architecture(cfg.architecture, cfg.arch_config)
    if cfg.init_from and not (resume and (wd / "last.ckpt").exists()):
        rep = warm_start(net, cfg.init_from)
        print(f"warm start from {cfg.init_from}: {rep['copied']} tensors copied, expanded {rep['expanded']}, "
              f"skipped {rep['skipped']}", flush=True)
    pool, info = image_pool(cfg)
    module = train_network(net, pool, cfg, workdir=wd, resume=resume)
    stem = wd / "model"
    if not module.is_global_zero_:  # DDP: only rank 0 saves and reports
        return None
    r = module.running
    card = {"task": "inpaint", "input_shape": [1, 2, 64, 64], "training_time_s": round(module.elapsed(), 1),
            "steps": module.steps,
            "training_data": {"description": "simulated STEM/HRTEM/meso micrographs + em-real train split",
                              **info},
            "training_config": cfg.model_dump(mode="json"),
            "input": "[nn_infill(partial, mask), mask] with intensities in [0, 1]",
            "final_running_rms_vs_truth": r["rms"], "final_running_rms_nn_infill": r["nn"]}
    if module.disc is not None:
        card["adversarial"] = {"lambda_adv": cfg.lambda_adv, "discriminator_crops": cfg.disc_crop_sizes,
                               "discriminator_input": cfg.disc_input, "replay_size": cfg.replay_size,
                               "final_running_g_adv": r["g_adv"], "final_running_d_loss": r["d"]}
    save_model(stem, net.cpu().eval(), card, overwrite=True)
    (wd / "done.json").write_text(json.dumps({"steps": module.steps, "time_s": module.elapsed()}))
    return stem


def load_checkpoint_state(workdir: str | Path) -> tuple[dict, int, float]:
    """The generator's state dict, step count and training time from ``workdir``'s ``last.ckpt`` (or a
    ``last.pt`` of runs made before training moved to Lightning)."""
    wd = Path(workdir)
    if (wd / "last.ckpt").exists():
        st = checkpoint_state(wd / "last.ckpt")
        return st["modules"]["net"], st["steps"], st["elapsed"]
    if (wd / "last.pt").exists():
        st = torch.load(wd / "last.pt", weights_only=False, map_location="cpu")
        return st["net"], int(st["step"]), float(st["elapsed"])
    from ...errors import InputError

    raise InputError(f"no checkpoint (last.ckpt or last.pt) in {wd}")


def export_checkpoint(workdir: str | Path, stem: str | Path, extra_card: dict | None = None,
                      overwrite: bool = False) -> Path:
    """Package the last checkpoint of a (possibly still running) run as ``<stem>.safetensors`` + ``.json``."""
    from ...training.packaging import save_model

    wd = Path(workdir)
    cfg = InpaintTrainConfig.from_yaml(wd / "run.yaml" if (wd / "run.yaml").exists() else wd / "config.yaml")
    state, steps, elapsed = load_checkpoint_state(wd)
    net = build_architecture(cfg.architecture, cfg.arch_config)
    net.load_state_dict(state)
    card = {"task": "inpaint", "input_shape": [1, 2, 64, 64], "training_time_s": round(elapsed, 1), "steps": steps,
            "training_data": "simulated STEM/HRTEM/meso micrographs (scopenet.simulate.em, 256 px) + em-real "
                             "train split; spiral/grid/random/segments masks at coverages 1/100..1/10",
            "training_config": cfg.model_dump(mode="json"),
            "input": "[nn_infill(partial, mask), mask] with intensities scaled to [0, 1]"}
    card.update(extra_card or {})
    save_model(stem, net.eval(), card, overwrite=overwrite)
    return Path(stem)
