"""Budgeted training on endless, generated batches (Lightning, manual optimisation).

Some tasks do not train in epochs over a fixed data set: every batch is generated on the fly (crops of
a pool of micrographs, masked or made noisy), and a run lasts a number of optimiser steps or a time
budget, whichever ends first, with the learning rate following a cosine over that budget. This module
is the shared machinery for them (used by ``tasks.denoise.train`` and ``tasks.inpaint.train``):

- :class:`SeededStream` -- an ``IterableDataset`` of batches from ``make(rng)``; each DDP rank and each
  DataLoader worker draws its own stream, seeded by ``(seed, rank, worker, start step)``, so a resumed
  run does not replay the batches it has already seen;
- :class:`BudgetedModule` -- a ``LightningModule`` base that counts steps and training time across
  resumes, stops every rank together, writes ``last.ckpt`` (every ``checkpoint_every_s`` seconds or
  ``checkpoint_every_n_steps`` steps, and at the end) through a temporary name, and logs CSV rows;
- :func:`fit_budgeted` -- builds the ``Trainer`` (CPU, GPU or multi-GPU DDP, mixed precision on GPUs)
  and runs it, resuming from ``workdir/last.ckpt``.

Subclasses implement ``configure_optimizers`` and ``training_step``; a step ends with
:meth:`BudgetedModule.step_done`.
"""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import numpy as np
import torch

CHECKPOINT = "last.ckpt"


def cosine(frac: float, floor: float = 0.0) -> float:
    """Cosine decay factor from 1 at ``frac = 0`` to ``floor`` at ``frac >= 1``."""
    frac = min(max(frac, 0.0), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))


class SeededStream(torch.utils.data.IterableDataset):
    """Endless batches ``make(rng)``; see the module docstring for the seeding."""

    def __init__(self, make: Callable[[np.random.Generator], Any], seed: int = 0):
        self.make, self.seed = make, int(seed)
        self.rank, self.start_step = 0, 0

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        rng = np.random.default_rng([self.seed, self.rank, worker, self.start_step])
        while True:
            yield self.make(rng)


class BudgetedModule(pl.LightningModule):
    """Base of a run that lasts ``max_steps`` optimiser steps or ``time_budget_s`` seconds of training.

    Parameters
    ----------
    stream : SeededStream
        The run's batches (told the rank and start step when training starts).
    max_steps, time_budget_s : int, float
        Whichever is reached first ends the run; both count across resumes.
    workdir : Path or None
        Where ``last.ckpt`` and ``log.csv`` go; None writes nothing.
    checkpoint_every_s, checkpoint_every_n_steps : float or None, int or None
        When to write ``last.ckpt`` during the run (it is always written at the end).
    log_header : list of str or None
        First row of a new ``log.csv``.
    progress : bool
        A tqdm bar over the time budget (rank 0).
    """

    def __init__(self, stream: SeededStream, max_steps: int, time_budget_s: float, workdir: Path | None = None,
                 checkpoint_every_s: float | None = 120.0, checkpoint_every_n_steps: int | None = None,
                 log_header: list[str] | None = None, progress: bool = False):
        super().__init__()
        self.automatic_optimization = False
        self.stream = stream
        self.max_steps = int(max_steps) if max_steps and max_steps > 0 else 10 ** 12
        self.time_budget_s = float(time_budget_s)
        self.workdir = None if workdir is None else Path(workdir)
        self.checkpoint_every_s, self.checkpoint_every_n_steps = checkpoint_every_s, checkpoint_every_n_steps
        self.log_header, self.progress = log_header, progress
        self.steps, self.elapsed_before = 0, 0.0
        self.losses: list[float] = []  # this call's per-step losses (rank 0's share under DDP)
        self._t0 = self._last_ck = time.time()
        self._logf = self._bar = None

    # ----------------------------------------------------------------------- budget
    def elapsed(self) -> float:
        """Training time so far, seconds, across resumes."""
        return self.elapsed_before + time.time() - self._t0

    def fraction(self) -> float:
        """How much of the budget is spent (the larger of the step and time fractions)."""
        return max(self.steps / self.max_steps, self.elapsed() / self.time_budget_s)

    def step_done(self, loss: float, row: list | None = None) -> None:
        """Count a finished optimiser step; ``row`` is written to ``log.csv`` every ``log_every`` steps
        when it is given (rank 0)."""
        self.steps += 1
        self.losses.append(float(loss))
        if row is not None and self.global_rank == 0 and self._logf is not None:
            self._logf.write(",".join(str(v) for v in row) + "\n")
            self._logf.flush()

    # ----------------------------------------------------------------------- state
    def extra_state(self) -> dict:
        """Task state to checkpoint beside the module's weights (override)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` returned (override)."""

    def on_save_checkpoint(self, checkpoint):
        checkpoint["budget"] = {"steps": self.steps, "elapsed": self.elapsed(), "extra": self.extra_state()}

    def on_load_checkpoint(self, checkpoint):
        st = checkpoint["budget"]
        self.steps, self.elapsed_before = int(st["steps"]), float(st["elapsed"])
        self.load_extra_state(st.get("extra", {}))

    # ----------------------------------------------------------------------- hooks
    def on_train_start(self):
        self._t0 = self._last_ck = time.time()
        self.stream.rank, self.stream.start_step = self.global_rank, self.steps
        if self.global_rank != 0:
            return
        if self.workdir is not None:
            path = self.workdir / "log.csv"
            new = not path.exists() or path.stat().st_size == 0
            self._logf = open(path, "a")
            if new and self.log_header:
                self._logf.write(",".join(self.log_header) + "\n")
        if self.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=int(self.time_budget_s), initial=int(self.elapsed_before), unit="s",
                             desc="training")

    def on_train_end(self):
        if self._logf is not None:
            self._logf.close()
            self._logf = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self._bar is not None:
            self._bar.update(int(min(self.elapsed(), self.time_budget_s)) - self._bar.n)
        strategy = self.trainer.strategy
        # every rank must agree, or a DDP run would hang in its next collective
        stop = self.steps >= self.max_steps or self.elapsed() >= self.time_budget_s
        if strategy.reduce_boolean_decision(stop, all=False):
            self.trainer.should_stop = True
            return
        if self.workdir is None:
            return
        due = self.checkpoint_every_n_steps is not None and self.steps % self.checkpoint_every_n_steps == 0
        if self.checkpoint_every_s is not None:
            due = due or time.time() - self._last_ck >= self.checkpoint_every_s
        if strategy.broadcast(due, src=0):
            save_checkpoint(self.trainer, self.workdir)
            self._last_ck = time.time()


