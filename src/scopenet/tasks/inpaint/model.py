"""The :class:`Inpainter` estimator and :func:`inpaint`: complete a sparse scan with a trained network.

>>> import scopenet as sn                                  # doctest: +SKIP
>>> full = sn.inpaint(partial, mask)                       # default pretrained model  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from ...image.micrograph import Micrograph
from ...image.padding import pad_to_multiple
from ...image.scaling import UnitScale
from ...image.tta import check_views, tta_average
from ...simulate.scans import nn_infill
from .._estimator import Estimator, Router, as_list, cached, map_images, register
from .baselines import check_scan, is_sublattice, sparse_fourier
from .config import InpaintConfig, InpaintTrainConfig

DEFAULT_MODEL = "inpaint-default"


def _scale(partial: np.ndarray, mask: np.ndarray, mode: str) -> UnitScale:
    """The map of the scanned values to [0, 1] (``mode="none"``: the identity)."""
    if mode == "none":
        return UnitScale(0.0, 1.0)
    v = partial[mask]
    lo, hi = float(v.min()), float(v.max())
    return UnitScale(lo, (hi - lo) if hi > lo else 1.0)


@register
class Inpainter(Estimator):
    """Complete partial scans: ``[NN infill, mask] -> network -> full image`` (the estimator contract of
    :mod:`scopenet.tasks._estimator`).

    Parameters
    ----------
    config : InpaintConfig or dict, optional
        Network (``arch``, ``arch_config``; default an untrained
        :class:`~scopenet.nn.partial_stem.InpaintUNet`, which returns the NN infill) and inference
        settings (tiling, intensity normalisation, Fourier refinement); keyword overrides too.
    device : str, optional
        Where the network runs (:mod:`scopenet.nn.device`): None = ``$SCOPENET_DEVICE`` or "auto"
        (a GPU when torch sees one).

    Attributes
    ----------
    net_ : torch.nn.Module
        Maps ``(B, 2, H, W)`` (infill, mask) to ``(B, 1, H, W)``.
    card_ : ModelCard
    history_ : list of float
    last_fourier_ : bool
        Whether the last :meth:`predict` refined by Fourier sparsity (the last scan, for a stack).
    """

    task = "inpaint"
    config_class = InpaintConfig
    aliases = {"default": DEFAULT_MODEL}
    last_fourier_: bool = False

    def build_net(self):
        from ...nn import build_architecture

        return build_architecture(self.config.arch, self.config.arch_config).eval()

    @classmethod
    def pretrained(cls, name: str = "default", **kw) -> "Inpainter":
        """A shipped or cached model by name (``"default"`` = ``inpaint-default``, ``"dense"`` =
        ``inpaint-dense``) or path; ``"auto"`` returns the coverage-routed :class:`AutoInpainter`."""
        if name in ("auto", "inpaint-auto"):
            return AutoInpainter.pretrained(**kw)
        return super().pretrained(name, **kw)

    def save(self, path, overwrite: bool = False):
        """Write weights + model card (never overwrites without ``overwrite=True``)."""
        pre = self.card_.preprocessing
        pre.setdefault("input_shape", [1, 2, 64, 64])  # [infill, mask] channels
        return super().save(path, overwrite=overwrite)

    # ------------------------------------------------------------------------------ training
    def fit(self, images, config: InpaintTrainConfig | dict | None = None, **overrides: Any) -> "Inpainter":
        """Train (or fine-tune) the network on full images, masked on the fly.

        Parameters
        ----------
        images : sequence of 2-D arrays (or Micrographs), an (N, H, W) array; each is scaled to [0, 1]
        config : InpaintTrainConfig or dict, optional
            Training settings; ``workdir``, ``time_budget_s``, ``max_steps`` etc. (keyword overrides too).

        Returns
        -------
        self, with ``history_`` (the loss per step).
        """
        from ...image.scaling import unit_scale
        from .train import train

        cfg = config if isinstance(config, InpaintTrainConfig) else InpaintTrainConfig(**(config or {}))
        cfg = cfg.model_copy(update=overrides)
        pool = []
        for im in as_list(images):
            a = np.asarray(im.data if isinstance(im, Micrograph) else im, np.float32)
            if a.ndim != 2 or min(a.shape) < cfg.crop:
                raise InputError(f"fit needs 2-D images of at least {cfg.crop} px, got shape {a.shape}")
            pool.append(unit_scale(a)[0])
        if not pool:
            raise InputError("fit needs at least one image")
        if "workdir" not in cfg.model_fields_set:  # writes checkpoints (and resumes) only where told to
            cfg = cfg.model_copy(update={"workdir": None})
        device = None
        if self.device is not None and "accelerator" not in overrides:  # the estimator's device, unless told otherwise
            from ...nn.device import resolve_device

            device = str(resolve_device(self.device))
        self.history_ = train(self.net_, pool, cfg, device=device, resume=cfg.workdir is not None,
                              mask_size=max(cfg.crop, 128))
        self.net_.cpu()
        self.net_.eval()
        return self

    # ---------------------------------------------------------------------------- prediction
    def _complete(self, x: np.ndarray) -> np.ndarray:
        """The network on a batch ``(B, 2, H, W)`` -> ``(B, H, W)``, padded to its size multiple."""
        from ...nn.device import run_numpy

        xp, (h, w) = pad_to_multiple(x, int(getattr(self.net_, "size_multiple", 1)))
        return run_numpy(self.net_, xp, self.device)[:, 0, :h, :w]

    def complete_scan(self, partial: np.ndarray, mask: np.ndarray, tta: int = 1, fourier: str | None = None
                      ) -> np.ndarray:
        """Complete one 2-D partial scan in its own intensity units (see :meth:`predict`)."""
        p, m = check_scan(partial, mask)
        scale = _scale(p, m, self.config.normalise)
        pn = np.where(m, (p - scale.lo) / scale.span, 0).astype(np.float32)
        self.net_.eval()
        # each flipped/rotated scan goes the whole way (its own NN infill), then is mapped back
        out = tta_average(lambda pm: self._normalised(pm[0], pm[1] > 0), np.stack([pn, m.astype(np.float32)]),
                          views=tta) if tta > 1 else self._normalised(pn, m)
        mode = self.config.fourier if fourier is None else fourier
        if mode not in ("auto", "on", "off"):
            raise InputError(f"fourier must be 'auto', 'on' or 'off', got {mode!r}")
        self.last_fourier_ = mode == "on" or (mode == "auto" and fourier_helps(self._normalised, pn, m))
        if self.last_fourier_:
            out = sparse_fourier(pn, m, start=out)
        out = out * scale.span + scale.lo
        if self.config.keep_scanned:
            out[m] = p[m]
        return out.astype(np.float32)

    def predict(self, partial, mask=None, *, tta: int = 1, fourier: str | None = None):
        """Complete a partial scan, a stack or a list of them.

        Parameters
        ----------
        partial : ndarray (H, W) or (N, H, W), Micrograph, or a list of these
            Values at scanned pixels (anything elsewhere).
        mask : same structure as ``partial``
            Non-zero / True where the probe dwelt.
        tta : int
            Number of flipped/rotated views averaged (1..8; ``True`` is 8): each view of the scan is
            completed and mapped back (n views take n times as long; the gain is in the model card).
        fourier : {"auto", "on", "off"}, optional
            Refine the network's completion by sparsity in Fourier space
            (:func:`~scopenet.tasks.inpaint.baselines.sparse_fourier`), which recovers crystal lattices
            between the scanned lines. "auto" (the config's default) first withholds the samples of 1/8
            of the image's squares (as wide as the scan's large gaps), completes the rest both ways and
            refines only if that predicts the withheld samples better (:func:`fourier_helps`);
            :attr:`last_fourier_` says what was done.

        Returns
        -------
        The input's kind: ndarray float32 in the intensity units of ``partial``, a Micrograph
        (calibration kept, provenance entry ``inpaint`` added) or a list.

        Raises
        ------
        InputError
            A missing or mismatched mask, a scan without samples, a wrong input type.
        """
        if mask is None:
            raise InputError("inpainting needs the scan's mask (True where the probe dwelt)")
        if isinstance(partial, (list, tuple)):  # each scan its own provenance (coverage, refinement)
            if not isinstance(mask, (list, tuple)) or len(mask) != len(partial) or not partial:
                raise InputError("a list of partial scans needs a list of masks of the same length")
            return [self.predict(p, m, tta=tta, fourier=fourier) for p, m in zip(partial, mask)]
        views = check_views(tta)
        decisions: list[bool] = []

        def one(p, m):
            out = self.complete_scan(p, m, views, fourier)
            decisions.append(bool(self.last_fourier_))
            return out

        marr = mask.data if isinstance(mask, Micrograph) else mask
        return map_images(one, partial, marr, operation="inpaint", what="partial scan", provenance=lambda: {
            "model": self.name, "coverage": float(np.mean(np.asarray(marr) != 0)), "tta": views,
            "fourier": decisions[0] if len(decisions) == 1 else decisions})

    def _normalised(self, pn: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Completion of a normalised partial scan ``pn`` (zeros off the path) with mask ``m``."""
        x = np.stack([nn_infill(pn, m), m.astype(np.float32)])
        t, ov = self.config.tile, self.config.overlap
        if max(x.shape[-2:]) <= t:
            return self._complete(x[None])[0]
        from ...image.tiling import predict_tiled

        return predict_tiled(x, self._complete, tile=t, overlap=ov, batch_size=1, pad_mode="crop", batched=True,
                             progress=self.progress,
                             operation=None, channels=True, skip=lambda sub: sub[0] if not sub[1].any() else None)


