"""Learning-rate and momentum schedules, as pure functions of the optimiser step.

Every schedule is a function ``factor(step)`` of the global optimiser step only, so a resumed run
follows exactly the same schedule as an uninterrupted one. :func:`make_lr_lambda` turns a
:class:`~scopenet.training.config.OptimConfig` schedule into a ``torch.optim.lr_scheduler.LambdaLR``
multiplier, and :class:`DemonMomentum` is a Lightning callback for DEMON momentum decay.

References
----------
Ede, J. M. (2021), thesis ch. 5 (adaptive partial STEM scans): generator learning rate
``eta_G * 0.75**(5m/M)`` multiplied by a cyclic sawtooth with period ``2M/9`` oscillating between
0.2 and 1.0 (Smith, 2017, cyclical learning rates).
Chen, J. et al. (2019), "Demon: improved neural network training with momentum decay".
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ..errors import InputError


def step_decay(step: int, *, step_size: int, gamma: float = 0.5) -> float:
    """``gamma ** floor(step / step_size)``: multiply the rate by ``gamma`` every ``step_size`` steps."""
    if step_size < 1:
        raise InputError(f"step_size must be >= 1, got {step_size}")
    return float(gamma ** (step // step_size))


def exponential_decay(step: int, *, decay_steps: int, gamma: float = 0.5) -> float:
    """``gamma ** (step / decay_steps)``: smooth decay by ``gamma`` every ``decay_steps`` steps."""
    if decay_steps <= 0:
        raise InputError(f"decay_steps must be > 0, got {decay_steps}")
    return float(gamma ** (step / decay_steps))


def cyclic_sawtooth(step: int, total_steps: int, *, decay: float = 0.75, decay_fraction: float = 0.2,
                    period_fraction: float = 2 / 9, low: float = 0.2, high: float = 1.0) -> float:
    """Exponentially decayed triangular ("sawtooth") cyclic learning-rate factor.

    ``envelope = decay ** (step / (decay_fraction * total_steps))`` times a triangle wave of period
    ``P = period_fraction * total_steps`` that starts at ``high``, falls linearly to ``low`` at
    ``P/2`` and climbs back to ``high`` at ``P``. The defaults are those of Ede's adaptive-scan
    generator: ``0.75**(5m/M)`` and a period ``2M/9`` between 0.2 and 1.0.

    (The authors' released code computes the triangle as ``1 - (min(r, H) - min(r - H, 0))/H``,
    which is identically 0 -- a constant 0.2 factor; here the published description is followed.)

    Parameters
    ----------
    step : int
        Optimiser step ``m`` (0-based).
    total_steps : int
        Steps in the whole run ``M``.
    """
    if total_steps < 1:
        raise InputError(f"total_steps must be >= 1, got {total_steps}")
    envelope = decay ** (step / (decay_fraction * total_steps))
    half = period_fraction * total_steps / 2
    r = math.fmod(step, 2 * half)
    tri = abs(r - half) / half  # 1 at r=0, 0 at r=half, 1 at r=2*half
    return float(envelope * (low + (high - low) * tri))


def demon_beta(step: int, total_steps: int, beta_init: float = 0.9) -> float:
    """DEMON momentum: ``beta_t = b (1 - t/T) / ((1 - b) + b (1 - t/T))``, from ``b`` at t=0 to 0 at t=T."""
    if total_steps < 1:
        raise InputError(f"total_steps must be >= 1, got {total_steps}")
    frac = max(0.0, 1.0 - step / total_steps)
    return float(beta_init * frac / ((1.0 - beta_init) + beta_init * frac))


def make_lr_lambda(schedule: str, total_steps: int, params: dict[str, Any] | None = None
                   ) -> Callable[[int], float] | None:
    """Learning-rate multiplier ``f(step)`` for a schedule name, or None for a constant rate.

    Parameters
    ----------
    schedule : {"none", "step", "exponential", "cyclic_sawtooth", "demon"}
        "demon" changes the momentum, not the learning rate, and returns None here.
    total_steps : int
        Optimiser steps in the run (used by the cyclic schedule and as a default decay length).
    params : dict
        Keyword arguments of the schedule function. ``step`` defaults to ``step_size =
        total_steps // 8`` (eight steps, as in the partial-STEM work); ``exponential`` defaults to
        ``decay_steps = total_steps`` (``gamma`` over the run).
    """
    p = dict(params or {})
    total_steps = max(int(total_steps), 1)
    if schedule in ("none", "demon"):
        return None
    if schedule == "step":
        p.setdefault("step_size", max(total_steps // 8, 1))
        return lambda s: step_decay(s, **p)
    if schedule == "exponential":
        p.setdefault("decay_steps", total_steps)
        return lambda s: exponential_decay(s, **p)
    if schedule == "cyclic_sawtooth":
        return lambda s: cyclic_sawtooth(s, total_steps, **p)
    raise InputError(f"unknown schedule {schedule!r}; use none, step, exponential, cyclic_sawtooth or demon")


def total_training_steps(trainer) -> int:
    """Optimiser steps in a whole run, without loading the training data early.

    Uses ``trainer.datamodule.steps_per_epoch(world_size)`` when the data module offers it (as
    :class:`~scopenet.training.data.ImageDataModule` does) and Lightning's
    ``estimated_stepping_batches`` otherwise. (Asking Lightning from ``configure_optimizers``
    builds the train loader before a checkpoint is restored, which loses the loader's position.)
    """
    dm = getattr(trainer, "datamodule", None)
    if dm is not None and hasattr(dm, "steps_per_epoch"):
        batches = int(dm.steps_per_epoch(trainer.world_size))
        total = math.ceil(batches / trainer.accumulate_grad_batches) * max(int(trainer.max_epochs or 1), 1)
        if trainer.max_steps is not None and trainer.max_steps > 0:
            total = min(total, trainer.max_steps)
        return max(total, 1)
    est = trainer.estimated_stepping_batches
    return max(int(est), 1) if math.isfinite(est) else 1


def set_momentum(optimizer, beta: float) -> None:
    """Set the first-moment decay (Adam ``betas[0]``) or SGD ``momentum`` of every parameter group."""
    for group in optimizer.param_groups:
        if "betas" in group:
            group["betas"] = (beta, group["betas"][1])
        elif "momentum" in group:
            group["momentum"] = beta


try:  # the callback needs Lightning; the pure functions above do not
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[misc,assignment]


class DemonMomentum(Callback):
    """Lightning callback applying :func:`demon_beta` before every optimiser step.

    Parameters
    ----------
    beta_init : float
        Initial momentum (Adam ``betas[0]`` / SGD momentum).
    total_steps : int, optional
        Length of the decay; defaults to ``trainer.estimated_stepping_batches``.
    """

    def __init__(self, beta_init: float = 0.9, total_steps: int | None = None):
        self.beta_init = beta_init
        self.total_steps = total_steps

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        total = self.total_steps or total_training_steps(trainer)
        beta = demon_beta(trainer.global_step, total, self.beta_init)
        for opt in trainer.optimizers:
            set_momentum(opt, beta)
