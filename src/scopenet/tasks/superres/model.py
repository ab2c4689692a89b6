"""Super-resolution of uniformly sub-sampled scans: ``super_resolve(img, factor=4)``.

A scan recorded on a coarse regular grid (say 32x32 instead of 128x128, 16x less time at a
constant dwell per pixel) is a uniform sub-lattice scan; completing it is super-resolution. The
model is a small VDSR-style network (Kim et al., CVPR 2016; applied to AFM by the work reviewed in
Azuri et al. 2021, whose VDSR gave "only very marginal improvement over simple bicubic"): the
coarse scan is upsampled bicubically, and a stack of 3x3 convolutions predicts the residual
between that and the fine scan.

Two models of how the coarse scan samples the fine grid (``sampling``, stored in the model card):

- ``"block_mean"`` (SPM, the default): each coarse pixel is the mean of its ``factor x factor``
  block of the fine one (the tip integrates over its footprint); pixel centres on the half-pixel
  convention (``align_corners=False``): coarse pixel ``i`` sits at fine coordinate ``f*i + (f-1)/2``.
- ``"decimate"`` (STEM sub-lattice scans): the probe visits every ``factor``-th position of the fine
  grid, ``coarse = fine[::f, ::f]``, so coarse pixel ``i`` sits exactly on fine pixel ``f*i`` (the
  top-left pixel of its block). The interpolation maps fine pixel ``x`` to coarse coordinate
  ``x / f`` and passes through the samples; the last ``f - 1`` rows and columns, past the last
  sample, are extrapolated by edge replication. The model's output keeps the measured samples.

>>> from scopenet.tasks.superres import super_resolve     # doctest: +SKIP
>>> fine = super_resolve(coarse, factor=4)                         # (32, 32) -> (128, 128)  # doctest: +SKIP
>>> fine = super_resolve(stem_sublattice, factor=2, model="stem-x4")  # doctest: +SKIP
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from ...image.micrograph import Micrograph
from ...nn.vdsr import VDSR

MODEL_PREFIX = "superres-"
DEFAULT_MODEL = "spm-x4"
STEM_MODEL = "stem-x4"
MAX_FACTOR = 8
INTERP_MODES = ("nearest", "bilinear", "bicubic")
#: how a coarse scan samples the fine grid; a card without the field is ``"block_mean"``
SAMPLINGS = ("block_mean", "decimate")
DEFAULT_SAMPLING = "block_mean"


# ----------------------------------------------------------------------------- pure functions
def check_factor(factor: Any) -> int:
    """Validate an integer upsampling factor in ``2..MAX_FACTOR`` (``InputError`` otherwise)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or not 2 <= int(factor) <= MAX_FACTOR:
        raise InputError(f"super-resolution factor must be an integer from 2 to {MAX_FACTOR}, got {factor!r}")
    return int(factor)


