"""The training façade: :func:`train` runs a Lightning ``Trainer`` from a :class:`RunConfig`.

Layout of a run directory (``config.out_dir / config.name``)::

    run.yaml                     the configuration that produced the run
    checkpoints/last.ckpt        every ``checkpoint_every_n_steps`` steps and at each epoch end
    checkpoints/best-*.ckpt      lowest validation loss
    logs/csv/metrics.csv         CSV log;  logs/tensorboard/  TensorBoard events
    loss_curve.png               written at the end of the run
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ..errors import InputError
from .callbacks import LastCheckpoint, plot_loss_curve
from .config import RunConfig, _check_config, resolve_precision
from .schedules import DemonMomentum


@dataclass
class RunResult:
    """What a finished run produced.

    Attributes
    ----------
    run_dir : Path
    config_path : Path
        The saved ``run.yaml``.
    last_checkpoint : Path or None
    best_checkpoint : Path or None
        Checkpoint with the lowest ``val_loss`` (None without a validation set).
    metrics : dict
        Final logged metrics (``train_loss``, ``val_loss``, ``val_psnr``...), as floats.
    loss_curve : Path or None
    global_step, epochs : int
    elapsed_s : float
        Wall time of this call (a resumed run counts only its own part).
    """

    run_dir: Path
    config_path: Path
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    loss_curve: Path | None = None
    global_step: int = 0
    epochs: int = 0
    elapsed_s: float = 0.0


def _resolve_resume(cfg: RunConfig, resume: bool | str | Path) -> Path | None:
    last = cfg.run_dir / "checkpoints" / "last.ckpt"
    if resume is False or resume is None:
        if last.exists():
            raise InputError(f"{cfg.run_dir} already holds a run (checkpoints/last.ckpt); "
                             "resume it with --resume or choose another run name")
        return None
    path = last if resume is True else Path(resume)
    if not path.is_file():
        raise InputError(f"cannot resume: no checkpoint at {path}")
    return path


def build_trainer(cfg: RunConfig, *, has_val: bool = True, callbacks: list[Callback] | None = None,
                  enable_progress_bar: bool = True, **overrides: Any) -> pl.Trainer:
    """A Lightning ``Trainer`` configured from ``cfg`` (callbacks, loggers, precision, strategy).

    ``overrides`` are passed to ``pl.Trainer`` last (e.g. ``limit_val_batches``).
    """
    t = cfg.trainer
    run_dir = cfg.run_dir
    ckpt_dir = run_dir / "checkpoints"
    cbs: list[Callback] = [LastCheckpoint(ckpt_dir / "last.ckpt", t.checkpoint_every_n_steps)]
    if has_val:
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best-{epoch}-{step}", monitor="val_loss",
                                   mode="min", save_top_k=1, save_last=False))
        if t.early_stopping_patience is not None:
            cbs.append(EarlyStopping(monitor="val_loss", mode="min", patience=t.early_stopping_patience))
    elif t.early_stopping_patience is not None:
        warnings.warn("early stopping needs a validation set; it is disabled for this run", stacklevel=2)
    if cfg.optim.schedule == "demon":
        p = dict(cfg.optim.schedule_params)
        cbs.append(DemonMomentum(beta_init=p.get("beta_init", cfg.optim.betas[0]), total_steps=p.get("total_steps")))
    cbs.append(LearningRateMonitor(logging_interval="step"))
    cbs.extend(callbacks or [])
    loggers = [CSVLogger(save_dir=run_dir, name="logs", version="csv"),
               TensorBoardLogger(save_dir=run_dir, name="logs", version="tensorboard", default_hp_metric=False)]
    accelerator = t.accelerator
    precision = resolve_precision(t.precision, accelerator)
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and _cuda())
    kwargs: dict[str, Any] = dict(
        default_root_dir=run_dir, max_epochs=t.max_epochs, max_steps=t.max_steps, precision=precision,
        accelerator=accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        accumulate_grad_batches=t.accumulate, log_every_n_steps=t.log_every,
        # GPU kernels without a deterministic version (e.g. some pooling backwards) only warn there
        deterministic=("warn" if on_gpu else True) if t.deterministic else False,
        use_distributed_sampler=False,  # EpochSampler shards by rank itself
        enable_checkpointing=has_val, callbacks=cbs, logger=loggers,
        enable_progress_bar=enable_progress_bar, enable_model_summary=False,
    )
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _has_val(datamodule) -> bool:
    return getattr(datamodule, "val_set", None) is not None


def train(config: RunConfig | dict | str | Path, datamodule: pl.LightningDataModule, module: pl.LightningModule,
          resume: bool | str | Path = False, callbacks: list[Callback] | None = None,
          enable_progress_bar: bool = True, **trainer_overrides: Any) -> RunResult:
    """Train ``module`` on ``datamodule`` as described by ``config``; resumable.

    Parameters
    ----------
    config : RunConfig, dict or YAML path
    datamodule : LightningDataModule
        Typically an :class:`~scopenet.training.data.ImageDataModule`.
    module : LightningModule
        Typically an :class:`~scopenet.training.module.ImageToImageModule`.
    resume : bool or path
        ``True``: continue from ``run_dir/checkpoints/last.ckpt``; a path: from that checkpoint.
        ``False`` refuses to start over a run directory that already holds checkpoints.
    callbacks : list of Callback, optional
        Extra Lightning callbacks.

    Returns
    -------
    RunResult
    """
    cfg = _check_config(config)
    ckpt_path = _resolve_resume(cfg, resume)
    pl.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    run_dir = cfg.run_dir
    config_path = run_dir / "run.yaml"
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.to_yaml(config_path, overwrite=True)
    has_val = _has_val(datamodule)
    trainer = build_trainer(cfg, has_val=has_val, callbacks=callbacks, enable_progress_bar=enable_progress_bar,
                            **trainer_overrides)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=None if ckpt_path is None else str(ckpt_path))
    elapsed = time.perf_counter() - t0
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
               if getattr(v, "numel", lambda: 1)() == 1 and math.isfinite(float(v))}
    curve = None
    if trainer.is_global_zero:
        curve = plot_loss_curve(run_dir / "logs" / "csv" / "metrics.csv", run_dir / "loss_curve.png")
    best = None
    if trainer.checkpoint_callback is not None and getattr(trainer.checkpoint_callback, "best_model_path", ""):
        best = Path(trainer.checkpoint_callback.best_model_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    return RunResult(run_dir=run_dir, config_path=config_path, last_checkpoint=last if last.exists() else None,
                     best_checkpoint=best, metrics=metrics, loss_curve=curve, global_step=trainer.global_step,
                     epochs=trainer.current_epoch, elapsed_s=elapsed)
