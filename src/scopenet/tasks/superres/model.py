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

from collections.abc import Iterable

import numpy as np
import torch

from ...errors import InputError
from ...nn.vdsr import VDSR
from .config import SuperResConfig
from ...image.tta import check_views, tta_average
from .._estimator import Estimator, cached, map_images, register
from .baselines import (SAMPLINGS, _check_image, block_mean, check_factor,
                        check_sampling, coarsen, decimate, upsample)
from .data import make_pairs  # noqa: F401  (public here: moved beside the training that uses it)

DEFAULT_MODEL = "spm-x4"
STEM_MODEL = "stem-x4"


def _unit(a: np.ndarray) -> tuple[np.ndarray, float, float]:
    lo, hi = float(a.min()), float(a.max())
    span = hi - lo if hi > lo else 1.0
    return (a - lo) / span, lo, span


# --------------------------------------------------------------------------------- estimator
@register
class SuperResolver(Estimator):
    """Upsample uniformly sub-sampled scans with a residual CNN on top of bicubic interpolation (the
    estimator contract of :mod:`scopenet.tasks._estimator`).

    Parameters
    ----------
    config : SuperResConfig or dict, optional
        The network, ``sampling`` (how coarse scans sample the fine grid: ``"block_mean"`` for SPM,
        ``"decimate"`` for STEM sub-lattices; the input upsample of :meth:`fit` and :meth:`predict`
        follows it, and with ``"decimate"`` the output keeps the measured samples at
        ``[::factor, ::factor]``), the default ``factor`` and tiling; keyword overrides too.
    device : str, optional
        Where the network runs (:mod:`scopenet.nn.device`).
    """

    task = "superres"
    config_class = SuperResConfig
    aliases = {"default": "superres-" + DEFAULT_MODEL}

    def build_net(self):
        from ...nn import build_architecture

        return build_architecture(self.config.arch, self.config.arch_config).eval()

    @property
    def sampling(self) -> str:
        """How coarse scans sample the fine grid (``config.sampling``)."""
        return self.config.sampling

    def save(self, path, overwrite: bool = False):
        """Write weights + model card (never overwrites without ``overwrite=True``)."""
        self.card_.preprocessing.setdefault("input_shape", [1, 1, 128, 128])  # bicubic-upsampled image
        return super().save(path, overwrite=overwrite)

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
        from ...nn.device import resolve_device
        from .config import SuperResTrainConfig
        from .train import train

        fs = tuple(check_factor(f) for f in factors)
        if not fs:
            raise InputError("fit needs at least one factor")
        if patch % int(np.lcm.reduce(fs)) != 0:
            raise InputError(f"patch {patch} must be a multiple of every factor {fs}")
        pool = np.stack([_check_image(im, "training image") for im in images]) if not isinstance(images, np.ndarray) \
            else np.asarray(images, np.float32)
        if pool.ndim != 3 or len(pool) == 0 or min(pool.shape[1:]) < patch:
            raise InputError(f"fit needs (N, H, W) images of at least {patch} px, got shape {pool.shape}")
        # on the engine (scopenet.training.budget): constant rate, gradients clipped to 1, nothing written
        cfg = SuperResTrainConfig(workdir=None, factors=list(fs), max_steps=steps, batch_size=batch_size, patch=patch,
                                  lr=lr, seed=seed, time_budget_s=time_budget_s, sampling=self.sampling,
                                  threads=torch.get_num_threads(), checkpoint_every_n_steps=None)
        self.history_ = train(self.net_, pool, cfg, device=str(resolve_device(self.device)), callback=callback)
        return self

    # ---------------------------------------------------------------------------- prediction
    def _net_fine(self, x: np.ndarray) -> np.ndarray:
        """The network on a batch of upsampled images ``(B, H, W)`` -> ``(B, H, W)``."""
        from ...nn.device import run_numpy

        return run_numpy(self.net_, np.asarray(x, np.float32)[:, None], self.device)[:, 0]

    def _forward(self, coarse: torch.Tensor, f: int) -> torch.Tensor:
        """``(B, 1, h, w)`` coarse -> ``(B, 1, f*h, f*w)``: net on the sampling-aligned bicubic upsample."""
        y = self.net_(upsample(coarse, f, "bicubic", self.sampling))
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
        self.net_.eval()
        up = upsample(torch.from_numpy(np.ascontiguousarray(c, np.float32))[:, None], f, "bicubic",
                      self.sampling)[:, 0].numpy()
        cfg = self.config
        if up[0].size <= cfg.max_direct_pixels:
            y = self._net_fine(up)
        else:
            from ...image.tiling import predict_tiled

            y = predict_tiled(up, self._net_fine, tile=cfg.tile, overlap=cfg.overlap, batch_size=1, batched=True,
                              progress=self.progress,
                              operation=None)
        if self.sampling == "decimate":
            y[:, ::f, ::f] = c
        return np.asarray(y, np.float32)

    def resolve_frame(self, frame: np.ndarray, factor: int | None = None, tta: int = 1) -> np.ndarray:
        """Super-resolve one 2-D coarse scan in its own intensity units (see :meth:`predict`)."""
        f = check_factor(self.config.factor if factor is None else factor)
        a = _check_image(frame)
        u, lo, span = _unit(a)
        if tta > 1:
            if self.sampling == "decimate":
                raise InputError("tta needs block-mean sampling: flipping a decimated scan moves its samples "
                                 "off the fine grid's [::f, ::f] positions")
            y = tta_average(lambda c: self.predict_batch(c[None], f)[0], u.astype(np.float32), views=tta)
        else:
            y = self.predict_batch(u[None], f)[0]
        return (y * span + lo).astype(np.float32)

    def predict(self, img, factor: int | None = None, *, tta: int = 1):
        """Super-resolve a coarse scan, a stack or a list of them.

        Parameters
        ----------
        img : ndarray (h, w) or (N, h, w), Micrograph, or a list of these
            The coarse scan (any intensity units; scaled to [0, 1] internally and back), sampled
            as ``config.sampling`` says: block means (SPM) or every ``factor``-th probe
            position (STEM, ``"decimate"``; the output's pixel ``(f*i, f*j)`` is input ``(i, j)``).
        factor : int, optional
            Upsampling factor, 2..8 (default ``config.factor``; the shipped models were trained at 2 and 4).
        tta : int
            Number of flipped/rotated views averaged (block-mean sampling only).

        Returns
        -------
        The input's kind, ``factor`` times larger: ndarray float32, a Micrograph with the pixel size
        divided by ``factor`` (field of view kept) and a provenance entry, or a list.

        Raises
        ------
        InputError
            A factor outside 2..8, a non-finite or too small image.
        """
        f = check_factor(self.config.factor if factor is None else factor)
        views = check_views(tta)
        return map_images(lambda fr: self.resolve_frame(fr, f, views), img, operation="super_resolve",
                          what="coarse scan", provenance=lambda: {"factor": f, "model": self.name, "tta": views})