def _check_image(img: Any, what: str = "image") -> np.ndarray:
    a = np.asarray(img.data if isinstance(img, Micrograph) else img)
    if a.ndim != 2 or min(a.shape) < 2:
        raise InputError(f"{what} must be a 2-D array of at least 2x2 pixels, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
        raise InputError(f"{what} must be finite numbers")
    return a.astype(np.float32)


def check_sampling(sampling: Any) -> str:
    """Validate a sampling name (one of :data:`SAMPLINGS`; ``InputError`` otherwise)."""
    if sampling not in SAMPLINGS:
        raise InputError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    return sampling


def block_mean(img: np.ndarray, factor: int) -> np.ndarray:
    """Coarse scan of ``img``: mean over ``factor x factor`` blocks.

    Parameters
    ----------
    img : ndarray (..., H, W)
        ``H`` and ``W`` are cropped down to multiples of ``factor``.
    factor : int

    Returns
    -------
    ndarray (..., H // factor, W // factor), float32
    """
    f = check_factor(factor)
    a = np.asarray(img, np.float32)
    h, w = a.shape[-2] // f * f, a.shape[-1] // f * f
    if h == 0 or w == 0:
        raise InputError(f"image of shape {a.shape} is smaller than one {f}x{f} block")
    a = a[..., :h, :w]
    return a.reshape(*a.shape[:-2], h // f, f, w // f, f).mean(axis=(-3, -1)).astype(np.float32)


def decimate(img: np.ndarray, factor: int) -> np.ndarray:
    """Coarse STEM sub-lattice scan of ``img``: every ``factor``-th pixel, ``img[..., ::f, ::f]``.

    Parameters
    ----------
    img : ndarray (..., H, W)
        ``H`` and ``W`` are cropped down to multiples of ``factor`` first, so the shape matches
        :func:`block_mean`.
    factor : int

    Returns
    -------
    ndarray (..., H // factor, W // factor), float32; pixel ``(i, j)`` is ``img[..., f*i, f*j]``
    (the positions of :func:`scopenet.simulate.scans.sublattice_mask` with ``step=f``).
    """
    f = check_factor(factor)
    a = np.asarray(img, np.float32)
    h, w = a.shape[-2] // f * f, a.shape[-1] // f * f
    if h == 0 or w == 0:
        raise InputError(f"image of shape {a.shape} is smaller than one {f}x{f} block")
    return np.ascontiguousarray(a[..., :h:f, :w:f])


def coarsen(img: np.ndarray, factor: int, sampling: str = DEFAULT_SAMPLING) -> np.ndarray:
    """The coarse scan of a fine image under ``sampling`` (:func:`block_mean` or :func:`decimate`)."""
    return block_mean(img, factor) if check_sampling(sampling) == "block_mean" else decimate(img, factor)


def _upsample_decimated(t: torch.Tensor, f: int, mode: str) -> torch.Tensor:
    """Interpolate ``(B, C, h, w)`` so that output pixel ``f*i`` lies on input pixel ``i``."""
    h, w = t.shape[-2:]
    if mode == "nearest":  # each fine pixel takes the closest sample (ties to the later one)
        iy = torch.clamp((torch.arange(f * h) + f // 2) // f, max=h - 1)
        ix = torch.clamp((torch.arange(f * w) + f // 2) // f, max=w - 1)
        return t[..., iy, :][..., ix]
    # one replicated row/column past the end, then align_corners=True onto f*h + 1 points maps
    # output x to input x/f exactly; crop the extra point
    p = F.pad(t, (0, 1, 0, 1), mode="replicate")
    out = F.interpolate(p, size=(f * h + 1, f * w + 1), mode=mode, align_corners=True)
    return out[..., :f * h, :f * w]


def upsample(img: np.ndarray | torch.Tensor, factor: int, mode: str = "bicubic",
             sampling: str = DEFAULT_SAMPLING) -> np.ndarray | torch.Tensor:
    """Interpolate a coarse image (or a ``(B, 1, h, w)`` tensor) ``factor`` times larger.

    Parameters
    ----------
    img : ndarray (h, w) or Tensor (B, C, h, w)
    factor : int
        2..8.
    mode : {"nearest", "bilinear", "bicubic"}
        Bicubic is Keys' kernel with a = -0.75, as torch.
    sampling : {"block_mean", "decimate"}
        The grid convention of the coarse scan: ``"block_mean"`` puts the coarse pixel centres at
        the centres of their blocks (half-pixel convention, consistent with :func:`block_mean`);
        ``"decimate"`` puts coarse pixel ``i`` on fine pixel ``f*i`` (consistent with
        :func:`decimate`), so bilinear and bicubic pass through the samples.

    Returns
    -------
    ndarray (factor*h, factor*w) float32, or Tensor (B, C, factor*h, factor*w)
    """
    f = check_factor(factor)
    if mode not in INTERP_MODES:
        raise InputError(f"interpolation mode must be one of {INTERP_MODES}, got {mode!r}")
    check_sampling(sampling)
    is_tensor = isinstance(img, torch.Tensor)
    t = img if is_tensor else torch.from_numpy(np.ascontiguousarray(img, np.float32))[None, None]
    if sampling == "decimate":
        out = _upsample_decimated(t, f, mode)
    else:
        kw = {} if mode == "nearest" else {"align_corners": False}
        out = F.interpolate(t, scale_factor=f, mode=mode, **kw)
    return out if is_tensor else out[0, 0].numpy()


def _unit(a: np.ndarray) -> tuple[np.ndarray, float, float]:
    lo, hi = float(a.min()), float(a.max())
    span = hi - lo if hi > lo else 1.0
    return (a - lo) / span, lo, span


def make_pairs(images: np.ndarray, factor: int, patch: int, n: int,
               rng: np.random.Generator, sampling: str = DEFAULT_SAMPLING) -> tuple[np.ndarray, np.ndarray]:
    """Random training pairs: ``(coarse, fine)`` patches, each scaled so the fine patch spans [0, 1].

    Parameters
    ----------
    images : ndarray (N, H, W)
        Fine images, ``H, W >= patch``.
    factor : int
    patch : int
        Fine patch size in pixels (a multiple of ``factor``).
    n : int
        Number of pairs.
    rng : numpy Generator
        Draws the image, the position, one of four rotations and a mirror flip per pair.
    sampling : {"block_mean", "decimate"}
        How the coarse patch is made from the fine one (:func:`coarsen`).

    Returns
    -------
    coarse : float32 (n, 1, patch // factor, patch // factor)
    fine : float32 (n, 1, patch, patch)
    """
    f = check_factor(factor)
    check_sampling(sampling)
    images = np.asarray(images)
    if images.ndim != 3 or min(images.shape[1:]) < patch or patch % f:
        raise InputError(f"make_pairs needs (N, H, W) images of at least patch={patch} px and a patch that is "
                         f"a multiple of factor {f}, got shape {images.shape}")
    N, H, W = images.shape
    fine = np.empty((n, 1, patch, patch), np.float32)
    for i in range(n):
        k = rng.integers(N)
        y, x = rng.integers(0, H - patch + 1), rng.integers(0, W - patch + 1)
        p = images[k, y:y + patch, x:x + patch]
        p = np.rot90(p, rng.integers(4))
        if rng.random() < 0.5:
            p = p[:, ::-1]
        fine[i, 0] = _unit(p)[0]
    return coarsen(fine, f, sampling), fine


# --------------------------------------------------------------------------------- estimator
class SuperResolver:
    """Upsample uniformly sub-sampled scans with a residual CNN on top of bicubic interpolation.

    Parameters
    ----------
    net : torch.nn.Module, optional
        Maps a bicubic-upsampled ``(B, 1, H, W)`` image to the fine image; default an untrained
        :class:`VDSR` (which returns bicubic exactly).
    card : dict, optional
        Model card (set by :meth:`pretrained` / :meth:`load`).
    sampling : {"block_mean", "decimate"}, optional
        How coarse scans sample the fine grid (see the module docstring); overrides the card's
        ``"sampling"``. Default: the card's, else ``"block_mean"`` (SPM). The input upsample of
        :meth:`fit` and :meth:`predict` follows it; with ``"decimate"`` the output keeps the
        measured samples at ``[::factor, ::factor]``.
    """

    device: str | None = None  #: where the network runs (scopenet.nn.device; None = $SCOPENET_DEVICE or "auto")

    def __init__(self, net: nn.Module | None = None, card: dict | None = None, sampling: str | None = None):
        self.net = net if net is not None else VDSR()
        self.card = dict(card or getattr(self.net, "scopenet_card", {}) or {})
        if sampling is not None:
            self.card["sampling"] = check_sampling(sampling)
        check_sampling(self.sampling)
        self.net.eval()

    @property
    def sampling(self) -> str:
        """The card's ``"sampling"`` (``"block_mean"`` when the card lacks it, as older SPM cards)."""
        return self.card.get("sampling", DEFAULT_SAMPLING)

    # ------------------------------------------------------------------ construction / files
    @classmethod
    def pretrained(cls, name: str = DEFAULT_MODEL) -> SuperResolver:
        """Load a shipped or cached model by name (``"spm-x4"`` = ``superres-spm-x4``) or path stem."""
        from ...training.packaging import load_model

        key = name
        if not key.startswith(MODEL_PREFIX) and "/" not in key and "\\" not in key and not Path(key).exists():
            key = MODEL_PREFIX + key
        net = load_model(key)
        return cls(net, net.scopenet_card)

    @classmethod
    def load(cls, path_stem: str | Path) -> SuperResolver:
        """Load a model saved with :meth:`save` (``<stem>.safetensors`` + ``<stem>.json``)."""
        from ...training.packaging import load_model

        net = load_model(Path(path_stem))
        return cls(net, net.scopenet_card)

    def save(self, path_stem: str | Path, overwrite: bool = False, **card_fields: Any) -> tuple[Path, Path]:
        """Write weights + model card (never overwrites without ``overwrite=True``)."""
        from ...training.packaging import save_model

        card = {k: v for k, v in self.card.items() if k not in ("architecture", "n_parameters", "card_format")}
        card.update(card_fields)
        card.setdefault("task", "inpaint")
        card.setdefault("kind", "super-resolution")
        card.setdefault("input_shape", [1, 1, 128, 128])  # bicubic-upsampled image
        card["sampling"] = check_sampling(card.get("sampling", self.sampling))
        return save_model(path_stem, self.net, card, overwrite=overwrite)

    # ------------------------------------------------------------------------------ training
    def fit(self, images: Iterable | np.ndarray, factors: tuple[int, ...] = (2, 4), steps: int = 200,
            batch_size: int = 16, patch: int = 64, lr: float = 1e-3, seed: int = 0,
            time_budget_s: float | None = None, callback=None) -> SuperResolver:
        """Train (or fine-tune) on fine images: coarsen them (``self.sampling``), learn to undo it.

        Parameters
        ----------
        images : ndarray (N, H, W) or sequence of 2-D arrays / Micrographs (the fine scans)
        factors : tuple of int
            A factor is drawn per step (multi-scale training, as VDSR).
        steps, batch_size, patch, lr, seed : training settings (patch in fine pixels).
        time_budget_s : float, optional
            Stop after this many seconds.
        callback : callable, optional
            ``callback(step, loss, net)`` after each step (checkpointing, progress).

        Sets ``history_`` (the per-step MSE of the normalised patches).
        """
        fs = tuple(check_factor(f) for f in factors)
        if not fs:
            raise InputError("fit needs at least one factor")
        if patch % int(np.lcm.reduce(fs)) != 0:
            raise InputError(f"patch {patch} must be a multiple of every factor {fs}")
        pool = np.stack([_check_image(im, "training image") for im in images]) if not isinstance(images, np.ndarray) \
            else np.asarray(images, np.float32)
        if pool.ndim != 3 or len(pool) == 0 or min(pool.shape[1:]) < patch:
            raise InputError(f"fit needs (N, H, W) images of at least {patch} px, got shape {pool.shape}")
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        from ...nn.device import place

        dev = place(self.net, self.device)  # pairs are made on the CPU, then moved
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.net.train()
        t0 = time.time()
        losses = []
        for step in range(steps):
            if time_budget_s is not None and time.time() - t0 > time_budget_s:
                break
            f = fs[rng.integers(len(fs))]
            lo, hi = make_pairs(pool, f, patch, batch_size, rng, self.sampling)
            loss = F.mse_loss(self._forward(torch.from_numpy(lo).to(dev), f), torch.from_numpy(hi).to(dev))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            if callback is not None:
                callback(step, losses[-1], self.net)
        self.net.eval()
        self.history_ = losses
        return self

    # ---------------------------------------------------------------------------- prediction
    def _forward(self, coarse: torch.Tensor, f: int) -> torch.Tensor:
        """``(B, 1, h, w)`` coarse -> ``(B, 1, f*h, f*w)``: net on the sampling-aligned bicubic upsample."""
        y = self.net(upsample(coarse, f, "bicubic", self.sampling))
        if self.sampling == "decimate":  # the measured probe positions are known exactly: keep them
            y = y.clone()
            y[..., ::f, ::f] = coarse
        return y

    def predict_batch(self, coarse: np.ndarray, factor: int) -> np.ndarray:
        """Super-resolve a stack ``(N, h, w)`` of images already scaled to [0, 1] -> ``(N, f*h, f*w)``."""
        f = check_factor(factor)
        c = np.asarray(coarse)
        if c.ndim != 3 or min(c.shape[1:]) < 2:
            raise InputError(f"predict_batch needs a (N, h, w) stack of at least 2x2 images, got shape {c.shape}")
        from ...nn.device import place

        self.net.eval()
        dev = place(self.net, self.device)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(c, np.float32))[:, None].to(dev)
            return self._forward(x, f)[:, 0].float().cpu().numpy()

    def predict(self, img, factor: int = 4) -> np.ndarray | Micrograph:
        """Super-resolve one coarse scan.

        Parameters
        ----------
        img : ndarray (h, w) or Micrograph
            The coarse scan (any intensity units; scaled to [0, 1] internally and back), sampled
            as the card's ``sampling`` says: block means (SPM) or every ``factor``-th probe
            position (STEM, ``"decimate"``; the output's pixel ``(f*i, f*j)`` is input ``(i, j)``).
        factor : int
            Upsampling factor, 2..8 (the shipped models were trained at 2 and 4).

        Returns
        -------
        ndarray float32 (factor*h, factor*w), or a Micrograph with the pixel size divided by
        ``factor`` (field of view kept) and a provenance entry, when ``img`` is one.
        """
        f = check_factor(factor)
        a = _check_image(img)
        u, lo, span = _unit(a)
        out = (self.predict_batch(u[None], f)[0] * span + lo).astype(np.float32)
        if not isinstance(img, Micrograph):
            return out
        return img.with_data(out, operation="super_resolve", factor=f, model=self.card.get("name", "untrained"))


_CACHE: dict[str, SuperResolver] = {}


def super_resolve(img, factor: int = 4, model: str | SuperResolver = DEFAULT_MODEL) -> np.ndarray | Micrograph:
    """Upsample a coarse regular-grid scan ``factor`` times with a pretrained model.

    Parameters
    ----------
    img : ndarray (h, w) or Micrograph
    factor : int
        2..8.
    model : str or SuperResolver
        Installed model name (``"spm-x4"`` for block-mean SPM scans, ``"stem-x4"`` for STEM
        sub-lattice scans, ``coarse = fine[::f, ::f]``), a path stem, or an estimator.

    Returns
    -------
    ndarray (factor*h, factor*w) or Micrograph
    """
    check_factor(factor)
    if isinstance(model, SuperResolver):
        est = model
    else:
        if model not in _CACHE:
            _CACHE[model] = SuperResolver.pretrained(model)
        est = _CACHE[model]
    return est.predict(img, factor)


__all__ = ["SAMPLINGS", "VDSR", "SuperResolver", "block_mean", "check_factor", "check_sampling", "coarsen",
           "decimate", "make_pairs", "super_resolve", "upsample"]
