"""Train an adaptive scanner or a fixed-path baseline: ``scopenet train adaptive-scan --config run.yaml``.

``path: adaptive`` follows Ede's cooperative RDPG (thesis ch. 5, :mod:`scopenet.training.rdpg`): each
step the actor scans ``episodes_per_step`` new training crops with OU-rotated directions into a replay of
whole histories; a batch of histories is re-made into partial scans, the generator learns to complete
them (MSE to the blurred crop, cyclic learning rate) and its per-scan losses, divided by their running
mean and clipped, are the final-step losses from which critic and actor learn by BPTT. ``path: spiral``
or ``grid`` trains the same generator, on the same crops and budget, on one fixed path (the baselines).

Optional, beyond the chapter (the task's attempts to close the gap to spirals): ``actor_init: spiral``
clones the actor from a polygonal spiral before RL and ``bc_weight`` keeps it near it (TD3+BC-style);
``init_from`` starts the generator from a trained
scanner (e.g. the spiral baseline) and ``freeze_generator_steps`` keeps it frozen while the actor
learns; ``turn_penalty`` puts the scan coils' turning limit into the step losses.

The run writes ``run.yaml``, ``log.csv``, ``last.ckpt`` (every ``checkpoint_every_s``; ``--resume``
continues it) and ``model.safetensors`` + ``model.json`` (the learning curve in the card's notes).
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from ...nn.recurrent import AdaptiveScanNet, RecurrentCritic, mse_per_sample
from ...simulate import scan_env as env
from ...training.budget import start_run
from ...training.rdpg import RDPG, LossNormaliser, OUNoise, RDPGConfig, Replay
from ...training.schedules import cyclic_sawtooth
from .config import AdaptiveScanTrainConfig
from .data import CropSampler, blur, train_pool
from .scanning import actor_inputs, actor_policy, fixed_path_pixels, generator_input

__all__ = ["make_net", "Trainer", "clone_spiral", "fit_estimator", "main"]

LOG_COLUMNS = ["step", "elapsed_s", "gen_lr", "gen_mse", "critic_loss", "actor_loss", "noise", "off_rate",
               "coverage", "turn_rad"]


def make_net(c: AdaptiveScanTrainConfig) -> AdaptiveScanNet:
    """The scanner network of a run configuration."""
    return AdaptiveScanNet(actor={"hidden": c.actor_hidden, "layers": c.actor_layers}, generator=dict(c.arch_generator))


def generator_losses(generator: torch.nn.Module, crops: np.ndarray, masks: np.ndarray, sigma: float,
                     device) -> torch.Tensor:
    """Per-scan MSE ``(B,)`` of the generator's completions against the blurred crops, both in the scale
    of each scan's values (with gradients)."""
    values = np.where(masks, crops, 0.0)
    x, lo, hi = generator_input(values, masks)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    target = (blur(crops, sigma) - lo[:, None, None]) / span[:, None, None]
    y = generator(torch.from_numpy(x).to(device))
    return mse_per_sample(y, torch.from_numpy(target[:, None].astype(np.float32)).to(device))


