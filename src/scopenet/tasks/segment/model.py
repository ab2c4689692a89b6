"""Per-pixel segmentation: ``Segmenter`` (a U-Net family on the estimator contract) and ``segment(img)``.

A :class:`Segmenter` maps an image to class probabilities: a :class:`~scopenet.nn.seg_unet.SegUNet`
(depth, width and bottleneck dilation configurable) or an ensemble of them, whose spread is a per-pixel
uncertainty. It trains on the user's own images and label images (arrays, or folders paired by file
name, any format scopenet reads); the shipped ``segment-particles`` finds nanoparticles in TEM/SEM
micrographs (trained on :mod:`scopenet.simulate.em.particle_data`).

>>> import numpy as np
>>> seg = Segmenter(unet={"depth": 1, "base_channels": 4})
>>> seg.predict(np.zeros((40, 50), np.float32)).shape          # (classes, y, x)
(2, 40, 50)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...image.micrograph import Axis, Micrograph
from ...image.tta import check_views, tta_average
from .._estimator import Estimator, cached, map_images, register
from .config import SegmentConfig
from .data import load_pairs, normalise

__all__ = ["Segmenter", "segment", "DEFAULT_MODEL"]

DEFAULT_MODEL = "segment-particles"


def _softmax(z: np.ndarray, axis: int) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@register
class Segmenter(Estimator):
    """Per-pixel classes of micrographs with a U-Net (or an ensemble of U-Nets).

    Parameters
    ----------
    config : SegmentConfig or dict, optional
        Classes (background first), the U-Net settings (``unet``), ``ensemble`` size, intensity
        ``percentiles`` and tiling; keyword overrides too.
    device : str, optional
        Where the network runs (:mod:`scopenet.nn.device`).

    Examples
    --------
    >>> import numpy as np
    >>> from scopenet.simulate.em.particle_data import particle_batch
    >>> x, m = particle_batch(4, size=64, seed=0)
    >>> seg = Segmenter(unet={"depth": 1, "base_channels": 4}).fit(x, m, steps=2, patch=32, batch_size=2)  # doctest: +SKIP
    >>> seg.predict_labels(x[0]).shape  # doctest: +SKIP
    (64, 64)
    """

    task = "segment"
    config_class = SegmentConfig
    aliases = {"default": DEFAULT_MODEL, "particles": DEFAULT_MODEL}

    def build_net(self):
        from ...nn import architecture_of, build_architecture
        from ...nn.ensemble import LogitEnsemble

        cfg = dict(self.config.unet)
        cfg["n_classes"] = len(self.config.classes)
        member = build_architecture("seg-unet", cfg)
        self.config.unet = architecture_of(member)["config"]
        if self.config.ensemble == 1:
            return member.eval()
        ens = LogitEnsemble({"name": "seg-unet", "config": self.config.unet}, self.config.ensemble)
        return ens.eval()

    @classmethod
    def config_from_card(cls, card) -> dict[str, Any]:
        cfg = super().config_from_card(card)
        arch = card.architecture
        cfg["unet"] = dict(arch.config["member"]["config"] if arch.name == "ensemble" else arch.config)
        cfg["ensemble"] = int(arch.config.get("n", 1)) if arch.name == "ensemble" else 1
        return cfg

    @property
    def classes(self) -> list[str]:
        """The class names (class 0 the background)."""
        return list(self.config.classes)

    def _members(self):
        net = self._check_fitted()
        return list(net.members) if hasattr(net, "members") else [net]

    # ------------------------------------------------------------------------------ training
    def fit(self, images: Any, masks: Any, *, steps: int = 500, batch_size: int = 8, patch: int = 128,
            lr: float = 1e-3, seed: int = 0, time_budget_s: float | None = None, dice_weight: float = 1.0,
            workdir: str | Path | None = None, progress: bool = False, callback=None) -> Segmenter:
        """Train (or fine-tune) on images and their label images.

        Parameters
        ----------
        images, masks : ndarray (N, H, W), list of 2-D arrays / Micrographs, or folder paths
            Masks hold class indices (with two classes any non-zero value is foreground). Folders are
            paired by file name (``a.tif`` with ``a.png``); any format scopenet reads.
        steps, batch_size, patch, lr, seed : training settings (``patch`` px random crops).
        time_budget_s : float, optional
            Stop after this many seconds (shared by the ensemble members).
        dice_weight : float
            Weight of the soft Dice loss beside the cross-entropy.
        workdir : path, optional
            Write checkpoints and a log there (None: nothing written).
        callback : callable, optional
            ``callback(step, loss, net)`` after each step.

        Raises
        ------
        InputError
            Different numbers of images and masks, an image and its mask of different shapes (naming
            both files), mask values outside the classes.
        """
        import torch

        from ...nn.device import resolve_device
        from .config import SegmentTrainConfig
        from .train import train

        n_classes = len(self.config.classes)
        xs, ms, _ = load_pairs(images, masks, n_classes)
        xs = [normalise(a, self.config.percentiles) for a in xs]
        c = self.config
        cfg = SegmentTrainConfig(workdir=workdir, classes=list(c.classes), max_steps=steps, batch_size=batch_size,
                                 patch=patch, lr=lr, seed=seed, time_budget_s=time_budget_s, dice_weight=dice_weight,
                                 percentiles=c.percentiles, threads=torch.get_num_threads(),
                                 checkpoint_every_n_steps=None if workdir is None else 100)
        self.history_ = train(self.net_, xs, ms, cfg, device=str(resolve_device(self.device)), progress=progress,
                              callback=callback)
        return self

    # ---------------------------------------------------------------------------- prediction
    def _logits(self, batch: np.ndarray) -> np.ndarray:
        """Every member's logits on scaled frames ``(B, H, W)`` -> ``(M, B, K, H, W)``."""
        from ...nn.device import run_numpy

        x = np.asarray(batch, np.float32)[:, None]
        return np.stack([run_numpy(m.eval(), x, self.device) for m in self._members()])

    def _member_probs(self, u: np.ndarray) -> np.ndarray:
        """Member probabilities of one scaled frame ``(H, W)`` -> ``(M, K, H, W)`` (tiled when large)."""
        cfg = self.config
        if u.size <= cfg.max_direct_pixels:
            return _softmax(self._logits(u[None])[:, 0], axis=1)
        from ...image.tiling import predict_tiled

        n_m, n_k = len(self._members()), len(cfg.classes)
        queue: list[np.ndarray] = []
        chans = []
        for j in range(n_m * n_k):  # the tiler blends one channel at a time: the net runs on the first pass

            def fn(b, j=j):
                if j == 0:
                    p = _softmax(self._logits(b), axis=2)  # (M, B, K, h, w)
                    queue.append(p)
                    return p[0, :, 0]
                p = queue[fn.calls[0]]
                fn.calls[0] += 1
                return p[j // n_k, :, j % n_k]

            fn.calls = [0]
            chans.append(predict_tiled(u, fn, tile=cfg.tile, overlap=min(cfg.overlap, cfg.tile - 1), batch_size=1,
                                       batched=True, progress=self.progress and j == 0, operation=None))
        return np.stack(chans).reshape(n_m, n_k, *u.shape).astype(np.float32)

    def _frame(self, frame: np.ndarray, views: int) -> np.ndarray:
        a = np.asarray(frame, np.float32)
        if min(a.shape) < 1 or not np.isfinite(a).any():
            raise InputError(f"cannot segment an image of shape {a.shape} without finite pixels")
        u = normalise(a, self.config.percentiles)
        return np.asarray(tta_average(self._member_probs, u, views=views), np.float32)  # (M, K, H, W)

    def _map(self, x: Any, fn, operation: str, views: int, channels: bool):
        """Apply ``fn(frame) -> (C, H, W)`` (``channels``) or ``(H, W)`` to every frame, keeping the input's kind
        (a Micrograph keeps its calibration; a class axis is added before y, x)."""
        if isinstance(x, (list, tuple)):
            if not x:
                raise InputError("image: empty list")
            return [self._map(xi, fn, operation, views, channels) for xi in x]
        raw = map_images(fn, x.data if isinstance(x, Micrograph) else x, what="image")
        if not isinstance(x, Micrograph):
            return raw
        out = np.asarray(raw)
        axes = list(x.axes)
        if channels:
            k = out.shape[-3]
            axes = axes[:-2] + [Axis("class", k)] + axes[-2:]
        return x.with_data(out, axes=axes, operation=operation, model=self.name, tta=views, classes=self.classes)

    def predict(self, x: Any, *, tta: int = 1) -> Any:
        """Class probabilities of every pixel.

        Parameters
        ----------
        x : ndarray (H, W) or (N, H, W), Micrograph, or a list of these
            Any intensity units (each image is scaled by its ``config.percentiles``); any size (tiled).
        tta : int
            Number of flipped/rotated views averaged.

        Returns
        -------
        The input's kind with a class axis before (y, x): ``(K, H, W)`` for an image, ``(N, K, H, W)`` for a
        stack, float32 summing to 1 over the classes; a Micrograph keeps its calibration (a ``"class"``
        axis added) and gets a provenance entry; a list gives a list.
        """
        views = check_views(tta)
        return self._map(x, lambda f: self._frame(f, views).mean(0), "segment", views, True)

    def predict_uncertainty(self, x: Any, *, tta: int = 1) -> tuple[Any, Any]:
        """Class probabilities and their per-pixel standard deviation over the ensemble members.

        Returns ``(probabilities, std)``, both shaped as :meth:`predict`'s output; ``std`` is zero for a
        single network (train with ``ensemble >= 2`` for an uncertainty).
        """
        views = check_views(tta)
        probs = self._map(x, lambda f: self._frame(f, views).mean(0), "segment", views, True)
        std = self._map(x, lambda f: self._frame(f, views).std(0), "segment_std", views, True)
        return probs, std

    def predict_labels(self, x: Any, *, tta: int = 1) -> Any:
        """The most probable class of every pixel (int32 ``(H, W)`` per image; binary models: foreground
        probability above ``config.threshold``)."""
        views = check_views(tta)

        def lab(f):
            p = self._frame(f, views).mean(0)
            if p.shape[0] == 2:
                return (p[1] > self.config.threshold).astype(np.int32)
            return p.argmax(0).astype(np.int32)

        return self._map(x, lab, "segment_labels", views, False)

    def save(self, path, overwrite: bool = False):
        """Write weights + model card (never overwrites without ``overwrite=True``)."""
        self.card_.preprocessing.setdefault("input_shape", [1, 1, 128, 128])
        self.card_.preprocessing.setdefault("scaling", f"per image, percentiles {list(self.config.percentiles)} "
                                                       "to [0, 1]")
        return super().save(path, overwrite=overwrite)


def segment(img: Any, model: str | Segmenter = DEFAULT_MODEL, *, labels: bool = True, tta: int = 1) -> Any:
    """Segment an image with a pretrained model (``sn.segment``).

    Parameters
    ----------
    img : ndarray (H, W) / (N, H, W), Micrograph, or a list of these
    model : str or Segmenter
        Installed model name (``"segment-particles"``, alias ``"particles"``), a path stem, or an estimator.
    labels : bool
        True: the label image (int32 class per pixel); False: the class probabilities ``(K, H, W)``.
    tta : int
        Number of flipped/rotated views averaged.

    Returns
    -------
    The input's kind: label images, or class probabilities with a class axis before (y, x).
    """
    est = model if isinstance(model, Segmenter) else cached(("segment", str(model)),
                                                            lambda: Segmenter.pretrained(str(model)))
    return est.predict_labels(img, tta=tta) if labels else est.predict(img, tta=tta)
