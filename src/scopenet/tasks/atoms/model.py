"""Atom finding: ``find_atoms(img) -> pandas.DataFrame`` and the :class:`AtomFinder` estimator.

A small U-Net (trained on simulated HAADF-STEM lattices and SPM-like surfaces, :mod:`.train`) turns the
normalised image into a heatmap whose peaks are the atoms (AtomAI's recipe: a network for *detection*,
robust at low dose). The peaks are then refined on the image itself (:func:`~.postprocess.refine_gaussian`:
2-D Gaussians with a shared width and local backgrounds, fitted jointly with each column's neighbours
subtracted, Poisson-weighted for images of counts), which gives sub-pixel positions and their uncertainty:
the fit's Cramér-Rao bound (scaled by ``sigma_scale``) and the error a structured background adds
(``background_gain``, :func:`~.postprocess.structured_sd`) in quadrature, both calibrated on simulated images.
Columns are classed by their fitted intensity (k-means, :func:`~.postprocess.intensity_classes`), and the
table gets nearest-neighbour distances, a per-atom strain and an out-of-distribution flag.

The table (one row per atom) has the columns ``x``, ``y`` (px; x = column, y = row, pixel centres at
integers), ``x_m``, ``y_m`` (metres from pixel (0, 0); only for a calibrated Micrograph), ``sigma_px``
(1-sigma position uncertainty along each axis, px; its parts ``sigma_noise_px``, ``sigma_background_px`` and
``sigma_model_px``, the model mismatch), ``prior_weight`` (with ``lattice_prior=True``, the weight of the
measured position against the neighbours' prediction, :func:`~.postprocess.lattice_prior`; 1 otherwise),
``sigma_m`` (when calibrated), ``class``,
``confidence`` (the heatmap's peak, 0-1), ``intensity`` (fitted peak height above the local
background, image units), ``nn_px`` (distance to the nearest other atom, px) and, when the lattice is
regular enough, ``exx``, ``eyy``, ``exy``, ``rotation`` (:func:`~.postprocess.local_strain`). The
table's ``attrs`` hold ``ood`` (bool), ``ood_reasons``, ``median_confidence``, ``lattice_share``, ``spacing_px``,
``structured_background_sd`` and ``model``.

>>> import scopenet as sn                              # doctest: +SKIP
>>> atoms = sn.find_atoms(sn.read("haadf.dm4"))        # doctest: +SKIP
>>> atoms[["x", "y", "sigma_px", "class"]].head()      # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from ...image.micrograph import Micrograph
from ...image.tta import check_views, tta_average
from .._estimator import Estimator, cached, register
from . import postprocess as pp
from .config import AtomsConfig

DEFAULT_MODEL = "atoms-default"
COLUMNS = ["x", "y", "x_m", "y_m", "sigma_px", "class", "confidence"]

__all__ = ["AtomFinder", "find_atoms", "COLUMNS", "DEFAULT_MODEL"]


def is_topograph(x: Any) -> bool:
    """Whether ``x`` is a Micrograph of heights from a scanning probe (STM/AFM modality, a length unit: m with
    any prefix, or Å; a current in A is not one)."""
    from ...image.units import split_unit
    from ...report import SPM_MODALITIES

    return isinstance(x, Micrograph) and (x.modality or "").upper() in SPM_MODALITIES \
        and (split_unit(x.signal_unit) or ("",))[0] == "m"


def _frame(x: Any, what: str = "image", level: bool = False, partial: bool = False):
    """One 2-D finite image, its pixel size in metres (None when uncalibrated or anisotropic) and the row of the
    input its first row is: ``(a, px, y0)``; with ``level`` a scanning-probe topograph (:func:`is_topograph`) is
    levelled first (``sn.flatten``, method auto).

    With ``partial``, an incomplete scan (rows of NaN before or after one block of complete rows, as an aborted
    SPM or STEM scan leaves; a partly scanned row counts as missing) is cut to its complete rows (``y0`` the first
    of them; 0 otherwise). Non-finite pixels anywhere else are an error."""
    px = None
    topo = False
    if isinstance(x, Micrograph):
        if x.ndim != 2:
            raise InputError(f"{what}: a Micrograph of shape {x.shape} is not one 2-D image")
        topo = level and is_topograph(x)
        sy, sx = x.pixel_size_m()
        if sy is not None and sx is not None and abs(sy - sx) <= 1e-3 * max(sy, sx):
            px = float(sx)
        x = x.data
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise InputError(f"{what} must be a real numeric image, got dtype {a.dtype}")
    if a.ndim != 2:
        raise InputError(f"{what} must be a 2-D image, got shape {a.shape}")
    if min(a.shape) < 8:
        raise InputError(f"{what} is too small ({a.shape}); atom finding needs at least 8x8 px")
    a = a.astype(np.float32)
    y0 = 0
    if not np.isfinite(a).all():
        rows = np.flatnonzero(np.isfinite(a).all(1))
        if not (partial and len(rows) >= 8 and np.isfinite(a[rows[0]:rows[-1] + 1]).all()):
            raise InputError(f"{what} contains NaN or inf pixels" + (
                " (other than whole missing rows before or after the scanned ones)" if partial else ""))
        y0 = int(rows[0])
        a = a[y0:rows[-1] + 1]
    if topo:
        from ...image.spm import flatten

        a = np.asarray(flatten(a, method="auto"), np.float32)
    return a, px, y0


def _frames(x: Any, what: str = "image", level: bool = False, partial: bool = False) -> tuple[list[tuple], bool]:
    """Frames of an input (:func:`_frame`'s tuples) and whether it was a single image."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise InputError(f"{what}: empty list")
        return [f for xi in x for f in _frames(xi, what, level, partial)[0]], False
    if x is None or isinstance(x, (str, bytes)):
        raise InputError(f"{what} must be an image array or a Micrograph, got {type(x).__name__}")
    if isinstance(x, Micrograph):
        if x.ndim == 3:
            return [_frame(x[i], what, level, partial) for i in range(len(x))], False
        return [_frame(x, what, level, partial)], True
    a = np.asarray(x)
    if a.ndim == 3:
        return [_frame(f, what, partial=partial) for f in a], False
    return [_frame(a, what, partial=partial)], True


@register
class AtomFinder(Estimator):
    """Find atomic columns (or surface atoms) in atomic-resolution images: a U-Net heatmap for detection,
    joint 2-D Gaussian fits on the image for sub-pixel positions and their uncertainty (the estimator contract
    of :mod:`scopenet.tasks._estimator`).

    Parameters
    ----------
    config : AtomsConfig or dict, optional
        Network, peak threshold, refinement, classes, tiling; keyword overrides too.
    device : str, optional
        Where the network runs (:mod:`scopenet.nn.device`).

    Attributes
    ----------
    net_ : torch.nn.Module
        The heatmap network.
    card_ : ModelCard
    history_ : list of float
        Per-step losses of the last :meth:`fit`.
    """

    task = "atoms"
    config_class = AtomsConfig
    aliases = {"default": DEFAULT_MODEL}
    image_to_image = False

    def build_net(self):
        from ...nn import build_architecture

        return build_architecture(self.config.arch, self.config.arch_config).eval()

    # ------------------------------------------------------------------------------- network
    def _net_batch(self, x: np.ndarray) -> np.ndarray:
        """Heatmap probabilities of a normalised batch ``(B, H, W)`` (on a CPU in channels-last layout: the
        small convolutions run about 1.5x faster)."""
        import torch

        from ...nn.device import place

        dev = place(self.net_, self.device)
        xt = torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32)[:, None])).to(dev)
        if dev.type == "cpu":
            self.net_.to(memory_format=torch.channels_last)
            xt = xt.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = self.net_(xt).float().cpu().numpy()[:, 0]
        return 1.0 / (1.0 + np.exp(-np.clip(y, -30, 30)))

    def heatmap(self, img: Any, *, tta: int = 1) -> np.ndarray:
        """The network's heatmap (0-1, peaks at atoms) of one 2-D image, tiled when large; the image is
        mirrored by ``config.pad`` px on every side first (border columns), the heatmap cropped back.

        Returns
        -------
        ndarray, float32, shape (H, W)
        """
        views = check_views(tta)
        a, _, _ = _frame(img)
        return self._heatmap_binned(a, views, self.binning(a))

    def _heatmap_binned(self, a: np.ndarray, views, binning: int) -> np.ndarray:
        """The heatmap of ``a``, the network run on it binned ``binning`` x ``binning`` (1 or 2)."""
        self._check_fitted()
        self.net_.eval()
        if binning > 1:
            return _unbin(self._heatmap(_bin2(a), views), a.shape)
        return self._heatmap(a, views)

    def binning(self, a: np.ndarray) -> int:
        """2 when the network should see ``a`` binned 2 x 2 (its repeat distance above
        ``config.bin_above_px``), else 1."""
        above = self.config.bin_above_px
        if above is None or min(a.shape) < 32:
            return 1
        sp = pp.estimate_spacing(a)
        return 2 if np.isfinite(sp) and sp > above else 1

    def _heatmap(self, a: np.ndarray, views) -> np.ndarray:
        """The network's heatmap of ``a`` as it is (mirrored margin, tiling, flipped views)."""
        cfg = self.config
        u = pp.normalise(a)

        def run(z):
            if a.size <= cfg.max_direct_pixels:  # the image's own size decides (not the mirrored margin)
                return self._net_batch(z[None])[0]
            from ...image.tiling import predict_tiled

            return predict_tiled(z, self._net_batch, tile=cfg.tile, overlap=cfg.overlap, batch_size=1,
                                 batched=True, progress=self.progress, operation=None)

        pad = min(cfg.pad, min(u.shape) - 1)  # reflect needs pad < side
        if pad > 0:
            u = np.pad(u, pad, mode="reflect")
        heat = np.asarray(tta_average(run, u, views=views), np.float32)
        return np.ascontiguousarray(heat[pad:-pad, pad:-pad]) if pad > 0 else heat

    def _turned(self, a: np.ndarray) -> np.ndarray:
        """The image turned over (its maximum minus it) with ``config.dark_columns``, so dark columns are peaks."""
        return np.float32(a.max()) - a if self.config.dark_columns else a

    def predict_proba(self, x: Any, *, tta: int = 1) -> Any:
        """Heatmaps of an image, a stack or a list: ``(N, H, W)`` (a list when the shapes differ)."""
        views = check_views(tta)
        frames, _ = _frames(x, level=self.config.level_topographs)
        maps = [self.heatmap(self._turned(f), tta=views) for f, _, _ in frames]
        return np.stack(maps) if len({m.shape for m in maps}) == 1 else maps

    def predict_mask(self, x: Any, *, tta: int = 1, threshold: float | None = None) -> Any:
        """Binary masks (heatmap above ``threshold``, default ``config.threshold``), like :meth:`predict_proba`."""
        t = self.config.threshold if threshold is None else float(threshold)
        p = self.predict_proba(x, tta=tta)
        return [m > t for m in p] if isinstance(p, list) else p > t

    # ------------------------------------------------------------------------------- table
    def peaks(self, heat: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Peaks of a heatmap: ``(row, col)`` px ``(k, 2)``, their values, and the distance (px) below which
        refined atoms are merged. With ``config.adaptive_distance`` peaks are at least 0.35 x the heatmap's
        own repeat distance apart (one peak per column, however large) and atoms closer than 0.3 x it merge.
        Peaks between ``config.faint_threshold`` and the threshold are kept where the lattice of the confident
        peaks repeats them (:func:`~scopenet.tasks.atoms.postprocess.lattice_supported`)."""
        cfg = self.config
        t = cfg.threshold if threshold is None else float(threshold)
        sp = pp.estimate_spacing(heat) if cfg.adaptive_distance else float("nan")
        md = max(cfg.min_distance, int(0.35 * sp)) if np.isfinite(sp) else cfg.min_distance
        faint = cfg.faint_threshold
        if faint is not None and faint < t:  # fainter peaks only where the confident peaks' lattice repeats them
            pk, conf = pp.heatmap_peaks(heat, faint, md)
            keep = pp.lattice_supported(pk, conf, t, min_partners=cfg.faint_partners, reach=cfg.faint_reach)
            pk, conf = pk[keep], conf[keep]
        else:
            pk, conf = pp.heatmap_peaks(heat, t, md)
        return pk, conf, max(1.5, 0.3 * sp) if np.isfinite(sp) else 1.5

    def locate(self, img: Any, *, tta: int = 1, pixel_size_m: float | None = None, heat: np.ndarray | None = None,
               row_offset: int = 0):
        """The atom table of one 2-D image (see the module docstring for its columns). An incomplete scan (whole
        rows of NaN before or after the scanned ones) is searched in its complete rows, and ``y`` counts from the
        image's first row (``attrs["rows_used"]``); ``row_offset`` is added to ``y`` as well."""
        import pandas as pd

        a, px, y0 = _frame(img, level=self.config.level_topographs, partial=True)
        if heat is not None and np.shape(heat) != a.shape:
            raise InputError(f"heat has shape {np.shape(heat)}, the image's scanned rows {a.shape}")
        y0 += int(row_offset)
        px = pixel_size_m if pixel_size_m is not None else px
        cfg = self.config
        a = self._turned(a)
        binning = self.binning(a)
        if heat is None:
            heat = self._heatmap_binned(a, check_views(tta), binning)
        peaks, conf, merge_px = self.peaks(heat)
        res = pp.atom_table(a, heat, peaks, conf, cfg, pixel_size_m=px, merge_px=merge_px)
        rc = cfg.residual_contrast
        if rc and cfg.refine == "gaussian" and len(res["columns"]["x"]) >= 8:  # columns the heatmap missed
            c = res["columns"]
            extra = pp.residual_columns(a, np.stack([c["y"], c["x"]], 1), c["intensity"], c["width_px"], contrast=rc,
                                        significance=cfg.residual_significance,
                                        min_distance=cfg.residual_min_distance,
                                        min_widths=cfg.residual_min_widths)
            added = len(extra) > 0 and len(extra) >= cfg.residual_min_share * len(c["x"])
            if added:
                ij = np.clip(np.rint(extra).astype(int), 0, np.array(a.shape) - 1)
                res = pp.atom_table(a, heat, np.concatenate([peaks, ij]),
                                    np.concatenate([conf, heat[ij[:, 0], ij[:, 1]]]), cfg, pixel_size_m=px,
                                    merge_px=merge_px)
            res["residual_columns"] = int(len(extra)) if added else 0
        df = pd.DataFrame(res.pop("columns"))
        if y0:
            df["y"] += y0
            if px:
                df["y_m"] = df["y"] * px
        df.attrs.update(res)
        df.attrs["rows_used"] = [y0, y0 + a.shape[0]]
        df.attrs["heatmap_binning"] = binning
        df.attrs["model"] = self.name
        return df

    def predict(self, x: Any, *, tta: int = 1, **kw: Any):
        """Atom tables: one ``pandas.DataFrame`` for a 2-D image or Micrograph, a list for a stack or a list.

        Parameters
        ----------
        x : ndarray (H, W) or (N, H, W), Micrograph, or a list of these
            Any size (tiled above ``config.max_direct_pixels``); any intensity units. A calibrated
            Micrograph adds ``x_m``, ``y_m`` and ``sigma_m``.
        tta : int
            Number of flipped/rotated views averaged in the heatmap (1-8).

        Returns
        -------
        DataFrame or list of DataFrame
        """
        views = check_views(tta)
        frames, single = _frames(x, level=self.config.level_topographs, partial=True)
        out = [self.locate(f, tta=views, pixel_size_m=p, row_offset=y0, **kw) for f, p, y0 in frames]
        return out[0] if single else out

    # ------------------------------------------------------------------------------- training
    def fit(self, images: Any = None, coordinates: Any = None, masks: Any = None, *, steps: int = 200,
            batch_size: int = 8, patch: int = 64, lr: float = 1e-3, seed: int = 0,
            time_budget_s: float | None = None, spacing_px: float | None = None, callback=None) -> "AtomFinder":
        """Train (or fine-tune) the heatmap network.

        Parameters
        ----------
        images : sequence of 2-D arrays / Micrographs, or an (N, H, W) array; None trains on simulated
            images (the shipped recipe).
        coordinates : sequence of (k, 2) arrays or DataFrames, optional
            Atom positions per image: arrays are ``(x, y)`` px (x = column), DataFrames need ``x`` and ``y``.
        masks : sequence of 2-D arrays, optional
            Instead of coordinates: label images, each connected non-zero region one atom (its centroid).
        steps, batch_size, patch, lr, seed, time_budget_s
            The run (Adam, cosine decay, BCE on the heatmap).
        spacing_px : float, optional
            Atom spacing for the heatmap width (default: the median nearest-neighbour distance).
        callback : callable, optional
            ``callback(step, loss, net)`` after each step.

        Returns
        -------
        self (``history_`` holds the per-step losses)
        """
        import torch

        from ...nn.device import resolve_device
        from ...simulate.em.atoms import heat_sigma, heatmap
        from .config import AtomsTrainConfig
        from .train import pool_batch_maker, train

        from pydantic import ValidationError

        try:
            cfg = AtomsTrainConfig(workdir=None, max_steps=steps, batch_size=batch_size, patch=patch, lr=lr,
                                   seed=seed, time_budget_s=time_budget_s, threads=torch.get_num_threads(),
                                   checkpoint_every_n_steps=None, lr_final_fraction=0.1)
        except ValidationError as exc:
            raise InputError(f"invalid fit settings: {exc}") from exc
        make = None
        if images is not None:
            frames, _ = _frames(images, "training image")
            imgs = [f for f, _, _ in frames]
            if coordinates is None and masks is None:
                raise InputError("fit needs coordinates or masks for the training images")
            if coordinates is not None and masks is not None:
                raise InputError("give coordinates or masks, not both")
            labels = coordinates if coordinates is not None else masks
            if isinstance(labels, np.ndarray) and labels.ndim == 3 and masks is not None:
                labels = list(labels)
            if not isinstance(labels, (list, tuple)) or len(labels) != len(imgs):
                raise InputError(f"fit needs one coordinate table or mask per image ({len(imgs)} images)")
            if min(min(i.shape) for i in imgs) < patch:
                raise InputError(f"training images must be at least {patch} px (patch); use a smaller patch")
            shapes = {i.shape for i in imgs}
            if len(shapes) != 1:
                side = min(min(i.shape) for i in imgs)
                imgs = [i[:side, :side] for i in imgs]
            rcs = [pp.coordinates_rc(lab, im.shape, masks is not None) for lab, im in zip(labels, imgs)]
            sp = spacing_px if spacing_px is not None else pp.median_spacing(rcs)
            xs = np.stack([pp.normalise(im) for im in imgs])
            ys = np.stack([heatmap(xs.shape[1:], rc[(rc[:, 0] < xs.shape[1]) & (rc[:, 1] < xs.shape[2])],
                                   heat_sigma(sp)) for rc in rcs])
            make = pool_batch_maker(xs, ys, batch_size, patch)
        self.net_.train()
        self.history_ = train(self.net_, cfg, make, device=str(resolve_device(self.device)), callback=callback)
        self.net_.eval()
        return self


def _bin2(a: np.ndarray) -> np.ndarray:
    """``a`` binned 2 x 2 (means; an odd last row or column left out)."""
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    return np.asarray(a, np.float64)[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))


