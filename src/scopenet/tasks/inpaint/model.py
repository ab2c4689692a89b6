"""The :class:`Inpainter` estimator and :func:`inpaint`: complete a sparse scan with a trained network.

>>> import scopenet as sn                                  # doctest: +SKIP
>>> full = sn.inpaint(partial, mask)                       # default pretrained model  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from ...image.micrograph import Micrograph
from ...nn import build_architecture
from ...nn import partial_stem  # noqa: F401  (registers the inpainting architectures)
from ...simulate.scans import nn_infill
from ...training.data import dihedral_tta
from .baselines import check_scan, is_sublattice, sparse_fourier
from .config import InpaintConfig, InpaintTrainConfig

DEFAULT_MODEL = "inpaint-default"


def _scale(partial: np.ndarray, mask: np.ndarray, mode: str) -> tuple[float, float]:
    if mode == "none":
        return 0.0, 1.0
    v = partial[mask]
    lo, hi = float(v.min()), float(v.max())
    return lo, (hi - lo) if hi > lo else 1.0


class Inpainter:
    """Complete partial scans: ``[NN infill, mask] -> network -> full image``.

    Parameters
    ----------
    net : torch.nn.Module, optional
        A network mapping ``(B, 2, H, W)`` to ``(B, 1, H, W)``; default an untrained
        :class:`~scopenet.nn.partial_stem.InpaintUNet` (which returns the NN infill).
    config : InpaintConfig, optional
        Inference settings (tiling, intensity normalisation).
    card : dict, optional
        Model card (set by :meth:`pretrained` / :meth:`load`).

    Attributes
    ----------
    device : str or None
        Where the network runs (:mod:`scopenet.nn.device`): None = ``$SCOPENET_DEVICE`` or "auto"
        (a GPU when torch sees one).
    """

    device: str | None = None
    last_fourier_: bool = False  #: whether the last predict() refined by Fourier sparsity

    def __init__(self, net: torch.nn.Module | None = None, config: InpaintConfig | None = None,
                 card: dict | None = None):
        self.net = net if net is not None else build_architecture("inpaint-unet", {})
        self.config = config or InpaintConfig()
        self.card = card or getattr(self.net, "scopenet_card", {}) or {}

    # ------------------------------------------------------------------ construction / files
    @classmethod
    def pretrained(cls, name: str = "default", config: InpaintConfig | None = None) -> "Inpainter":
        """Load a shipped or cached model by name (``"default"`` = ``inpaint-default``) or path stem."""
        from ...training.packaging import load_model

        key = DEFAULT_MODEL if name == "default" else name
        if not key.startswith("inpaint-") and "/" not in key and "\\" not in key and not Path(key).exists():
            key = f"inpaint-{key}"
        net = load_model(key)
        return cls(net, config, net.scopenet_card)

    @classmethod
    def load(cls, path_stem: str | Path, config: InpaintConfig | None = None) -> "Inpainter":
        """Load a model saved with :meth:`save` (``<stem>.safetensors`` + ``<stem>.json``)."""
        from ...training.packaging import load_model

        net = load_model(Path(path_stem))
        return cls(net, config, net.scopenet_card)

    def save(self, path_stem: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
        """Write weights + model card (never overwrites without ``overwrite=True``)."""
        from ...training.packaging import save_model

        card = {k: v for k, v in self.card.items() if k not in ("architecture", "n_parameters", "card_format")}
        card.setdefault("task", "inpaint")
        card.setdefault("input_shape", [1, 2, 64, 64])  # [infill, mask] channels
        return save_model(path_stem, self.net, card, overwrite=overwrite)

    # ------------------------------------------------------------------------------ training
    def fit(self, images, config: InpaintTrainConfig | dict | None = None, **overrides: Any) -> "Inpainter":
        """Train (or fine-tune) the network on full images, masked on the fly.

        Parameters
        ----------
        images : sequence of 2-D arrays (or Micrographs), intensities scaled to [0, 1] per image
        config : InpaintTrainConfig or dict, optional
            Training settings; ``workdir``, ``time_budget_s``, ``max_steps`` etc. (keyword overrides too).
        """
        from .train import train_network

        cfg = config if isinstance(config, InpaintTrainConfig) else InpaintTrainConfig(**(config or {}))
        cfg = cfg.model_copy(update=overrides)
        pool = []
        for im in images:
            a = np.asarray(im.data if isinstance(im, Micrograph) else im, np.float32)
            if a.ndim != 2 or min(a.shape) < cfg.crop:
                raise InputError(f"fit needs 2-D images of at least {cfg.crop} px, got shape {a.shape}")
            lo, hi = float(a.min()), float(a.max())
            pool.append((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a))
        if not pool:
            raise InputError("fit needs at least one image")
        if self.device is not None and "accelerator" not in overrides:  # the estimator's device, unless told otherwise
            from ...nn.device import resolve_device

            dev = resolve_device(self.device)
            cfg = cfg.model_copy(update={"accelerator": {"cuda": "gpu"}.get(dev.type, dev.type)})
        module = train_network(self.net, pool, cfg, verbose=False, mask_size=max(cfg.crop, 128))
        self.net.cpu()
        self.net.eval()
        self.history_ = module.losses
        return self

    # ---------------------------------------------------------------------------- prediction
    def _complete(self, x: np.ndarray) -> np.ndarray:
        from ...nn.device import run_numpy

        h, w = x.shape[-2:]
        k = int(getattr(self.net, "size_multiple", 1))
        ph, pw = -h % k, -w % k
        if ph or pw:  # e.g. Ede's generator needs sides divisible by 8: pad by reflection (edge for tiny inputs)
            mode = "reflect" if min(h, w) > max(ph, pw) else "edge"
            x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)
        return run_numpy(self.net, x, self.device)[:, 0, :h, :w]

    def predict(self, partial, mask, tta: bool = False, fourier: str | None = None) -> np.ndarray | Micrograph:
        """Complete one partial scan.

        Parameters
        ----------
        partial : ndarray (H, W) or Micrograph
            Values at scanned pixels (anything elsewhere).
        mask : ndarray (H, W) or Micrograph
            Non-zero / True where the probe dwelt.
        tta : bool
            Average the completions of the 8 flips/rotations of the scan (8x the time; about 2% lower
            RMS on the held-out STEM benchmark, ``scopenet bench inpaint --tta``).
        fourier : {"auto", "on", "off"}, optional
            Refine the network's completion by sparsity in Fourier space
            (:func:`~scopenet.tasks.inpaint.baselines.sparse_fourier`), which recovers crystal lattices
            between the scanned lines. "auto" (the config's default) first withholds the samples of 1/8
            of the image's squares (as wide as the scan's large gaps), completes the rest both ways and
            refines only if that predicts the withheld samples better (:func:`fourier_helps`);
            :attr:`last_fourier_` says what was done. About 0.35 s more per 512x512 on the CPU.

        Returns
        -------
        ndarray float32 (H, W), in the intensity units of ``partial``; a Micrograph (calibration kept,
        provenance entry added) when ``partial`` is one.
        """
        img = partial if isinstance(partial, Micrograph) else None
        arr = img.data if img is not None else partial
        marr = mask.data if isinstance(mask, Micrograph) else mask
        p, m = check_scan(arr, marr)
        lo, span = _scale(p, m, self.config.normalise)
        pn = np.where(m, (p - lo) / span, 0).astype(np.float32)
        self.net.eval()
        if tta:  # each flipped/rotated scan goes the whole way (its own NN infill), then is mapped back
            out = dihedral_tta(lambda pm: self._normalised(pm[0], pm[1] > 0), np.stack([pn, m.astype(np.float32)]))
        else:
            out = self._normalised(pn, m)
        mode = self.config.fourier if fourier is None else fourier
        if mode not in ("auto", "on", "off"):
            raise InputError(f"fourier must be 'auto', 'on' or 'off', got {mode!r}")
        self.last_fourier_ = mode == "on" or (mode == "auto" and fourier_helps(self._normalised, pn, m))
        if self.last_fourier_:
            out = sparse_fourier(pn, m, start=out)
        out = out * span + lo
        if self.config.keep_scanned:
            out[m] = p[m]
        out = out.astype(np.float32)
        if img is None:
            return out
        return img.with_data(out, operation="inpaint", model=self.card.get("name", "untrained"),
                             coverage=float(m.mean()), tta=bool(tta), fourier=bool(self.last_fourier_))

    def _normalised(self, pn: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Completion of a normalised partial scan ``pn`` (zeros off the path) with mask ``m``."""
        x = np.stack([nn_infill(pn, m), m.astype(np.float32)])
        t, ov = self.config.tile, self.config.overlap
        return self._complete(x[None])[0] if max(x.shape[-2:]) <= t else self._tiled(x, t, ov)

    def _tiled(self, x: np.ndarray, tile: int, overlap: int) -> np.ndarray:
        from ...image.tiling import blend_window, iter_tiles

        h, w = x.shape[-2:]
        out = np.zeros((h, w))
        wsum = np.zeros((h, w))
        for s in iter_tiles((h, w), tile, overlap):
            ys, xs = s.image_slices((h, w))
            sub = x[:, ys, xs]
            if not sub[1].any():
                pred = sub[0]
            else:
                pred = self._complete(sub[None])[0]
            win = np.outer(blend_window(sub.shape[1], min(overlap, sub.shape[1] - 1)),
                           blend_window(sub.shape[2], min(overlap, sub.shape[2] - 1)))
            out[ys, xs] += pred * win
            wsum[ys, xs] += win
        return (out / wsum).astype(np.float32)


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
    makes every frequency alias others (there the refinement made completions 1.3-2.7x worse in
    ``benchmarks/results/inpaint.md``).
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