def clone_spiral(actor: torch.nn.Module, sampler: CropSampler, rng: np.random.Generator, steps: int,
                 batch_size: int, device="cpu", lr: float = 1e-3) -> list[float]:
    """Behaviour cloning: teach ``actor`` the directions of :func:`~scopenet.simulate.scan_env.spiral_directions`
    from histories that follow it (``steps`` Adam steps); returns the MSE per step."""
    dirs = env.spiral_directions()
    opt = torch.optim.Adam(actor.parameters(), lr=lr)
    losses = []
    for _ in range(int(steps)):
        crops = sampler.crops(sampler.params(rng, batch_size))
        res = env.rollout(crops, lambda t, o, p, d: np.broadcast_to(dirs[t], d.shape))
        x = torch.from_numpy(actor_inputs(res)).to(device)
        target = torch.from_numpy(res["dirs"][:, 1:]).to(device)
        loss = ((actor(x) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


class Trainer:
    """One run's state and step (generator, and for adaptive paths the RDPG actor and critic)."""

    def __init__(self, c: AdaptiveScanTrainConfig, net: AdaptiveScanNet, pool: list[np.ndarray], device="cpu"):
        self.c, self.net, self.device = c, net.to(device), device
        self.sampler = CropSampler(pool, env.SIZE)
        self.rng = np.random.default_rng(c.seed)
        self.gen_opt = torch.optim.Adam(net.generator.parameters(), lr=c.gen_lr)
        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict[str, float]] = []
        self.bc_losses: list[float] = []
        if c.path == "adaptive":
            if c.actor_init == "spiral" and c.bc_steps:
                self.bc_losses = clone_spiral(net.actor, self.sampler, self.rng, c.bc_steps, c.batch_size, device)
            critic = RecurrentCritic(hidden=c.actor_hidden, layers=c.actor_layers).to(device)
            self.rdpg = RDPG(net.actor, critic, RDPGConfig(gamma=c.gamma, target_beta=c.target_beta,
                                                           actor_lr=c.actor_lr, critic_lr=c.critic_lr,
                                                           actor_start=c.actor_start))
            self.replay = Replay(c.replay_size)
            self.reference = torch.from_numpy(env.spiral_directions()[1:].astype(np.float32)).to(device)
            self.norm = LossNormaliser(c.loss_beta, c.loss_clip_sd)
            self.limits = env.CoilLimits(turn_penalty=c.turn_penalty)
        else:
            ij = fixed_path_pixels(c.path, env.SIZE)
            self.fixed_mask = env.positions_to_mask(ij[:, 0], ij[:, 1])[0]

    # ------------------------------------------------------------------ one step
    def gen_lr(self) -> float:
        return self.c.gen_lr * cyclic_sawtooth(self.step, self.c.max_steps)

    def _gen_update(self, losses: torch.Tensor, lr: float) -> None:
        if self.step < self.c.freeze_generator_steps:
            return
        for g in self.gen_opt.param_groups:
            g["lr"] = lr
        self.gen_opt.zero_grad(set_to_none=True)
        losses.mean().backward()
        torch.nn.utils.clip_grad_norm_(self.net.generator.parameters(), 1.0)
        self.gen_opt.step()

    def train_step(self) -> dict[str, float]:
        c = self.c
        lr = self.gen_lr()
        row = {"step": self.step + 1, "gen_lr": lr}
        self.net.generator.train()
        if c.path != "adaptive":
            crops = self.sampler.crops(self.sampler.params(self.rng, c.batch_size))
            masks = np.broadcast_to(self.fixed_mask, crops.shape)
            lg = generator_losses(self.net.generator, crops, masks, c.blur_sigma, self.device)
            self._gen_update(lg, lr)
            row.update(gen_mse=float(lg.detach().mean()), coverage=float(self.fixed_mask.mean()))
        else:
            # act: new episodes with OU-rotated directions
            scale = max(0.0, 1.0 - self.step / (c.ou_decay_fraction * c.max_steps))
            E = c.episodes_per_step
            params = self.sampler.params(self.rng, E)
            crops = self.sampler.crops(params)
            ou = OUNoise(E, c.ou_theta, c.ou_sigma, self.rng)
            self.net.actor.eval()
            res = env.rollout(crops, actor_policy(self.net.actor, lambda: ou(scale), self.device),
                              limits=self.limits, edge_penalty=c.edge_penalty)
            rows, cols = res["rows"].reshape(E, -1), res["cols"].reshape(E, -1)
            self.replay.add({"params": params, "x": actor_inputs(res), "a": res["dirs"][:, 1:],
                             "cost": res["step_cost"][:, 1:], "rows": rows.astype(np.int16),
                             "cols": cols.astype(np.int16)})
            cover = env.positions_to_mask(rows, cols).reshape(E, -1).mean(1)
            # learn from replayed histories
            b = self.replay.sample(c.batch_size, self.rng)
            bcrops = self.sampler.crops(b["params"])
            masks = env.positions_to_mask(b["rows"].astype(np.int64), b["cols"].astype(np.int64))
            lg = generator_losses(self.net.generator, bcrops, masks, c.blur_sigma, self.device)
            self._gen_update(lg, lr)
            loss = b["cost"].astype(np.float32).copy()
            loss[:, -1] += self.norm(lg.detach().cpu().numpy()).astype(np.float32)
            self.net.actor.train()
            reg = None
            if c.bc_weight > 0:
                reg = lambda mu: c.bc_weight * ((mu - self.reference) ** 2).sum(-1).mean()  # noqa: E731
            stats = self.rdpg.update(torch.from_numpy(b["x"]).to(self.device), torch.from_numpy(b["a"]).to(self.device),
                                     torch.from_numpy(loss).to(self.device), actor_regulariser=reg)
            row.update(gen_mse=float(lg.detach().mean()), critic_loss=stats["critic_loss"],
                       actor_loss=stats["actor_loss"], noise=scale, off_rate=float(res["off"].mean()),
                       coverage=float(cover.mean()), turn_rad=float(res["turn"][:, 1:].mean()))
        self.step += 1
        return row

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        d = {"net": self.net.state_dict(), "gen_opt": self.gen_opt.state_dict(), "step": self.step,
             "elapsed": self.elapsed, "history": self.history, "rng": self.rng.bit_generator.state,
             "bc_losses": self.bc_losses}
        if self.c.path == "adaptive":
            d.update(rdpg=self.rdpg.state_dict(), replay=self.replay.state_dict(), norm=self.norm.state_dict())
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.net.load_state_dict(d["net"])
        self.gen_opt.load_state_dict(d["gen_opt"])
        self.step, self.elapsed, self.history = int(d["step"]), float(d["elapsed"]), list(d["history"])
        self.rng.bit_generator.state = d["rng"]
        self.bc_losses = list(d.get("bc_losses", []))
        if self.c.path == "adaptive":
            self.rdpg.load_state_dict(d["rdpg"])
            self.replay.load_state_dict(d["replay"])
            self.norm.load_state_dict(d["norm"])

    def run(self, workdir: Path | None = None, progress: bool = False, callback=None) -> list[dict[str, float]]:
        """Train until ``max_steps`` or ``time_budget_s``; with a ``workdir``, log and checkpoint there."""
        c = self.c
        t0, last_ckpt = time.monotonic() - self.elapsed, time.monotonic()
        window: list[dict[str, float]] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=c.max_steps, initial=self.step, desc=f"adaptive-scan ({c.path})", unit="step")
        log = None
        if workdir is not None:
            new = not (workdir / "log.csv").exists() or self.step == 0
            log = open(workdir / "log.csv", "w" if new else "a", newline="")
            writer = csv.writer(log)
            if new:
                writer.writerow(LOG_COLUMNS)
        try:
            while self.step < c.max_steps:
                if c.time_budget_s is not None and self.elapsed >= c.time_budget_s:
                    break
                row = self.train_step()
                self.elapsed = time.monotonic() - t0
                window.append(row)
                if callback is not None:
                    callback(self.step, row, self.net)
                if self.step % c.log_every == 0 or self.step == c.max_steps:
                    mean = {k: float(np.nanmean([w.get(k, np.nan) for w in window])) if
                            any(k in w for w in window) else float("nan") for k in LOG_COLUMNS[2:]}
                    entry = {"step": self.step, "elapsed_s": round(self.elapsed, 1), **mean}
                    self.history.append(entry)
                    window = []
                    if log is not None:
                        writer.writerow([entry.get(k, "") if not (isinstance(entry.get(k), float) and
                                                                 math.isnan(entry[k])) else "" for k in LOG_COLUMNS])
                        log.flush()
                    if bar is not None:
                        bar.set_postfix(gen_mse=f"{entry['gen_mse']:.4f}")
                if bar is not None:
                    bar.update(1)
                if workdir is not None and c.checkpoint_every_s is not None and \
                        time.monotonic() - last_ckpt >= c.checkpoint_every_s:
                    self.save_checkpoint(workdir)
                    last_ckpt = time.monotonic()
        finally:
            if bar is not None:
                bar.close()
            if log is not None:
                log.close()
        if workdir is not None:
            self.save_checkpoint(workdir)
        return self.history

    def save_checkpoint(self, workdir: Path) -> None:
        tmp = workdir / "last.ckpt.tmp"
        torch.save(self.state_dict(), tmp)
        tmp.replace(workdir / "last.ckpt")


