"""The one training engine: budgeted Lightning runs (manual optimisation) on step-addressed batch streams.

Every task trains through it (``tasks/<task>/train.py``). A run lasts a number of optimiser steps or a
time budget, whichever ends first; its batches come from a *stream* in which the batch of optimiser step
``s`` is a pure function of ``(seed, rank, s)``:

- :class:`SeededStream` -- endless generated batches ``make(rng)`` (crops of a pool of micrographs,
  masked or made noisy), ``rng = numpy.random.default_rng([seed, rank, s])``;
- :class:`EpochStream` -- epochs over in-memory arrays (the classifier): step ``s`` takes batch
  ``s % steps_per_epoch`` of a permutation seeded by ``(seed, epoch)``, ranks taking disjoint batches;
- :class:`BudgetedModule` -- a ``LightningModule`` base that counts steps and training time across
  resumes, stops every rank together, writes ``last.ckpt`` (every ``checkpoint_every_s`` seconds or
  ``checkpoint_every_n_steps`` steps, and at the end) through a temporary name, and logs CSV rows;
- :func:`fit_budgeted` -- builds the ``Trainer`` (CPU, GPU or multi-GPU DDP, mixed precision on GPUs)
  and runs it, resuming from ``workdir/last.ckpt``.
- :class:`AdamCosineModule` -- the supervised run most tasks share (Adam, cosine learning rate, gradient
  clipping, a mean-loss ``log.csv``); a task gives only its loss.

Resume is exact: the checkpoint holds the weights, the optimiser, the step count, the per-step losses,
the torch random state and the task's own state (:meth:`BudgetedModule.extra_state`), and the stream
restarts at the checkpoint's step, so a run stopped at any step and resumed ends with the same weights,
bit for bit, as one never stopped (as long as the *step* budget, not the wall-clock budget, sets the
learning-rate schedule; the time fraction of a run is not reproducible). ``log.csv`` rows past the
checkpoint are dropped on resume, so each step is logged once. With several DataLoader workers, worker
``w`` of ``W`` makes the batches of steps ``w, w + W, ...``: the stream does not depend on ``W``.

Subclasses implement ``configure_optimizers`` and ``training_step``; a step ends with
:meth:`BudgetedModule.step_done`. :class:`AdamCosineModule` is the common case done once (Adam, a cosine
learning rate over the budget, gradient clipping, a mean-loss log): its subclasses give only the loss. Learning-rate schedules are in :mod:`scopenet.training.schedules`.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import numpy as np
import torch

from .schedules import cosine

CHECKPOINT = "last.ckpt"
LOG = "log.csv"


class _StepStream(torch.utils.data.IterableDataset):
    """Batches addressed by optimiser step: ``batch(step)``; the engine sets ``rank``, ``world`` and
    ``start_step`` before iterating."""

    seed: int = 0

    def __init__(self):
        self.rank, self.world, self.start_step = 0, 1, 0

    def batch(self, step: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def rng(self, step: int) -> np.random.Generator:
        """The generator of step ``step`` on this rank."""
        return np.random.default_rng([self.seed, self.rank, int(step)])

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, n = (0, 1) if info is None else (info.id, info.num_workers)
        step = self.start_step + worker
        while True:
            yield self.batch(step)
            step += n


class SeededStream(_StepStream):
    """Endless batches ``make(rng)``, one generator per step: ``default_rng([seed, rank, step])``."""

    def __init__(self, make: Callable[[np.random.Generator], Any], seed: int = 0):
        super().__init__()
        self.make, self.seed = make, int(seed)

    def batch(self, step: int) -> Any:
        return self.make(self.rng(step))


class EpochStream(_StepStream):
    """Epochs over ``n`` in-memory samples: ``make(indices, rng)`` builds the batch of those sample indices.

    Each epoch is a permutation seeded by ``(seed, epoch)``, cut into batches of ``batch_size`` (a last
    batch of one sample is dropped: batch normalisation needs two); under DDP rank ``r`` of ``R`` takes
    batches ``r, r + R, ...`` of it, so an epoch is :attr:`steps_per_epoch` optimiser steps.
    """

    def __init__(self, n: int, batch_size: int, make: Callable[[np.ndarray, np.random.Generator], Any],
                 seed: int = 0):
        super().__init__()
        from ..errors import InputError

        if n < 2:
            raise InputError(f"training needs at least 2 samples, got {n}")
        self.n, self.batch_size, self.make, self.seed = int(n), min(int(batch_size), int(n)), make, int(seed)
        self._perm: tuple[int, np.ndarray] | None = None

    @property
    def slots(self) -> int:
        """Batches in one pass over the samples (all ranks together)."""
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest >= 2 else 0)

    @property
    def steps_per_epoch(self) -> int:
        return max(self.slots // self.world, 1)

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, int(epoch)]).permutation(self.n))
        return self._perm[1]

    def batch(self, step: int) -> Any:
        epoch, i = divmod(int(step), self.steps_per_epoch)
        slot = i * self.world + self.rank
        idx = self._permutation(epoch)[slot * self.batch_size:(slot + 1) * self.batch_size]
        return self.make(idx, self.rng(step))


class BudgetedModule(pl.LightningModule):
    """Base of a run that lasts ``max_steps`` optimiser steps or ``time_budget_s`` seconds of training.

    Parameters
    ----------
    stream : SeededStream or EpochStream
        The run's batches (told the rank, world size and start step when training starts).
    max_steps : int
        Optimiser steps in the whole run (<= 0: no step limit); counts across resumes.
    time_budget_s : float or None
        Seconds of training in the whole run (None: no time limit); counts across resumes.
    workdir : Path or None
        Where ``last.ckpt`` and ``log.csv`` go; None writes nothing.
    checkpoint_file, log_file : Path or None
        Other names for them (the log only when given).
    checkpoint_every_s, checkpoint_every_n_steps : float or None, int or None
        When to write ``last.ckpt`` during the run (it is always written at the end).
    log_header : list of str or None
        First row of a new ``log.csv`` (its first column must be the step).
    progress : bool
        A tqdm bar (rank 0) over the time budget, or over the steps when there is no time budget.
    """

    def __init__(self, stream: _StepStream, max_steps: int, time_budget_s: float | None = None,
                 workdir: Path | None = None, checkpoint_every_s: float | None = 120.0,
                 checkpoint_every_n_steps: int | None = None, log_header: list[str] | None = None,
                 progress: bool = False, checkpoint_file: Path | None = None, log_file: Path | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.stream = stream
        self.max_steps = int(max_steps) if max_steps and max_steps > 0 else 10 ** 12
        self.time_budget_s = math.inf if time_budget_s is None else float(time_budget_s)
        self.workdir = None if workdir is None else Path(workdir)
        #: the run's checkpoint and log (default ``workdir/last.ckpt`` and ``workdir/log.csv``)
        self.checkpoint_file = checkpoint_file or (None if workdir is None else self.workdir / CHECKPOINT)
        self.log_file = log_file or (None if workdir is None else self.workdir / LOG)
        self.checkpoint_every_s, self.checkpoint_every_n_steps = checkpoint_every_s, checkpoint_every_n_steps
        self.log_header, self.progress = log_header, progress
        self.steps, self.elapsed_before = 0, 0.0
        self.losses: list[float] = []  # per-step losses of the whole run (rank 0's share under DDP)
        self._t0 = self._last_ck = time.time()
        self._logf = self._bar = None
        self._rng_pending = None

    # ----------------------------------------------------------------------- budget
    def elapsed(self) -> float:
        """Training time so far, seconds, across resumes."""
        return self.elapsed_before + time.time() - self._t0

    def fraction(self) -> float:
        """How much of the budget is spent (the larger of the step and time fractions)."""
        return max(self.steps / self.max_steps, self.elapsed() / self.time_budget_s)

    def step_done(self, loss: float, row: list | None = None) -> None:
        """Count a finished optimiser step; ``row`` is written to ``log.csv`` when it is given (rank 0)."""
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
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["budget"] = {"steps": self.steps, "elapsed": self.elapsed(), "losses": list(self.losses),
                                "rng": rng, "extra": self.extra_state()}

    def on_load_checkpoint(self, checkpoint):
        st = checkpoint["budget"]
        self.steps, self.elapsed_before = int(st["steps"]), float(st["elapsed"])
        self.losses = [float(v) for v in st.get("losses", [])]
        self._rng_pending = st.get("rng")  # applied right before the next step (set-up draws random numbers)
        self.stream.start_step = self.steps  # Lightning starts iterating before on_train_start
        self.load_extra_state(st.get("extra", {}))

    # ----------------------------------------------------------------------- hooks
    def setup(self, stage: str) -> None:
        # before the loader is iterated (which Lightning starts before on_train_start)
        self.stream.rank, self.stream.world = self.global_rank, self.trainer.world_size
        self.stream.start_step = self.steps

    def on_train_start(self):
        self._t0 = self._last_ck = time.time()
        self._first_batch = True
        if self.global_rank != 0:
            return
        if self.log_file is not None:
            self._logf = _open_log(self.log_file, self.steps, self.log_header)
        if self.progress:
            from tqdm.auto import tqdm

            if math.isfinite(self.time_budget_s):
                self._bar = tqdm(total=int(self.time_budget_s), initial=int(self.elapsed_before), unit="s",
                                 desc="training")
            else:
                self._bar = tqdm(total=self.max_steps, initial=self.steps, unit="step", desc="training")

    def on_train_end(self):
        if self._logf is not None:
            self._logf.close()
            self._logf = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_train_batch_start(self, batch, batch_idx):
        if self._first_batch:  # a resumed run whose budget is already spent takes no further step
            self._first_batch = False
            spent = self.steps >= self.max_steps or self.elapsed() >= self.time_budget_s
            if self.trainer.strategy.reduce_boolean_decision(spent, all=False):
                self.trainer.should_stop = True
                return -1
        if self._rng_pending is not None:
            torch.set_rng_state(self._rng_pending["torch"])
            if "cuda" in self._rng_pending and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._rng_pending["cuda"])
            self._rng_pending = None

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self._bar is not None:
            done = self.elapsed() if math.isfinite(self.time_budget_s) else self.steps
            self._bar.update(int(min(done, self._bar.total)) - self._bar.n)
        strategy = self.trainer.strategy
        # every rank must agree, or a DDP run would hang in its next collective
        stop = self.steps >= self.max_steps or self.elapsed() >= self.time_budget_s
        if strategy.reduce_boolean_decision(stop, all=False):
            self.trainer.should_stop = True
            return
        if self.checkpoint_file is None:
            return
        due = self.checkpoint_every_n_steps is not None and self.steps % self.checkpoint_every_n_steps == 0
        if self.checkpoint_every_s is not None:
            due = due or time.time() - self._last_ck >= self.checkpoint_every_s
        if strategy.broadcast(due, src=0):
            save_checkpoint(self.trainer, self.checkpoint_file)
            self._last_ck = time.time()
            self.on_checkpoint()

    def on_checkpoint(self) -> None:
        """Called after each checkpoint written during the run (override)."""


class AdamCosineModule(BudgetedModule):
    """Base of a one-network supervised run: Adam at ``config.lr`` following a cosine to
    ``config.lr * config.lr_final_fraction`` over the budget (:meth:`BudgetedModule.fraction`), gradients
    clipped to norm ``config.grad_clip`` (None: not clipped), and a ``log.csv`` row
    ``step, elapsed_s, lr, <loss_name>`` every ``config.log_every`` steps holding the mean loss since the
    previous row (that running sum is checkpointed, so a resumed run logs the same rows).

    Subclasses implement :meth:`loss`. The batches are ``make(rng)`` of a :class:`SeededStream` seeded by
    ``config.seed``.

    Parameters
    ----------
    config : TrainConfig
        A task's training configuration with ``lr``, ``lr_final_fraction`` and ``grad_clip`` besides the
        engine's fields (``seed``, ``max_steps``, ``time_budget_s``, ``workdir``, checkpointing, ``log_every``).
    net : torch.nn.Module
        The network trained (``self.net``).
    make : callable
        ``make(rng) -> batch`` (torch tensors) for :meth:`loss`.
    loss_name : str
        The loss column of ``log.csv``.
    progress : bool
        A progress bar (rank 0).
    callback : callable or None
        ``callback(step, loss, net)`` after every step (0-based step).
    max_steps, time_budget_s, seed : int, float, int or None
        Overrides of the configuration's (None: the configuration's).
    """

    def __init__(self, config, net: torch.nn.Module, make: Callable[[np.random.Generator], Any], *,
                 loss_name: str = "loss", progress: bool = False, callback: Callable | None = None,
                 max_steps: int | None = None, time_budget_s: float | None = None, seed: int | None = None):
        c = config
        super().__init__(SeededStream(make, c.seed if seed is None else seed), max_steps or c.max_steps,
                         c.time_budget_s if time_budget_s is None else time_budget_s, c.workdir,
                         checkpoint_every_s=c.checkpoint_every_s, checkpoint_every_n_steps=c.checkpoint_every_n_steps,
                         log_header=["step", "elapsed_s", "lr", loss_name], progress=progress)
        self.net, self.config, self.callback = net, config, callback
        self._window = [0.0, 0]  # loss sum and steps since the last log row

    def loss(self, batch: Any) -> torch.Tensor:  # pragma: no cover - abstract
        """The scalar loss of one batch (override)."""
        raise NotImplementedError

    def extra_state(self) -> dict:
        return {"window": list(self._window)}

    def load_extra_state(self, state: dict) -> None:
        self._window = list(state.get("window", [0.0, 0]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.config.lr)

    def training_step(self, batch, batch_idx):
        c = self.config
        opt = self.optimizers()
        lr = c.lr * cosine(self.fraction(), c.lr_final_fraction)
        for g in opt.optimizer.param_groups:
            g["lr"] = lr
        loss = self.loss(batch)
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


def _open_log(path: Path, steps: int, header: list[str] | None):
    """``log.csv`` opened for appending: a fresh run (``steps == 0``) starts it anew; a resumed one keeps
    the rows of steps up to ``steps`` (those logged after the checkpoint are run again)."""
    if steps == 0 or not path.exists():
        f = open(path, "w")
        if header:
            f.write(",".join(header) + "\n")
        return f
    keep = []
    for i, line in enumerate(path.read_text().splitlines()):
        first = line.split(",", 1)[0]
        try:
            if int(first) > steps:
                continue
        except ValueError:  # the header (or any row without a step)
            if i > 0:
                continue
        keep.append(line + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(keep))
    tmp.replace(path)
    return open(path, "a")


def save_checkpoint(trainer: pl.Trainer, path: Path) -> Path:
    """``trainer.save_checkpoint`` to ``path`` (a run's ``last.ckpt``, or the folder holding it) through a
    temporary name (a killed run never leaves a truncated checkpoint); every rank calls it, rank 0 writes."""
    path = Path(path)
    final = path / CHECKPOINT if path.is_dir() else path
    tmp = final.with_name(final.stem + ".tmp" + final.suffix)
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
    loader = torch.utils.data.DataLoader(module.stream, batch_size=None, num_workers=num_workers)
    if strategy == "ddp" and find_unused_parameters:
        strategy = "ddp_find_unused_parameters_true"
    acc = check_accelerator(accelerator)
    quiet = logging.getLogger("lightning.pytorch")  # its set-up chatter (devices found, tips)
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        trainer = _fit(module, loader, resume, acc, devices, strategy, precision)
    finally:
        quiet.setLevel(level)
    if module.checkpoint_file is not None:
        module.checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(trainer, module.checkpoint_file)
    return trainer


def _fit(module, loader, resume, acc, devices, strategy, precision) -> pl.Trainer:
    from .config import resolve_precision

    trainer = pl.Trainer(
        accelerator=acc, devices=devices, strategy=strategy, precision=resolve_precision(precision, acc),
        max_epochs=-1, max_steps=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=module.workdir, num_sanity_val_steps=0,
        use_distributed_sampler=False)
    ckpt = None
    if module.checkpoint_file is not None and resume and module.checkpoint_file.exists():
        ckpt = str(module.checkpoint_file)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch.*")
        warnings.filterwarnings("ignore", message=".*IterableDataset.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt)
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


def device_args(device: str | None, accelerator: str = "auto", devices: int | str = 1) -> tuple[str, Any]:
    """Lightning's ``(accelerator, devices)`` for an estimator's ``device`` ("cpu", "cuda", "cuda:1", "mps",
    "auto" or None); None and "auto" keep the configuration's ``accelerator`` and ``devices``."""
    if device is None or str(device) == "auto":
        return accelerator, devices
    d = str(device)
    kind, _, index = d.partition(":")
    if kind == "cuda":
        return "gpu", [int(index)] if index else 1
    return kind, 1


def run(module: BudgetedModule, config, *, resume: bool = False, device: str | None = None,
        find_unused_parameters: bool = False) -> pl.Trainer:
    """:func:`fit_budgeted` with the engine settings of a task's
    :class:`~scopenet.training.config.TrainConfig` (``device`` overrides its accelerator and devices), on
    ``config.threads`` torch threads (the caller's number is restored afterwards)."""
    acc, devs = device_args(device, config.accelerator, config.devices)
    old = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return fit_budgeted(module, resume=resume, accelerator=acc, devices=devs, strategy=config.strategy,
                            precision=config.precision, num_workers=config.num_workers,
                            find_unused_parameters=find_unused_parameters)
    finally:
        torch.set_num_threads(old)


def prepare_workdir(config, resume: bool, overwrite: bool = False) -> Path | None:
    """Create the run folder of ``config`` and write its ``run.yaml``; a folder that already holds a run
    (``last.ckpt``) is refused unless ``resume`` (continue it) or ``overwrite`` (start it over)."""
    from ..errors import InputError

    wd = config.workdir
    if wd is None:
        return None
    wd = Path(wd)
    held = sorted(wd.glob("last*.ckpt")) if wd.is_dir() else []  # last.ckpt, or last.m<i>.ckpt of ensembles
    if held and not resume:
        if not overwrite:
            raise InputError(f"{wd} already holds a run ({held[0].name}); resume it (--resume) or choose another "
                             "workdir")
        for p in held:
            p.unlink()
    wd.mkdir(parents=True, exist_ok=True)
    config.to_yaml(wd / "run.yaml", overwrite=True)
    return wd


def start_run(config, config_cls, resume: bool = False, overwrite: bool = False):
    """The set-up every task's ``train.main`` shares: ``config`` (an instance of ``config_cls`` or its YAML
    file) checked (a workdir is required, the accelerator must exist), its workdir prepared as
    :func:`prepare_workdir` does, torch seeded with ``config.seed`` and set to ``config.threads`` threads.
    Returns ``(config, workdir)``; build the network after this call so its initial weights follow the seed."""
    from ..errors import InputError

    if not isinstance(config, config_cls):
        config = config_cls.from_yaml(config)
    if config.workdir is None:
        raise InputError("a training run needs a workdir")
    check_accelerator(config.accelerator)
    wd = prepare_workdir(config, resume, overwrite)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    return config, wd


def init_weights(net: torch.nn.Module, config, workdir: Path, resume: bool) -> None:
    """Start ``net`` from ``config.init_from`` (see :func:`load_init`) unless the run resumes from its own
    ``last.ckpt``."""
    if config.init_from and not (resume and (Path(workdir) / "last.ckpt").exists()):
        load_init(net, config.init_from)


def load_init(net: torch.nn.Module, source: str | Path, strict: bool = True) -> None:
    """Copy into ``net`` the weights of a saved model (path stem or shipped name) or of a run's
    ``last.ckpt`` (its ``net``)."""
    p = Path(str(source))
    if p.suffix == ".ckpt":
        net.load_state_dict(checkpoint_state(p)["modules"]["net"], strict=strict)
    elif p.suffix == ".pt":  # runs made before training moved to Lightning
        st = torch.load(p, map_location="cpu", weights_only=False)
        net.load_state_dict(st.get("model", st.get("net")), strict=strict)
    else:
        from .packaging import load_model

        net.load_state_dict(load_model(source).state_dict(), strict=strict)
