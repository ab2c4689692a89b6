"""The :class:`Denoiser` estimator and :func:`denoise`, the one-call denoiser (``sn.denoise``).

>>> import numpy as np
>>> den = Denoiser(arch_config={"widths": [8, 16]})          # untrained, for illustration
>>> den.predict(np.random.rand(40, 50)).shape
(40, 50)
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from ...errors import InputError
from ...image.micrograph import Micrograph
from ...image.scaling import unit_scale
from ...image.tta import check_views, tta_average
from .._estimator import Estimator, Router, cached, map_images, register
from .config import DenoiseConfig, FitSettings
from .n2v import n2v_mask  # noqa: F401  (public here: moved beside the training that uses it)

__all__ = ["Denoiser", "AutoDenoiser", "denoise", "n2v_mask", "estimate_dose", "MODEL_ALIASES"]

#: short names accepted by :meth:`Denoiser.pretrained` and :func:`denoise` (``"auto"`` is the
#: dose-routed pair, :class:`AutoDenoiser`)
MODEL_ALIASES = {"default": "denoise-default", "high-dose": "denoise-high-dose"}  # = Denoiser.aliases


# --------------------------------------------------------------------------------------- helpers
def _check_frame(frame: np.ndarray) -> np.ndarray:
    if min(frame.shape) < 2:
        raise InputError(f"denoising needs images of at least 2x2 px, got shape {frame.shape}")
    if not np.isfinite(frame).any():
        raise InputError("every pixel is NaN or infinite")
    return frame


def _unit(frame: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Frame scaled to [0, 1] (non-finite pixels set to the median first), and its (lo, hi)."""
    u, s = unit_scale(frame)
    return u, s.lo, s.lo + s.span


def _denoise_in_units(unit_fn, frame, normalise: str, percentiles, tta: int) -> np.ndarray:
    """``unit_fn`` (a [0, 1] frame -> its denoised [0, 1] frame) applied to one 2-D frame in its own units:
    scaled by min and max, or by robust percentiles (clipped to [0, 1]) when ``normalise == "robust"``,
    averaged over ``tta`` views, scaled back; NaN where the input is not finite."""
    fr = _check_frame(np.asarray(frame))
    if normalise == "robust":
        from ...image.scaling import robust_unit_scale

        u, s = robust_unit_scale(fr, tuple(percentiles))
        lo, hi = s.lo, s.lo + s.span
    else:
        u, lo, hi = _unit(fr)
    y = tta_average(unit_fn, u, views=tta)
    y = y.astype(np.float64) * (hi - lo) + lo
    y[~np.isfinite(fr)] = np.nan
    return y.astype(np.float32)


def _denoise_images(est, img, tta: int, dose: float | None, **provenance):
    """``est.denoise_frame`` over an image, stack, Micrograph or list, each frame guarded by the known
    ``dose`` (:func:`_guarded`); ``provenance`` adds entries after ``model`` and ``tta``."""
    views = check_views(tta)
    est.net_.eval()
    weights: list[float] = []

    def one(fr):
        return _guarded(fr, est.denoise_frame(fr, views), dose, weights)

    return map_images(one, img, operation="denoise", what="denoising input",
                      provenance=lambda: {"model": est.card_.name if est.card_.name != "untrained"
                                          else est.config.arch, "tta": views, **provenance,
                                          **_guard_info(dose, weights)})


def estimate_dose(noisy, denoised) -> dict[str, float]:
    """Estimate the electron dose of a shot-noise-limited image from its denoised version.

    For Poisson counts ``c`` shown min-max scaled, ``n = (c - c_min) / R``, the noise variance at a
    scaled level ``m`` is ``(m R + c_min) / R^2``: linear in ``m`` with slope ``1 / R``. A straight
    line fitted to the squared residual ``(noisy - denoised)^2`` against ``denoised`` (both scaled to
    the noisy image's [0, 1]) gives ``R``, the counts spanned by the image.

    Returns
    -------
    dict
        ``counts_range`` (R, counts from darkest to brightest pixel), ``mean_counts`` (about
        ``R * mean(scaled image) + c_min``), ``fit_slope``, ``fit_intercept``. NaN when the fit
        has a non-positive slope (noise not signal-dependent, e.g. not shot-noise limited).
    """
    n, lo, hi = _unit(np.asarray(noisy))
    d = (np.asarray(denoised, np.float64) - lo) / (hi - lo if hi > lo else 1.0)
    if n.shape != d.shape:
        raise InputError(f"noisy and denoised shapes differ: {n.shape} vs {d.shape}")
    r2 = (n - d) ** 2
    bins = np.linspace(0, 1, 21)
    k = np.clip(np.digitize(d.ravel(), bins) - 1, 0, 19)
    cnt = np.bincount(k, minlength=20)
    ok = cnt > 50
    xm = np.bincount(k, d.ravel(), 20)[ok] / cnt[ok]
    ym = np.bincount(k, r2.ravel(), 20)[ok] / cnt[ok]
    if ok.sum() < 2:
        slope, icpt = float("nan"), float("nan")
    else:
        slope, icpt = (float(v) for v in np.polyfit(xm, ym, 1, w=np.sqrt(cnt[ok])))
    if not slope > 0:
        return {"counts_range": float("nan"), "mean_counts": float("nan"), "fit_slope": slope,
                "fit_intercept": icpt}
    R = 1.0 / slope
    cmin = max(icpt * R * R, 0.0)
    return {"counts_range": R, "mean_counts": float(R * d.mean() + cmin), "fit_slope": slope, "fit_intercept": icpt}