def _load_generator(net: AdaptiveScanNet, source: str) -> None:
    """Copy the generator of a saved scanner (path stem or shipped name) into ``net``."""
    from ...weights.files import load_model

    src = load_model(source)
    gen = getattr(src, "generator", None)
    if gen is None:
        raise InputError(f"{source} is not an adaptive scanner (no generator)")
    net.generator.load_state_dict(gen.state_dict())


def _curve(history: list[dict[str, float]]) -> dict[str, list]:
    keys = ["step", "elapsed_s", "gen_mse", "critic_loss", "coverage", "off_rate", "turn_rad"]
    return {k: [None if (isinstance(h.get(k), float) and math.isnan(h[k])) else h.get(k) for h in history]
            for k in keys}


def fit_estimator(est, images, **overrides):
    """:meth:`AdaptiveScanner.fit`: a short run on ``images`` with the estimator's network."""
    from ...nn.device import resolve_device

    pool = [np.asarray(getattr(im, "data", im), np.float32) for im in
            (list(images) if not isinstance(images, np.ndarray) or images.ndim == 3 else [images])]
    if not pool or any(p.ndim != 2 or min(p.shape) < env.SIZE or not np.isfinite(p).all() for p in pool):
        raise InputError(f"fit needs finite 2-D images of at least {env.SIZE}x{env.SIZE} px")
    pool = [(p - p.min()) / (p.max() - p.min()) if p.max() > p.min() else np.zeros_like(p) for p in pool]
    net = est._check_fitted()
    a = net.actor.config
    kw = {"workdir": None, "path": est.config.path, "actor_hidden": a["hidden"], "actor_layers": a["layers"],
          "max_steps": 100, "time_budget_s": None, "threads": torch.get_num_threads(), **overrides}
    c = AdaptiveScanTrainConfig(**kw)
    dev = resolve_device(est.device)
    tr = Trainer(c, net, pool, dev)
    history = tr.run(Path(c.workdir) if c.workdir else None) if c.workdir else _run_plain(tr)
    net.cpu().eval()
    est.history_ = [h["gen_mse"] for h in history]
    est.update_card(training={"steps": tr.step, "time_s": round(tr.elapsed, 1)})
    return est