class AutoInpainter:
    """Coverage-aware completion: each scan goes to a specialist trained for its coverage, if one is
    installed, else to the coverage-agnostic default model.

    A specialist's card gives the ``coverage_range`` ``[lo, hi]`` (fraction of pixels probed) it was
    trained on; a scan whose coverage ``mask.mean()`` lies inside it goes there (the first match in
    ``specialists`` order). The shipped ``inpaint-dense`` covers 1/25-1/8, where it is about 3 % better
    than the default at 1/17.9 and no better below 1/27 (``benchmarks/results/inpaint.md``).

    Parameters
    ----------
    default : Inpainter
    specialists : sequence of Inpainter
    """

    last_fourier_: bool = False  #: whether the last predict() refined by Fourier sparsity

    def __init__(self, default: Inpainter, specialists=()):
        self.default = default
        self.specialists = list(specialists)
        for sp in self.specialists:
            rng = sp.card.get("coverage_range")
            if not (isinstance(rng, (list, tuple)) and len(rng) == 2 and 0 < rng[0] < rng[1] <= 1):
                raise InputError(f"specialist {sp.card.get('name', '?')!r} has no valid coverage_range in its card "
                                 f"(got {rng!r})")
        self.card = {"name": "inpaint-auto", "task": "inpaint",
                     "default_model": default.card.get("name", "untrained"),
                     "specialists": {sp.card.get("name", "?"): list(sp.card["coverage_range"]) for sp in self.specialists}}

    @property
    def device(self) -> str | None:
        """Where the networks run (:mod:`scopenet.nn.device`); setting it sets every member's."""
        return self.default.device

    @device.setter
    def device(self, value: str | None) -> None:
        for member in (self.default, *self.specialists):
            member.device = value

    @classmethod
    def pretrained(cls, config: InpaintConfig | None = None) -> "AutoInpainter":
        """``inpaint-default`` plus whichever of :data:`SPECIALISTS` are installed."""
        from ...weights import find_model

        found = []
        for name in SPECIALISTS:
            try:
                find_model(name)
            except InputError:
                continue
            found.append(Inpainter.pretrained(name, config))
        return cls(Inpainter.pretrained("default", config), found)

    def route(self, mask) -> Inpainter:
        """The model that completes a scan with this mask."""
        m = np.asarray(mask.data if isinstance(mask, Micrograph) else mask)
        c = float((m != 0).mean()) if m.size else 0.0
        for sp in self.specialists:
            lo, hi = sp.card["coverage_range"]
            if lo <= c <= hi:
                return sp
        return self.default

    def predict(self, partial, mask, tta: bool = False, fourier: str | None = None) -> np.ndarray | Micrograph:
        """Complete one partial scan with the routed model (see :meth:`Inpainter.predict`)."""
        est = self.route(mask)
        out = est.predict(partial, mask, tta=tta, fourier=fourier)
        self.last_fourier_ = est.last_fourier_
        return out


