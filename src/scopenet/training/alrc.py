"""Adaptive learning rate clipping (ALRC) and its siblings: DALRC, CLRC and Huberisation.

All clippers are :class:`torch.nn.Module` objects with one interface::

    clipper = ALRC(n_max=3.0)
    loss = clipper(per_example_losses)   # scalar, shape (B,) or any per-element shape
    loss.backward()

Reference: J. M. Ede and R. Beanland, "Adaptive learning rate clipping stabilizes learning",
Mach. Learn.: Sci. Technol. 1, 015011 (2020), reproduced as chapter 3 of J. M. Ede's thesis
(``papers/ede2021-thesis-2-3-datasets-alrc.txt``): Algorithm 1 (ALRC), Algorithm 2 (CLRC),
Algorithm 3 (DALRC), Huberisation ``L -> min(L, (hL)^(1/2))`` (section 1, eq. 3.1).

How the clippers treat their input (``mode``)
---------------------------------------------
``"batch"``
    The whole input is averaged to one loss ``L`` which is clipped as in Algorithm 1.
``"example"`` (default)
    The input is read as ``(B, ...)``; each example's loss (mean over its non-batch axes) is
    clipped individually and the running moments are updated with batch means. This is the
    paper's rule for batch sizes above 1: "we apply ALRC to individual losses, while mu1 and mu2
    are updated with mean losses" (section 2). Following the authors' released code, "mean
    losses" means ``mu1`` is updated with ``mean_i L_i`` and ``mu2`` with ``mean_i L_i^2``, so the
    moments describe the distribution of *individual* losses, which is what is being clipped.
    For batch size 1 this is exactly Algorithm 1.
``"element"``
    Every element (e.g. per-pixel error) is clipped individually, moments updated with the mean
    errors ("ALRC can also be applied to loss summands, such as per pixel errors ... while mu1 and
    mu2 are updated with the mean errors", section 2).

Training and evaluation
-----------------------
Clipping only shapes the training signal. Moments are updated, and losses clipped, only while the
module is in training mode (``module.train()``). In evaluation mode (``module.eval()``) the
clippers return the reduced, *unclipped* loss and leave their state unchanged: the paper reports
unclipped learning curves (fig. 1) and unclipped test-set errors (table 2).

Positive losses
---------------
Algorithm 1 is written for positive losses (section 6). Clipping rescales a loss by
``stop_gradient(bound / L)``; a zero loss that falls outside the bounds (only possible for
non-positive bounds) is left at zero rather than producing NaN.

State
-----
Running moments are registered buffers (float64), so they are saved in ``state_dict()`` and in
Lightning checkpoints and resume exactly. Under DDP, Lightning broadcasts rank 0's buffers at each
forward pass, so all ranks share one set of moments.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from scopenet.errors import InputError

__all__ = ["LossClipper", "NoClip", "ALRC", "DALRC", "CLRC", "Huberise", "make_clipper", "CLIPPERS"]

Mode = Literal["batch", "example", "element"]
Reduction = Literal["mean", "none"]
_MODES = ("batch", "example", "element")
_REDUCTIONS = ("mean", "none")


def _rescale(loss: torch.Tensor, bound: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Replace ``loss`` by ``stop_gradient(bound / loss) * loss`` where ``mask`` is True.

    The forward value becomes ``bound`` and the gradient is scaled by ``bound / loss`` (its
    direction is kept). Elements outside ``mask`` pass unchanged, gradients included.
    """
    mask = mask & (loss.detach() != 0)
    safe = torch.where(mask, loss.detach(), torch.ones_like(loss))
    # unselected elements get scale 1 so that no inf/NaN reaches the backward pass
    scale = torch.where(mask, bound / safe, torch.ones_like(safe)).detach()
    return loss * scale