def fourier_helps(complete, pn: np.ndarray, m: np.ndarray, block: int | None = None, fraction: float = 0.125,
                  seed: int = 0) -> bool:
    """Does Fourier-sparsity refinement help on this scan? A check on the scan's own samples.

    The image is cut into ``block`` x ``block`` squares (default: twice the 90th percentile of the
    distance from an unscanned pixel to the nearest sample, so the withheld gaps are as wide as the
    scan's own large gaps); the scanned pixels of a random ``fraction`` of the squares that hold any
    are withheld. The rest is completed by ``complete(partial, mask)`` (the network) and refined by
    :func:`~scopenet.tasks.inpaint.baselines.sparse_fourier`; the
    refinement is judged helpful when it predicts the withheld samples with the smaller mean squared
    error. Withheld squares leave gaps like those between a sparse path's lines, so the check
    measures the kind of error that matters. Scans too small or too sparse for the check (fewer than
    8 squares with samples) answer False, and so do uniform sub-lattice scans, whose regular sampling
    makes every frequency alias others (there the refinement makes completions worse; the measurements
    are in ``benchmarks/results/inpaint.md``).
    """
    if is_sublattice(m):  # regular sampling aliases every frequency: sparsity cannot tell them apart
        return False
    h, w = m.shape
    if block is None:  # as wide as the scan's own large gaps: twice the 90th-percentile distance to a sample
        from scipy import ndimage

        gap = np.percentile(ndimage.distance_transform_edt(~m)[~m], 90) if (~m).any() else 2.0
        block = int(np.clip(np.ceil(2 * gap), 4, max(4, min(h, w) // 4)))
    nbx = -(-w // block)
    blk = (np.arange(h)[:, None] // block) * nbx + (np.arange(w)[None, :] // block)
    ids = np.unique(blk[m])
    if len(ids) < 8:
        return False
    rng = np.random.default_rng(seed)
    held = np.isin(blk, rng.choice(ids, size=max(1, int(round(len(ids) * fraction))), replace=False)) & m
    kept = m & ~held
    if kept.sum() < 16:
        return False
    p2 = np.where(kept, pn, 0).astype(np.float32)
    net = complete(p2, kept)
    ref = sparse_fourier(p2, kept, start=net)
    e_net = float(np.mean((net[held] - pn[held]) ** 2))
    e_ref = float(np.mean((ref[held] - pn[held]) ** 2))
    return e_ref < e_net


#: installed specialists that :class:`AutoInpainter` may route to (each card holds ``coverage_range``)
SPECIALISTS = ("inpaint-dense",)


class AutoInpainter(Router):
    """Coverage-aware completion: each scan goes to a specialist trained for its coverage, if one is
    installed, else to the coverage-agnostic default model.

    A specialist's card gives the ``coverage_range`` ``[lo, hi]`` (fraction of pixels probed,
    ``card_.predict["coverage_range"]``) it was trained on; a scan whose coverage ``mask.mean()`` lies
    inside it goes there (the first match in ``specialists`` order). Figures: the cards and
    ``benchmarks/results/inpaint.md``.

    Parameters
    ----------
    default : Inpainter
    specialists : sequence of Inpainter
    """

    last_fourier_: bool = False  #: whether the last predict() refined by Fourier sparsity

    def __init__(self, default: Inpainter, specialists=()):
        from ...weights.card import ModelCard

        self.default = default
        self.specialists = list(specialists)
        for sp in self.specialists:
            rng = sp.card_.predict.get("coverage_range")
            if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and 0 < rng[0] < rng[1] <= 1):
                raise InputError(f"specialist {sp.name!r} has no valid coverage_range in its card (got {rng!r})")
        self.card_ = ModelCard(name="inpaint-auto", task="inpaint", architecture={"name": "router"}, predict={
            "default_model": default.name,
            "specialists": {sp.name: list(sp.card_.predict["coverage_range"]) for sp in self.specialists}})

    def members(self) -> list[Inpainter]:
        return [self.default, *self.specialists]

    @classmethod
    def pretrained(cls, **kw) -> "AutoInpainter":
        """``inpaint-default`` plus whichever of :data:`SPECIALISTS` are installed; keyword arguments
        (settings such as ``fourier="off"``, or ``device``) go to every member."""
        from ...weights import find_model

        found = []
        for name in SPECIALISTS:
            try:
                find_model(name)
            except InputError:
                continue
            found.append(Inpainter.pretrained(name, **kw))
        return cls(Inpainter.pretrained("default", **kw), found)

    def route(self, mask) -> Inpainter:
        """The model that completes a scan with this mask."""
        m = np.asarray(mask.data if isinstance(mask, Micrograph) else mask)
        c = float((m != 0).mean()) if m.size else 0.0
        for sp in self.specialists:
            lo, hi = sp.card_.predict["coverage_range"]
            if lo <= c <= hi:
                return sp
        return self.default

    def predict(self, partial, mask=None, *, tta: int = 1, fourier: str | None = None):
        """Complete each scan with the model its coverage routes it to (see :meth:`Inpainter.predict`)."""
        if mask is None:
            raise InputError("inpainting needs the scan's mask (True where the probe dwelt)")
        if isinstance(partial, (list, tuple)):
            return [self.predict(p, m, tta=tta, fourier=fourier) for p, m in zip(partial, mask)]
        est = self.route(mask)
        out = est.predict(partial, mask, tta=tta, fourier=fourier)
        self.last_fourier_ = est.last_fourier_
        return out

def inpaint(partial, mask, model: "str | Inpainter | AutoInpainter" = "auto",
            tta: int = 1, fourier: str | None = None):
    """Complete a sparse scan with a pretrained model (``sn.inpaint``).

    Parameters
    ----------
    partial : ndarray (H, W) / (N, H, W), Micrograph, or a list of these
    mask : the same structure (bool or 0/1), True where the probe dwelt
    model : str, Inpainter or AutoInpainter
        ``"auto"`` (the coverage-aware choice of :class:`AutoInpainter`), ``"default"`` (the
        coverage-agnostic model alone), another installed model name, a path stem, or an estimator.
    tta : int
        Number of flipped/rotated views averaged (see :meth:`Inpainter.predict`).
    fourier : {"auto", "on", "off"}, optional
        Fourier-sparsity refinement for periodic specimens (see :meth:`Inpainter.predict`); default
        the model's config ("auto").

    Returns
    -------
    The input's kind (see :meth:`Inpainter.predict`).

    Raises
    ------
    InputError
        A missing or mismatched mask, a scan without samples, an unknown model.

    Examples
    --------
    >>> import numpy as np, scopenet as sn
    >>> truth = np.random.default_rng(0).random((64, 64))
    >>> mask = np.zeros((64, 64), bool); mask[::4] = True
    >>> sn.inpaint(np.where(mask, truth, 0), mask).shape
    (64, 64)
    """
    est = model if isinstance(model, (Inpainter, AutoInpainter)) else \
        cached(("inpaint", str(model)), lambda: Inpainter.pretrained(str(model)))
    return est.predict(partial, mask, tta=tta, fourier=fourier)