def _guarded(frame, denoised: np.ndarray, dose: float | None, weights: list[float]) -> np.ndarray:
    """``denoised``, or with a known ``dose`` its blend toward ``frame`` (weight appended to ``weights``)."""
    if dose is None:
        return denoised
    from .dose import shot_noise_guard

    out, w = shot_noise_guard(frame, denoised, dose)
    weights.append(w)
    return out


def _guard_info(dose: float | None, weights: list[float]) -> dict:
    return {} if dose is None else {"dose": float(dose), "guard_weight": [round(w, 4) for w in weights]}


# ------------------------------------------------------------------------------------- estimator
@register
class Denoiser(Estimator):
    """Image denoiser: a network plus how to apply and fine-tune it (the estimator contract of
    :mod:`scopenet.tasks._estimator`).

    Parameters
    ----------
    config : DenoiseConfig or dict, optional
        Network (``arch``, ``arch_config``) and tiling; keyword overrides (``arch_config=...``,
        ``tile=256``) update single fields.
    device : str, optional
        Where the network runs (``None``: ``$SCOPENET_DEVICE``, else a GPU when there is one).

    Attributes
    ----------
    net_ : torch.nn.Module
    card_ : ModelCard
        Training data, metrics and the history of fine-tuning (``card_.training.fine_tuning``).
    history_ : list of float
        Loss per step of the last :meth:`fit`.
    """

    task = "denoise"
    config_class = DenoiseConfig
    aliases = MODEL_ALIASES

    def build_net(self):
        from ...nn import build_architecture

        return build_architecture(self.config.arch, self.config.arch_config).eval()

    @classmethod
    def pretrained(cls, name: str = "default", **kw):
        """An installed pretrained denoiser.

        ``"default"`` (``denoise-default``, the low-dose/blind model), ``"high-dose"``
        (``denoise-high-dose``) or any installed name or path; ``"auto"`` returns an
        :class:`AutoDenoiser` (the two routed by the measured noise of each image), which predicts but
        does not fit. Keyword arguments override settings (``tile=256``) or set ``device``.
        """
        if name in ("auto", "denoise-auto"):
            return AutoDenoiser.pretrained(**kw)
        return super().pretrained(name, **kw)

    # ----------------------------------------------------------------- prediction
    def _net_unit(self, x: np.ndarray) -> np.ndarray:
        """Network on a batch ``(B, H, W)`` of [0, 1] images -> ``(B, H, W)``."""
        from ...nn.device import run_numpy

        y = run_numpy(self.net_, np.asarray(x, np.float32)[:, None], self.device)[:, 0]
        return np.clip(y, 0, 1) if self.config.clip else y

    def _frame(self, u: np.ndarray) -> np.ndarray:
        c = self.config
        if u.size <= c.max_direct_pixels:
            return self._net_unit(u[None])[0]
        from ...image.tiling import predict_tiled

        return predict_tiled(u, self._net_unit, tile=min(c.tile, max(u.shape)), overlap=c.overlap, progress=self.progress,
                             batch_size=c.batch_size, batched=True, operation=None)

    def denoise_frame(self, frame: np.ndarray, tta: int = 1) -> np.ndarray:
        """Denoise one 2-D frame in its own intensity units (NaN where the input is not finite).

        With ``config.normalise == "robust"`` the frame is scaled by robust percentiles and clipped to
        [0, 1] (:func:`scopenet.image.scaling.robust_unit_scale`) instead of by its min and max."""
        return _denoise_in_units(self._frame, frame, self.config.normalise, self.config.percentiles, tta)

    def predict(self, img, *, tta: int = 1, dose: float | None = None):
        """Denoise an image, a stack or a list of them, of any size.

        Parameters
        ----------
        img : ndarray (H, W) or (N, H, W), Micrograph, or a list of these
            Each frame is min-max scaled to [0, 1] (like the training data), denoised and mapped back
            to its original range. NaN/inf pixels are replaced by the median for the network and
            restored as NaN in the output.
        tta : int
            Number of flipped/rotated views averaged (1..8; ``True`` is 8): slower, slightly better.
        dose : float, optional
            Mean counts (electrons) per pixel, when known (beam current x dwell time, or a counting
            detector), for images proportional to counts. Each frame's output is then blended back
            toward its input so that no more than the known shot noise is removed
            (:func:`~scopenet.tasks.denoise.dose.shot_noise_guard`): with the dose given, the output is not
            expected to be worse than the input, also on clean high-dose frames where a blind denoiser
            takes away specimen detail. The weights go to the provenance (``guard_weight``).

        Returns
        -------
        The input's kind: ndarray float32 of the input's shape, a Micrograph (calibration and metadata
        kept, one provenance entry ``denoise`` added) or a list.

        Raises
        ------
        InputError
            A non-numeric, empty, all-NaN or wrongly shaped input.
        """
        return _denoise_images(self, img, tta, dose)

    # ----------------------------------------------------------------- training
    def fit(self, images, mode: str = "supervised", targets=None, settings: FitSettings | None = None,
            progress: bool = False, **overrides) -> "Denoiser":
        """Fine-tune (or train) the network.

        Parameters
        ----------
        images : sequence of 2-D arrays / Micrographs, or an (N, H, W) array
            ``supervised``: clean images (Ede's dose noise is added on the fly) unless ``targets``
            are given, in which case ``images`` are the noisy inputs. ``n2n``: noisy frames, with
            ``targets`` a second noisy frame of the same scene for each (or pass stacks of >= 2
            frames as ``images`` and no targets: two different frames are drawn per crop).
            ``n2v``: single noisy images, no targets (blind-spot masking, :func:`n2v_mask`; set
            ``n2v_struct=k`` to mask ``k`` px on each side along the scan line against line-correlated
            noise, and ``n2v_sampling="n2v2"`` for median replacement without checkerboard artefacts).
        mode : {"supervised", "n2n", "n2v"}
        targets : sequence of 2-D arrays, optional
        settings : FitSettings, optional
        progress : bool
        **overrides
            Fields of :class:`FitSettings` (``steps=50``, ``lr=1e-4`` ...).

        Returns
        -------
        self
        """
        from ...nn.device import resolve_device
        from .config import DenoiseTrainConfig
        from .train import train

        fs = (settings or FitSettings()).model_copy(update={**overrides, "mode": mode})
        FitSettings.model_validate(fs.model_dump())
        if mode not in ("supervised", "n2n", "n2v"):
            raise InputError(f"mode must be 'supervised', 'n2n' or 'n2v', got {mode!r}")
        srcs = self._fit_arrays(images, "images")
        tgts = self._fit_arrays(targets, "targets") if targets is not None else None
        if tgts is not None:
            if mode == "n2v":
                raise InputError("Noise2Void trains without targets; do not pass targets with mode='n2v'")
            if len(tgts) != len(srcs) or any(a.shape != b.shape for a, b in zip(srcs, tgts)):
                raise InputError("targets must match images one to one, with the same shapes")
        if mode == "n2n" and tgts is None and not all(a.ndim == 3 and a.shape[0] >= 2 for a in srcs):
            raise InputError("Noise2Noise needs targets (a second noisy frame per image) or stacks of >= 2 frames")
        for a in srcs:
            if min(a.shape[-2:]) < fs.crop_size:
                raise InputError(f"image of shape {a.shape} is smaller than crop_size={fs.crop_size}; lower crop_size")
        # on the engine (scopenet.training.budget): a constant rate (lr_final_fraction 1), nothing written
        cfg = DenoiseTrainConfig(workdir=None, mode=mode, max_steps=fs.steps, time_budget_s=None,
                                 batch_size=fs.batch_size, crop_size=fs.crop_size, lr=fs.lr, lr_final_fraction=1.0,
                                 high_dose_fraction=fs.high_dose_fraction, n2v_fraction=fs.n2v_fraction,
                                 n2v_radius=fs.n2v_radius, n2v_struct=fs.n2v_struct,
                                 n2v_struct_axis=fs.n2v_struct_axis, n2v_sampling=fs.n2v_sampling,
                                 normalise=self.config.normalise, percentiles=self.config.percentiles, seed=fs.seed, threads=torch.get_num_threads(),
                                 checkpoint_every_s=None, checkpoint_every_n_steps=None)
        t0 = time.perf_counter()
        self.history_ = train(self.net_, (srcs, tgts), cfg, device=str(resolve_device(self.device)),
                              progress=progress)
        self.card_.training.fine_tuning.append(
            {"mode": mode, "settings": fs.model_dump(), "n_images": len(srcs),
             "time_s": round(time.perf_counter() - t0, 2), "final_loss": self.history_[-1]})
        return self

    @staticmethod
    def _fit_arrays(images, what: str) -> list[np.ndarray]:
        if images is None:
            raise InputError(f"{what} is None")
        if isinstance(images, (np.ndarray, Micrograph)):
            arr = np.asarray(images.data if isinstance(images, Micrograph) else images)
            items = [arr] if arr.ndim == 2 else list(arr)
        elif isinstance(images, Sequence):
            items = [np.asarray(i.data if isinstance(i, Micrograph) else i) for i in images]
        else:
            raise InputError(f"{what} must be an array or a sequence of images, got {type(images).__name__}")
        out = []
        for k, a in enumerate(items):
            if a.ndim not in (2, 3) or not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
                raise InputError(f"{what}[{k}] must be a finite 2-D image (or stack), got shape {a.shape}, "
                                 f"dtype {a.dtype}")
            out.append(a.astype(np.float32))
        if not out:
            raise InputError(f"{what} is empty")
        return out


