"""Learning-rate and momentum schedules: the one place they live, as pure functions of progress.

Every schedule is a function of the optimiser step (or of the fraction of a run's budget spent) only,
so a resumed run follows exactly the schedule of an uninterrupted one.

- :func:`cosine` -- cosine decay over a budget (denoise, inpaint, super-resolution);
- :func:`one_cycle` -- cosine warm-up then cosine decay (the tip classifier);
- :func:`step_decay`, :func:`exponential_decay`, :func:`cyclic_sawtooth` (Ede's adaptive-scan generator),
  :func:`demon_beta` (momentum decay).

References
----------
Ede, J. M. (2021), thesis ch. 5 (adaptive partial STEM scans): generator learning rate
``eta_G * 0.75**(5m/M)`` multiplied by a cyclic sawtooth with period ``2M/9`` oscillating between
0.2 and 1.0 (Smith, 2017, cyclical learning rates).
Smith, L. N. & Topin, N. (2019), "Super-convergence" (the one-cycle policy).
Chen, J. et al. (2019), "Demon: improved neural network training with momentum decay".
"""
from __future__ import annotations

import math

from ..errors import InputError

__all__ = ["cosine", "one_cycle", "step_decay", "exponential_decay", "cyclic_sawtooth", "demon_beta",
           "set_momentum"]


def cosine(frac: float, floor: float = 0.0) -> float:
    """Cosine decay factor from 1 at ``frac = 0`` to ``floor`` at ``frac >= 1`` (clamped outside [0, 1])."""
    frac = min(max(frac, 0.0), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))


def one_cycle(step: int, total: int, peak: float, warmup: float = 0.3, div: float = 25.0,
              final_div: float = 1e4) -> float:
    """One-cycle learning rate at optimiser ``step`` (0-based) of ``total``: cosine up, cosine down.

    Starts at ``peak / div``, reaches ``peak`` after ``warmup * total`` steps and ends at
    ``peak / final_div``.
    """
    total = max(int(total), 1)
    up = max(int(warmup * total), 1)
    lo, end = peak / div, peak / final_div
    if step < up:
        return lo + (peak - lo) * (1 - math.cos(math.pi * step / up)) / 2
    t = min((step - up) / max(total - up, 1), 1.0)
    return end + (peak - end) * (1 + math.cos(math.pi * t)) / 2


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


def set_momentum(optimizer, beta: float) -> None:
    """Set the first-moment decay (Adam ``betas[0]``) or SGD ``momentum`` of every parameter group."""
    for group in optimizer.param_groups:
        if "betas" in group:
            group["betas"] = (beta, group["betas"][1])
        elif "momentum" in group:
            group["momentum"] = beta