def _run_plain(tr: Trainer) -> list[dict[str, float]]:
    rows = []
    while tr.step < tr.c.max_steps:
        row = tr.train_step()
        rows.append({"step": row["step"], **row})
    tr.history = rows
    return rows


def main(config: AdaptiveScanTrainConfig | str | Path, resume: bool = False, *, progress: bool = True,
         overwrite: bool = False) -> Path:
    """Run the training described by ``config`` (a configuration or its YAML file); returns the saved
    model's path stem ``<workdir>/model``."""
    from ...nn.device import resolve_device
    from .._estimator import estimator_class

    AdaptiveScanner = estimator_class("adaptive-scan")  # from the registry: its module calls this one's fit
    c, wd = start_run(config, AdaptiveScanTrainConfig, resume, overwrite)
    dev = resolve_device(None if c.accelerator == "auto" else ("cuda" if c.accelerator in ("gpu", "cuda") else c.accelerator))
    net = make_net(c)
    pool, desc = train_pool(c.n_simulated, c.simulated_size, c.simulated_seed, c.use_em_real)
    if progress:
        print(f"data: {desc}", flush=True)
    ckpt = wd / "last.ckpt"
    resuming = resume and ckpt.exists()
    if c.init_from and not resuming:
        _load_generator(net, c.init_from)
    tr = Trainer(c, net, pool, dev)
    if resuming:
        tr.load_state_dict(torch.load(ckpt, map_location=dev, weights_only=False))
    tr.run(wd, progress=progress)
    net = tr.net.cpu().eval()
    est = AdaptiveScanner(path=c.path, arch_config=dict(net.config))
    est.net_ = net
    est.update_card(training={"config": c.to_dict(), "data": desc, "steps": tr.step, "time_s": round(tr.elapsed, 1),
                              "hardware": f"{dev.type}, {c.threads} thread(s)" if dev.type == "cpu" else str(dev),
                              "command": "scopenet train adaptive-scan --config run.yaml",
                              "init": c.init_from},
                    notes={"learning_curve": _curve(tr.history), "behaviour_cloning_final_mse":
                           (tr.bc_losses[-1] if tr.bc_losses else None)})
    stem = wd / "model"
    est.save(stem, overwrite=True)
    return stem