class AutoDenoiser(Router):
    """Dose-aware denoiser: each frame goes to a low-dose or a high-dose model by its own noise.

    The noise of the raw frame is measured with :func:`scopenet.tasks.denoise.dose.equivalent_dose`
    (robust Haar/MAD noise variance against local level, expressed as the shot-noise dose ``R_eq``
    that would give it) on the whole frame, before any tiling, so the decision does not depend on
    the tile size and hardly on the image size. The high-dose model's weight is
    ``w = clip(log(R_eq / lo) / log(hi / lo), 0, 1)`` (:func:`~scopenet.tasks.denoise.dose.auto_weight`);
    the output is ``(1 - w) * low(frame) + w * high(frame)`` (only the models with a non-zero weight
    are run). With the default ``dose_range = (150, 600)`` counts: noisy frames (``R_eq <= 150``)
    get the low-dose model alone and clean-ish frames (``R_eq >= 600``) the high-dose model alone.

    Parameters
    ----------
    low, high : Denoiser
        The low-dose (default) and high-dose models.
    dose_range : (float, float)
        ``(lo, hi)`` equivalent doses of the blend zone.
    """

    def __init__(self, low: Denoiser, high: Denoiser, dose_range: tuple[float, float] | None = None):
        from ...weights.card import ModelCard
        from .dose import AUTO_DOSE_RANGE, auto_weight

        self.low, self.high = low, high
        self.dose_range = tuple(float(t) for t in (dose_range or AUTO_DOSE_RANGE))
        auto_weight(1.0, self.dose_range)  # validates the range
        self.card_ = ModelCard(
            name="denoise-auto", task="denoise", architecture={"name": "router"},
            predict={"low_model": low.name, "high_model": high.name, "dose_range": list(self.dose_range),
                     "rule": "w_high = clip(log(R_eq/lo)/log(hi/lo), 0, 1); R_eq = mean(u)/mean Haar-MAD noise "
                             "variance"})

    def members(self) -> list[Denoiser]:
        return [self.low, self.high]

    @classmethod
    def pretrained(cls, low: str = "default", high: str = "high-dose", dose_range: tuple[float, float] | None = None,
                   **kw) -> "AutoDenoiser":
        """The installed pair (``denoise-default`` and ``denoise-high-dose`` unless named otherwise);
        keyword arguments (settings such as ``tile=256``, or ``device``) go to both."""
        return cls(Denoiser.pretrained(low, **kw), Denoiser.pretrained(high, **kw), dose_range)

    def route_frame(self, frame: np.ndarray) -> dict[str, float]:
        """The routing decision for one 2-D frame (see :meth:`route`)."""
        from .dose import auto_weight, equivalent_dose

        fr = np.asarray(frame)
        if min(fr.shape) < 4:
            d = {"dose": float("nan"), "noise_sd": float("nan")}
        else:
            e = equivalent_dose(fr)
            d = {"dose": e["dose"], "noise_sd": e["noise_sd"]}
        d["weight"] = auto_weight(d["dose"], self.dose_range)
        return d

    def route(self, img) -> list[dict[str, float]]:
        """The routing decision for each frame of ``img`` ((H, W), (N, H, W) or Micrograph).

        Returns
        -------
        list of dict, one per frame
            ``dose`` (equivalent dose ``R_eq``, counts at the brightest pixel; NaN for frames
            under 4 x 4 px), ``noise_sd`` (in units of the frame's range) and ``weight`` (of the
            high-dose model, in [0, 1]; frames whose noise cannot be measured get 1, the gentler model).
        """
        a = np.asarray(img.data if isinstance(img, Micrograph) else img)
        if a.ndim not in (2, 3) or not np.issubdtype(a.dtype, np.number):
            raise InputError(f"routing needs a 2-D image or an (n, y, x) stack, got shape {a.shape}, dtype {a.dtype}")
        return [self.route_frame(_check_frame(fr)) for fr in (a[None] if a.ndim == 2 else a)]

    def predict(self, img, *, tta: int = 1, dose: float | None = None):
        """Denoise like :meth:`Denoiser.predict` (``dose`` as there), each frame routed by its measured dose.

        A Micrograph gets one provenance entry ``denoise`` with ``model="denoise-auto"``, the
        equivalent dose and the high-dose weight of each frame.
        """
        if isinstance(img, (list, tuple)):  # each image its own provenance (doses, weights)
            if not img:
                raise InputError("denoising input: empty list")
            return [self.predict(x, tta=tta, dose=dose) for x in img]
        views = check_views(tta)
        routes: list[dict[str, float]] = []
        weights: list[float] = []

        def one(fr):
            r = self.route_frame(_check_frame(fr))
            routes.append(r)
            w = r["weight"]
            y = np.zeros(fr.shape, np.float64)
            if w < 1:
                y += (1 - w) * self.low.denoise_frame(fr, views)
            if w > 0:
                y += w * self.high.denoise_frame(fr, views)
            return _guarded(fr, y.astype(np.float32), dose, weights)

        return map_images(one, img, operation="denoise", what="denoising input", provenance=lambda: {
            "model": "denoise-auto", "tta": views, "low_model": self.low.name, "high_model": self.high.name,
            "equivalent_dose": [round(r["dose"], 2) for r in routes],
            "high_dose_weight": [round(r["weight"], 4) for r in routes], **_guard_info(dose, weights)})