def super_resolve(img, factor: int = 4, model: str | SuperResolver = DEFAULT_MODEL, tta: int = 1):
    """Upsample a coarse regular-grid scan ``factor`` times with a pretrained model (``sn.super_resolve``).

    Parameters
    ----------
    img : ndarray (h, w) / (N, h, w), Micrograph, or a list of these
    factor : int
        2..8.
    model : str or SuperResolver
        Installed model name (``"spm-x4"`` for block-mean SPM scans, ``"stem-x4"`` for STEM
        sub-lattice scans, ``coarse = fine[::f, ::f]``), a path stem, or an estimator.
    tta : int
        Number of flipped/rotated views averaged (block-mean models only).

    Returns
    -------
    The input's kind, ``factor`` times larger (a Micrograph's pixel size divided by ``factor``).

    Raises
    ------
    InputError
        A factor outside 2..8, a non-finite or too small image, an unknown model.

    Examples
    --------
    >>> import numpy as np, scopenet as sn
    >>> sn.super_resolve(np.random.default_rng(0).random((32, 32)), factor=4).shape
    (128, 128)
    """
    check_factor(factor)
    est = model if isinstance(model, SuperResolver) else \
        cached(("superres", str(model)), lambda: SuperResolver.pretrained(str(model)))
    return est.predict(img, factor, tta=tta)


__all__ = ["SAMPLINGS", "VDSR", "SuperResolver", "block_mean", "check_factor", "check_sampling", "coarsen",
           "decimate", "make_pairs", "super_resolve", "upsample"]