def _check_decay(name: str, value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise InputError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


class LossClipper(nn.Module):
    """Base class: grouping of the input into losses (``mode``) and the final reduction.

    Subclasses implement :meth:`_clip_train`, which receives the grouped losses (a 1-D tensor:
    one batch loss, ``B`` example losses or all elements flattened) and returns clipped ones.

    Parameters
    ----------
    mode : {"batch", "example", "element"}
        Which losses are clipped individually (see the module docstring).
    reduction : {"mean", "none"}
        ``"mean"`` (default) returns the mean of the clipped losses, a scalar. ``"none"`` returns
        them unreduced: a scalar in batch mode, shape ``(B,)`` in example mode, the input's shape
        in element mode.
    """

    def __init__(self, mode: Mode = "example", reduction: Reduction = "mean"):
        super().__init__()
        if mode not in _MODES:
            raise InputError(f"clipper mode must be one of {_MODES}, got {mode!r}")
        if reduction not in _REDUCTIONS:
            raise InputError(f"clipper reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.mode = mode
        self.reduction = reduction

    # -- grouping ---------------------------------------------------------------------------
    def _group(self, loss: torch.Tensor) -> torch.Tensor:
        if self.mode == "batch" or loss.ndim == 0:
            return loss.mean().reshape(1)
        if self.mode == "example":
            return loss.reshape(loss.shape[0], -1).mean(dim=1)
        return loss.reshape(-1)

    def _ungroup(self, grouped: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        if self.reduction == "mean":
            return grouped.mean()
        if self.mode == "batch" or loss.ndim == 0:
            return grouped.reshape(())
        if self.mode == "example":
            return grouped
        return grouped.reshape(loss.shape)

    def forward(self, loss: torch.Tensor) -> torch.Tensor:
        """Clip ``loss`` (scalar, ``(B,)`` or ``(B, ...)``) and reduce it (see ``reduction``)."""
        if not torch.is_tensor(loss):
            raise InputError(f"loss clipper expects a torch.Tensor, got {type(loss).__name__}")
        if loss.numel() == 0:
            raise InputError("loss clipper got an empty loss tensor")
        grouped = self._group(loss)
        if self.training:
            grouped = self._clip_train(grouped)
        return self._ungroup(grouped, loss)

    def _clip_train(self, losses: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, reduction={self.reduction!r}"


class NoClip(LossClipper):
    """Identity clipper with the common interface (``make_clipper("none")``)."""

    def _clip_train(self, losses: torch.Tensor) -> torch.Tensor:
        return losses


class ALRC(LossClipper):
    """Adaptive learning rate clipping (Algorithm 1 of Ede & Beanland 2020).

    Each training call, with ``sigma = sqrt(max(mu2 - mu1^2, 0))``:

    1. ``L_max = mu1 + n_max * sigma`` and ``L_min = mu1 - n_min * sigma`` from the moments
       *before* this step's update;
    2. a loss ``L > L_max`` becomes ``stop_gradient(L_max / L) * L`` (forward value ``L_max``,
       gradient scaled by ``L_max / L``), a loss ``L < L_min`` likewise with ``L_min``;
    3. ``mu1 <- b1 mu1 + (1 - b1) mean(L)``, ``mu2 <- b2 mu2 + (1 - b2) mean(L^2)`` over the
       losses of the call (unclipped by default; clipped if ``update_with_clipped``).

    Parameters
    ----------
    n_max : float
        Standard deviations above the running mean to clip to (paper: 3). ``inf`` disables.
    n_min : float
        Standard deviations below the running mean; ``inf`` (default) makes ALRC one-sided.
    b1, b2 : float
        Decay rates of the running first and second raw moments (paper: 0.999).
    mu1_init, mu2_init : float
        Initial first and second raw moments of the loss, with ``mu1_init**2 < mu2_init``.
        Overestimates decay to the true values; underestimates clip too much early on. Defaults
        25 and 30**2 are those of the authors' released code.
    mode : {"batch", "example", "element"}
        Which losses are clipped individually (module docstring).
    update_with_clipped : bool
        Update the moments with the clipped losses, as the authors' released code does, instead of
        the raw losses of Algorithm 1 (default False: exactly Algorithm 1).
    reduction : {"mean", "none"}
        Returned value: mean of the clipped losses (default) or unreduced.

    Attributes
    ----------
    mu1, mu2 : torch.Tensor
        Running raw moments (float64 buffers, in ``state_dict``).
    steps : torch.Tensor
        Number of moment updates so far (int64 buffer).
    last_clipped_fraction : float or None
        Fraction of losses clipped in the last training call (a Python float, for logging; None
        for losses off the CPU, to avoid a device sync).

    Examples
    --------
    >>> import torch
    >>> alrc = ALRC(mu1_init=1.0, mu2_init=1.25)      # sigma = 0.5 -> L_max = 2.5
    >>> x = torch.tensor([1.0, 10.0], requires_grad=True)
    >>> alrc(x)
    tensor(1.7500, grad_fn=<MeanBackward0>)
    """

    def __init__(self, n_max: float = 3.0, n_min: float = math.inf, b1: float = 0.999,
                 b2: float = 0.999, mu1_init: float = 25.0, mu2_init: float = 30.0 ** 2,
                 mode: Mode = "example", update_with_clipped: bool = False,
                 reduction: Reduction = "mean"):
        super().__init__(mode=mode, reduction=reduction)
        if not (n_max > 0 and n_min > 0):
            raise InputError(f"ALRC needs n_max > 0 and n_min > 0, got n_max={n_max!r}, n_min={n_min!r}")
        if not (math.isfinite(mu1_init) and math.isfinite(mu2_init)) or not mu1_init ** 2 < mu2_init:
            raise InputError(f"ALRC needs finite initial moments with mu1_init**2 < mu2_init, got "
                             f"mu1_init={mu1_init!r}, mu2_init={mu2_init!r}")
        self.n_max = float(n_max)
        self.n_min = float(n_min)
        self.b1 = _check_decay("b1", b1)
        self.b2 = _check_decay("b2", b2)
        self.update_with_clipped = bool(update_with_clipped)
        self.mu1_init = float(mu1_init)
        self.mu2_init = float(mu2_init)
        self.register_buffer("mu1", torch.tensor(float(mu1_init), dtype=torch.float64))
        self.register_buffer("mu2", torch.tensor(float(mu2_init), dtype=torch.float64))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.int64))
        self.last_clipped_fraction: float | None = None

    @property
    def sigma(self) -> torch.Tensor:
        """Running standard deviation ``sqrt(max(mu2 - mu1^2, 0))`` (0-d float64 tensor)."""
        return torch.sqrt(torch.clamp(self.mu2 - self.mu1 ** 2, min=0.0))

    def thresholds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current ``(L_min, L_max)`` (0-d float64 tensors; ``-inf``/``inf`` when disabled)."""
        sigma = self.sigma
        inf = torch.tensor(math.inf, dtype=self.mu1.dtype, device=self.mu1.device)
        lo = self.mu1 - self.n_min * sigma if math.isfinite(self.n_min) else -inf
        hi = self.mu1 + self.n_max * sigma if math.isfinite(self.n_max) else inf
        return lo, hi

    def reset(self) -> None:
        """Return the moments to their initial values."""
        self.mu1.fill_(self.mu1_init)
        self.mu2.fill_(self.mu2_init)
        self.steps.zero_()

    def _clip_train(self, losses: torch.Tensor) -> torch.Tensor:
        lo, hi = self.thresholds()  # before the moments are updated
        lo = lo.to(losses.dtype)
        hi = hi.to(losses.dtype)
        raw = losses.detach()
        above = raw > hi
        below = raw < lo
        out = _rescale(losses, hi, above)
        out = _rescale(out, lo, below)
        with torch.no_grad():
            src = (out if self.update_with_clipped else losses).detach().to(torch.float64)
            self.mu1.mul_(self.b1).add_((1.0 - self.b1) * src.mean())
            self.mu2.mul_(self.b2).add_((1.0 - self.b2) * (src ** 2).mean())
            self.steps.add_(1)
        # a host sync: skipped off the CPU
        self.last_clipped_fraction = (float((above | below).float().mean()) if losses.device.type == "cpu"
                                      else None)
        return out

    def extra_repr(self) -> str:
        return (f"n_max={self.n_max}, n_min={self.n_min}, b1={self.b1}, b2={self.b2}, "
                f"update_with_clipped={self.update_with_clipped}, {super().extra_repr()}")


class DALRC(LossClipper):
    """Doubly adaptive learning rate clipping (Algorithm 3 of Ede & Beanland 2020).

    Mean absolute deviations above and below the running mean are tracked separately:
    ``L_min = mu1 - n_down * mu_down``, ``L_max = mu1 + n_up * mu_up`` (from the state before the
    update); losses outside are rescaled as in ALRC; then, for a loss above ``mu1``,
    ``mu_up <- b_up mu_up + (1 - b_up)(L - mu1)``, for one below, ``mu_down <- b_down mu_down +
    (1 - b_down)(mu1 - L)``, and finally ``mu1 <- b1 mu1 + (1 - b1) L``.

    With several losses per call (example/element modes) ``mu1`` is updated with their mean and
    ``mu_up`` (``mu_down``) with the mean deviation of the losses above (below) the old ``mu1``,
    only when there are any; with one loss per call this is exactly Algorithm 3.

    Parameters
    ----------
    n_up, n_down : float
        Mean absolute deviations above / below to clip to (paper: 2, 2). ``inf`` disables a side.
    b1, b_up, b_down : float
        Decay rates (paper: 0.999).
    mu1_init, mu_up_init, mu_down_init : float
        Initial running mean and mean deviations (deviations must be > 0). Overestimates decay.
    mode, update_with_clipped, reduction
        As for :class:`ALRC`.
    """

    def __init__(self, n_up: float = 2.0, n_down: float = 2.0, b1: float = 0.999,
                 b_up: float = 0.999, b_down: float = 0.999, mu1_init: float = 25.0,
                 mu_up_init: float = 15.0, mu_down_init: float = 15.0, mode: Mode = "example",
                 update_with_clipped: bool = False, reduction: Reduction = "mean"):
        super().__init__(mode=mode, reduction=reduction)
        if not (n_up > 0 and n_down > 0):
            raise InputError(f"DALRC needs n_up > 0 and n_down > 0, got {n_up!r}, {n_down!r}")
        if not (math.isfinite(mu1_init) and mu_up_init > 0 and mu_down_init > 0
                and math.isfinite(mu_up_init) and math.isfinite(mu_down_init)):
            raise InputError(f"DALRC needs a finite mu1_init and positive finite deviations, got "
                             f"mu1_init={mu1_init!r}, mu_up_init={mu_up_init!r}, "
                             f"mu_down_init={mu_down_init!r}")
        self.n_up = float(n_up)
        self.n_down = float(n_down)
        self.b1 = _check_decay("b1", b1)
        self.b_up = _check_decay("b_up", b_up)
        self.b_down = _check_decay("b_down", b_down)
        self.update_with_clipped = bool(update_with_clipped)
        self._init = (float(mu1_init), float(mu_up_init), float(mu_down_init))
        self.register_buffer("mu1", torch.tensor(float(mu1_init), dtype=torch.float64))
        self.register_buffer("mu_up", torch.tensor(float(mu_up_init), dtype=torch.float64))
        self.register_buffer("mu_down", torch.tensor(float(mu_down_init), dtype=torch.float64))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.int64))

    def thresholds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current ``(L_min, L_max)`` (0-d float64 tensors; ``-inf``/``inf`` when disabled)."""
        inf = torch.tensor(math.inf, dtype=self.mu1.dtype, device=self.mu1.device)
        lo = self.mu1 - self.n_down * self.mu_down if math.isfinite(self.n_down) else -inf
        hi = self.mu1 + self.n_up * self.mu_up if math.isfinite(self.n_up) else inf
        return lo, hi

    def reset(self) -> None:
        """Return the running statistics to their initial values."""
        for buf, v in zip((self.mu1, self.mu_up, self.mu_down), self._init):
            buf.fill_(v)
        self.steps.zero_()

    def _clip_train(self, losses: torch.Tensor) -> torch.Tensor:
        lo, hi = self.thresholds()
        raw = losses.detach()
        out = _rescale(losses, hi.to(losses.dtype), raw > hi)
        out = _rescale(out, lo.to(losses.dtype), raw < lo)
        with torch.no_grad():
            src = (out if self.update_with_clipped else losses).detach().to(torch.float64)
            dev = src - self.mu1
            up, down = dev > 0, dev < 0
            n_up, n_down = up.sum(), down.sum()
            mean_up = torch.where(up, dev, 0.0).sum() / n_up.clamp(min=1)
            mean_down = torch.where(down, -dev, 0.0).sum() / n_down.clamp(min=1)
            new_up = self.b_up * self.mu_up + (1.0 - self.b_up) * mean_up
            new_down = self.b_down * self.mu_down + (1.0 - self.b_down) * mean_down
            self.mu_up.copy_(torch.where(n_up > 0, new_up, self.mu_up))
            self.mu_down.copy_(torch.where(n_down > 0, new_down, self.mu_down))
            self.mu1.mul_(self.b1).add_((1.0 - self.b1) * src.mean())
            self.steps.add_(1)
        return out

    def extra_repr(self) -> str:
        return (f"n_up={self.n_up}, n_down={self.n_down}, b1={self.b1}, b_up={self.b_up}, "
                f"b_down={self.b_down}, {super().extra_repr()}")


class CLRC(LossClipper):
    """Constant learning rate clipping (Algorithm 2): effective losses kept in ``[l_min, l_max]``.

    A loss above ``l_max`` becomes ``stop_gradient(l_max / L) * L``, one below ``l_min``
    ``stop_gradient(l_min / L) * L``. Stateless.

    Parameters
    ----------
    l_min, l_max : float
        Bounds, ``l_min < l_max``; ``-inf`` / ``inf`` disable a side.
    mode, reduction
        As for :class:`ALRC`.
    """

    def __init__(self, l_min: float = -math.inf, l_max: float = math.inf, mode: Mode = "example",
                 reduction: Reduction = "mean"):
        super().__init__(mode=mode, reduction=reduction)
        if math.isnan(l_min) or math.isnan(l_max) or not l_min < l_max:
            raise InputError(f"CLRC needs l_min < l_max, got l_min={l_min!r}, l_max={l_max!r}")
        self.l_min = float(l_min)
        self.l_max = float(l_max)

    def _clip_train(self, losses: torch.Tensor) -> torch.Tensor:
        raw = losses.detach()
        hi = torch.tensor(self.l_max, dtype=losses.dtype, device=losses.device)
        lo = torch.tensor(self.l_min, dtype=losses.dtype, device=losses.device)
        out = _rescale(losses, hi, raw > hi)
        return _rescale(out, lo, raw < lo)

    def extra_repr(self) -> str:
        return f"l_min={self.l_min}, l_max={self.l_max}, {super().extra_repr()}"


class Huberise(LossClipper):
    """Huberisation ``L -> min(L, sqrt(h L))`` (thesis eq. 3.1), differentiably.

    For ``L > h`` the loss becomes ``sqrt(h L)`` (value below ``L``, gradient
    ``sqrt(h / L) / 2`` times the original); otherwise it is unchanged. Stateless.

    Parameters
    ----------
    h : float
        Threshold, > 0 (paper: 1 for MSEs multiplied by 200).
    mode : {"batch", "example", "element"}
        Which losses are huberised individually; default ``"element"`` maps each input value.
    reduction
        As for :class:`ALRC`.
    """

    def __init__(self, h: float = 1.0, mode: Mode = "element", reduction: Reduction = "mean"):
        super().__init__(mode=mode, reduction=reduction)
        if not (h > 0 and math.isfinite(h)):
            raise InputError(f"Huberise needs a finite h > 0, got {h!r}")
        self.h = float(h)

    def _clip_train(self, losses: torch.Tensor) -> torch.Tensor:
        big = losses.detach() > self.h
        safe = torch.where(big, losses, torch.full_like(losses, self.h))
        return torch.where(big, torch.sqrt(self.h * safe), losses)

    def extra_repr(self) -> str:
        return f"h={self.h}, {super().extra_repr()}"


CLIPPERS: dict[str, type[LossClipper]] = {
    "none": NoClip,
    "alrc": ALRC,
    "dalrc": DALRC,
    "clrc": CLRC,
    "huber": Huberise,
}
_ALIASES = {"huberise": "huber", "huberize": "huber", "huberisation": "huber",
            "huberization": "huber", "identity": "none"}


def make_clipper(name: str | None, **kwargs) -> LossClipper:
    """Build a loss clipper from its configuration name and keyword arguments.

    Parameters
    ----------
    name : {"none", "alrc", "dalrc", "clrc", "huber"} or None
        Clipper name (case-insensitive; "huberise"/"huberize" accepted). None means "none".
    **kwargs
        Constructor arguments of the chosen class.

    Returns
    -------
    LossClipper

    Raises
    ------
    InputError
        Unknown name or invalid arguments.

    Examples
    --------
    >>> make_clipper("alrc", n_max=2.0, mu1_init=1.0, mu2_init=2.0).n_max
    2.0
    """
    key = "none" if name is None else str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in CLIPPERS:
        raise InputError(f"unknown loss clipper {name!r}; use one of {', '.join(CLIPPERS)}")
    cls = CLIPPERS[key]
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"bad parameters for loss clipper {key!r}: {exc}") from exc