def _unbin(heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A heatmap of the 2 x 2-binned image interpolated (bilinear) back to ``shape``: full-size pixel ``y``
    lies at ``(y - 0.5) / 2`` of the binned grid."""
    from scipy import ndimage as ndi

    yy = (np.arange(shape[0]) - 0.5) / 2.0
    xx = (np.arange(shape[1]) - 0.5) / 2.0
    grid = np.meshgrid(yy, xx, indexing="ij")
    return ndi.map_coordinates(np.asarray(heat, np.float32), grid, order=1, mode="nearest").astype(np.float32)


def find_atoms(img: Any, model: str | AtomFinder = DEFAULT_MODEL, *, tta: int = 1, **settings: Any):
    """Find atoms in an atomic-resolution image with a pretrained model (``sn.find_atoms``).

    Parameters
    ----------
    img : ndarray (H, W) / (N, H, W), Micrograph, or a list of these
        HAADF/ADF-STEM (bright columns) or SPM (bright atoms) images of any size and intensity units.
    model : str or AtomFinder
        Installed model name (``"atoms-default"``), a path stem, or an estimator.
    tta : int
        Views averaged in the heatmap (1-8).
    **settings
        :class:`~scopenet.tasks.atoms.config.AtomsConfig` fields for this call (``threshold``,
        ``refine``, ``n_classes``...).

    Returns
    -------
    pandas.DataFrame (a list of them for a stack or a list)
        Columns ``x``, ``y`` (px; x = column, y = row, pixel centres at integers), ``x_m``, ``y_m``
        (metres, NaN when uncalibrated), ``sigma_px``, ``class``, ``confidence`` and more (see
        :mod:`scopenet.tasks.atoms.model`); ``attrs["ood"]`` flags an image unlike the training data.

    Raises
    ------
    InputError
        A non-finite, non-numeric or too small image; an unknown setting.
    """
    est = model if isinstance(model, AtomFinder) else \
        cached(("atoms", str(model)), lambda: AtomFinder.pretrained(str(model)))
    if settings:
        est2 = AtomFinder.__new__(AtomFinder)
        est2.__dict__.update(est.__dict__)
        est2.config = AtomFinder._make_config(est.config.model_dump(), settings)  # unknown names are errors
        est = est2
    return est.predict(img, tta=tta)