def denoise(img, model: str | Denoiser | AutoDenoiser = "auto", tta: int = 1, dose: float | None = None):
    """Denoise a micrograph with a pretrained model (``sn.denoise``).

    Parameters
    ----------
    img : ndarray (H, W) / (N, H, W), Micrograph, or a list of these
        Any size; calibration and metadata of a Micrograph are kept and a provenance entry added.
    model : str or Denoiser
        ``"auto"`` (default): each frame's noise is measured and it is denoised by the low-dose
        model, the high-dose model or a blend of both (:class:`AutoDenoiser`; the rule is in
        :mod:`scopenet.tasks.denoise.dose`). Or an installed model name (``"default"`` is
        ``denoise-default``, trained on Ede's low- and high-dose noise; ``"high-dose"`` is the
        variant fine-tuned on high-dose noise only), a saved model path, or a Denoiser.
    tta : int
        Number of flipped/rotated views averaged (1..8; ``True`` is 8).
    dose : float, optional
        Mean counts (electrons) per pixel when known, for images proportional to counts: the output is
        then blended back toward the input so that no more than the known shot noise is removed
        (:func:`~scopenet.tasks.denoise.dose.shot_noise_guard`; see :meth:`Denoiser.predict`).

    Returns
    -------
    The input's kind (ndarray float32, Micrograph or list), denoised.

    Raises
    ------
    InputError
        A non-numeric, empty or all-NaN image, or an unknown model name.

    Examples
    --------
    >>> import numpy as np, scopenet as sn
    >>> sn.denoise(np.random.default_rng(0).poisson(20, (64, 64)).astype(float)).shape
    (64, 64)
    """
    den = model if isinstance(model, (Denoiser, AutoDenoiser)) else \
        cached(("denoise", str(model)), lambda: Denoiser.pretrained(str(model)))
    return den.predict(img, tta=tta, dose=dose)