def save_checkpoint(trainer: pl.Trainer, workdir: Path) -> Path:
    """``trainer.save_checkpoint`` to ``workdir/last.ckpt`` through a temporary name (a killed run never
    leaves a truncated checkpoint); every rank calls it, rank 0 writes."""
    tmp, final = workdir / "last.tmp.ckpt", workdir / CHECKPOINT
    trainer.save_checkpoint(tmp, weights_only=False)
    if trainer.is_global_zero:
        tmp.replace(final)
    trainer.strategy.barrier("budget-checkpoint")
    return final


def check_accelerator(accelerator: str) -> str:
    """Lightning's name for ``accelerator`` ("cuda" -> "gpu"); an unknown name, or a GPU/MPS this machine lacks,
    raises ``InputError`` (call it before expensive set-up, so a typo fails at once)."""
    acc = {"cuda": "gpu"}.get(accelerator, accelerator)
    if acc not in ("auto", "cpu", "gpu", "mps"):
        from ..errors import InputError

        raise InputError(f"unknown accelerator {accelerator!r} (use 'auto', 'cpu', 'gpu'/'cuda' or 'mps')")
    if acc in ("gpu", "mps"):
        from ..nn.device import resolve_device

        resolve_device("cuda" if acc == "gpu" else "mps")
    return acc


def fit_budgeted(module: BudgetedModule, *, resume: bool = True, accelerator: str = "auto",
                 devices: int | str = 1, strategy: str = "auto", precision: str = "32", num_workers: int = 0,
                 find_unused_parameters: bool = False) -> pl.Trainer:
    """Run ``module`` on its stream until its budget is spent; returns the finished ``Trainer``.

    ``resume`` continues from ``module.workdir/last.ckpt`` when it exists. ``strategy="ddp"`` trains one
    process per device; ``find_unused_parameters`` is needed when a backward pass leaves some parameters
    without gradients (adversarial training). ``trainer.is_global_zero`` tells the caller whether it is
    the process that should save results.
    """
    from .config import resolve_precision

    loader = torch.utils.data.DataLoader(module.stream, batch_size=None, num_workers=num_workers)
    if strategy == "ddp" and find_unused_parameters:
        strategy = "ddp_find_unused_parameters_true"
    acc = check_accelerator(accelerator)
    trainer = pl.Trainer(
        accelerator=acc, devices=devices, strategy=strategy, precision=resolve_precision(precision, acc),
        max_epochs=-1, max_steps=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=module.workdir, num_sanity_val_steps=0,
        use_distributed_sampler=False)
    ckpt = None
    if module.workdir is not None and resume and (module.workdir / CHECKPOINT).exists():
        ckpt = str(module.workdir / CHECKPOINT)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch.*")
        warnings.filterwarnings("ignore", message=".*IterableDataset.*")
        trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt)
    if module.workdir is not None:
        save_checkpoint(trainer, module.workdir)
    return trainer


def checkpoint_state(path: str | Path) -> dict:
    """A ``last.ckpt``'s model weights by submodule (``{"net": {...}, ...}``), steps and training time."""
    st = torch.load(path, weights_only=False, map_location="cpu")
    parts: dict[str, dict] = {}
    for k, v in st["state_dict"].items():
        head, _, rest = k.partition(".")
        parts.setdefault(head, {})[rest] = v
    b = st["budget"]
    return {"modules": parts, "steps": int(b["steps"]), "elapsed": float(b["elapsed"]), "extra": b.get("extra", {})}