_CACHE: dict[str, "Inpainter | AutoInpainter"] = {}


def inpaint(partial, mask, model: "str | Inpainter | AutoInpainter" = "auto",
            tta: bool = False, fourier: str | None = None) -> np.ndarray | Micrograph:
    """Complete a sparse scan with a pretrained model (``sn.inpaint``).

    Parameters
    ----------
    partial : ndarray (H, W) or Micrograph
    mask : ndarray (H, W) (bool or 0/1) or Micrograph
    model : str, Inpainter or AutoInpainter
        ``"auto"`` (the coverage-aware choice of :class:`AutoInpainter`), ``"default"`` (the
        coverage-agnostic model alone), another installed model name, a path stem, or an estimator.
    tta : bool
        Average over the 8 flips/rotations (see :meth:`Inpainter.predict`).
    fourier : {"auto", "on", "off"}, optional
        Fourier-sparsity refinement for periodic specimens (see :meth:`Inpainter.predict`); default
        the model's config ("auto").

    Returns
    -------
    ndarray or Micrograph (see :meth:`Inpainter.predict`)
    """
    if isinstance(model, (Inpainter, AutoInpainter)):
        est = model
    else:
        if model not in _CACHE:
            _CACHE[model] = AutoInpainter.pretrained() if model == "auto" else Inpainter.pretrained(model)
        est = _CACHE[model]
    return est.predict(partial, mask, tta=tta, fourier=fourier)
