"""Exit-wave phase from a single amplitude image: ``sn.exit_wave(amplitude)``.

Ede's chapter 7 (``papers/ede2021-thesis-6-7-8-denoiser-exitwave.txt``): the phase ``theta`` of an
exit wave ``psi = A exp(i theta)`` cannot be recovered from ``A`` in general, but it becomes
learnable once the distribution of specimens is restricted. A convolutional network maps the
amplitude (scaled to mean 1) to ``(cos theta, sin theta)``, L2-normalised per pixel; trained with an
MSE, it predicts the circular mean of the phases that are probable for that amplitude.

Beyond the chapter:

- a per-pixel **phase confidence** in ``[0, 1]``: the length of the network's unnormalised output,
  an estimate of the mean resultant length ``|E[exp(i theta) | A]|`` (1: one phase is probable;
  0: the phase is unknown and the expected error is that of a random guess);
- an **unfamiliar-input warning** (:class:`UnfamiliarInputWarning`) when the mean phase confidence is
  below its 5th percentile over crops of the training waves (:func:`calibrate_confidence`), or the
  amplitude's contrast or high-frequency content lies outside what the model saw in training: the
  chapter shows errors approaching those of random phases for materials a network does not know.
  Of the features measured (confidence statistics, amplitude moments and spectrum, agreement of the
  8 flipped views, a Mahalanobis distance on the network's pooled features), a low mean confidence
  is the one that singles out unseen materials with large errors; see ``docs/tasks/exitwave.md``.

>>> import scopenet as sn                                       # doctest: +SKIP
>>> psi = sn.exit_wave(amplitude)          # complex Micrograph  # doctest: +SKIP
>>> phase = np.angle(psi.data)             # [-pi, pi)          # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ...errors import InputError
from ...image.tta import check_views, tta_average
from ...nn import exitwave as _nn_exitwave  # noqa: F401  (registers exitwave-net)
from .._estimator import Estimator, cached, map_images, register
from .config import ExitWaveConfig
from .familiar import OOD_QUANTILE, calibrate_confidence, high_frequency_fraction

__all__ = ["ExitWaveEstimator", "UnfamiliarInputWarning", "exit_wave", "calibrate_confidence", "DEFAULT_MODEL",
           "SINGLE_MODEL", "OOD_QUANTILE"]

DEFAULT_MODEL = "exitwave-restricted"
SINGLE_MODEL = "exitwave-srtio3"
"""Default expected flag rate of the low-confidence rule on inputs like the training waves."""


class UnfamiliarInputWarning(UserWarning):
    """An input unlike the training distribution of an exit-wave model: its phases are likely wrong."""


def _check_frame(frame: np.ndarray, what: str = "amplitude") -> np.ndarray:
    a = np.asarray(frame)
    if a.ndim != 2 or min(a.shape) < 4:
        raise InputError(f"{what} must be a 2-D image of at least 4x4 px, got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise InputError(f"{what} has non-finite values")
    return a


def scale_amplitude(frame: np.ndarray, input: str = "amplitude", scale: str = "mean") -> np.ndarray:
    """An image as the network's input: an amplitude of mean 1, float32 ``(H, W)``.

    Parameters
    ----------
    frame : ndarray (H, W)
        An amplitude ``|psi|`` or (``input="intensity"``) an intensity ``|psi|^2``.
    input : {"amplitude", "intensity"}
    scale : {"mean", "range"}
        ``"mean"``: divide by the mean (values must be non-negative, mean > 0); ``"range"``: map
        ``[min, max]`` linearly onto ``[0, 2]`` (a constant image becomes 1).

    Raises
    ------
    InputError
        Negative values with ``scale="mean"`` or an intensity; a zero mean.
    """
    a = _check_frame(frame)
    if input == "intensity":
        if a.min() < 0:
            raise InputError("an intensity image cannot have negative values")
        a = np.sqrt(a)
    elif input != "amplitude":
        raise InputError(f"input must be 'amplitude' or 'intensity', got {input!r}")
    if scale == "mean":
        if a.min() < 0:
            raise InputError("amplitudes cannot be negative; pass scale='range' for an image with an offset")
        m = a.mean()
        if m <= 0:
            raise InputError("the amplitude image is all zero")
        return (a / m).astype(np.float32)
    if scale == "range":
        lo, hi = a.min(), a.max()
        if hi <= lo:
            return np.ones_like(a, np.float32)
        return (2.0 * (a - lo) / (hi - lo)).astype(np.float32)
    raise InputError(f"scale must be 'mean' or 'range', got {scale!r}")


@register
class ExitWaveEstimator(Estimator):
    """Phase of the exit wave from its amplitude (the estimator contract of :mod:`scopenet.tasks._estimator`).

    Parameters
    ----------
    config : ExitWaveConfig or dict, optional
        Network, input kind and scaling, unfamiliar-input thresholds; keyword overrides too.
    device : str, optional
        Where the network runs (:mod:`scopenet.nn.device`).
    """

    task = "exitwave"
    config_class = ExitWaveConfig
    aliases = {"default": DEFAULT_MODEL, "restricted": DEFAULT_MODEL, "single": SINGLE_MODEL,
               "srtio3": SINGLE_MODEL}

    def build_net(self):
        from ...nn import build_architecture

        return build_architecture(self.config.arch, self.config.arch_config).eval()

    def save(self, path, overwrite: bool = False):
        """Write weights + model card (never overwrites without ``overwrite=True``)."""
        self.card_.preprocessing.setdefault("input_shape", [1, 1, 128, 128])  # amplitude, mean 1
        self.card_.preprocessing.setdefault("input", "exit-wave amplitude divided by its mean")
        return super().save(path, overwrite=overwrite)

    # ------------------------------------------------------------------------------ training
    def fit(self, waves: Any, **overrides: Any) -> ExitWaveEstimator:
        """Train (or fine-tune) on complex exit waves.

        Parameters
        ----------
        waves : ndarray complex (N, H, W), a list of complex 2-D arrays, or paths of ``.npz`` files
            written by :func:`scopenet.simulate.em.exitwave.save_waves`.
        **overrides
            Fields of :class:`~scopenet.tasks.exitwave.config.ExitWaveTrainConfig` (``max_steps``,
            ``crop``, ``batch_size``, ``lr``, ``time_budget_s``, ``gan``, ``seed``...). Nothing is written
            unless ``workdir`` is given.

        Sets ``history_`` (the per-step training loss) and the unfamiliar-input thresholds.
        """
        from ...nn.device import resolve_device
        from .config import ExitWaveTrainConfig
        from .train import calibrate, load_pool, train

        pool = load_pool(waves)
        try:
            cfg = ExitWaveTrainConfig(**{"workdir": None, "max_steps": 200, "time_budget_s": None,
                                         "checkpoint_every_s": None, "threads": torch.get_num_threads(),
                                         "scale": self.config.scale, **overrides})
        except Exception as exc:
            raise InputError(f"invalid training settings: {exc}") from exc
        if min(pool.shape[1:]) < cfg.crop:
            raise InputError(f"training waves of shape {pool.shape[1:]} are smaller than crop {cfg.crop}")
        self.history_ = train(self.net_, pool, cfg, device=str(resolve_device(self.device)))
        self.net_.eval()
        self.config = self.config.model_copy(update=calibrate(self, pool, cfg.crop, seed=cfg.seed))
        return self

    # ---------------------------------------------------------------------------- prediction
    def raw_components(self, amplitude: np.ndarray) -> np.ndarray:
        """The network's unnormalised output for a batch of scaled amplitudes ``(B, H, W)`` -> ``(B, 2, H, W)``."""
        from ...nn.device import place

        net = self._check_fitted().eval()
        dev = place(net, self.device)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(amplitude, np.float32))[:, None].to(dev)
            raw = net.forward_raw(x)[1] if hasattr(net, "forward_raw") else net(x)
        return raw.float().cpu().numpy()

    def _scaled(self, frame) -> np.ndarray:
        return scale_amplitude(frame, self.config.input, self.config.scale)

    def phase_and_confidence(self, frame: np.ndarray, tta: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For one 2-D image: ``(amplitude scaled to mean 1, phase in [-pi, pi), confidence in [0, 1])``."""
        views = check_views(tta)
        a = self._scaled(frame)
        raw = tta_average(lambda x: self.raw_components(x[None])[0], a, views=views)
        phase = np.arctan2(raw[1], raw[0]).astype(np.float32)
        phase[phase >= np.pi] -= np.float32(2 * np.pi)
        conf = np.clip(np.hypot(raw[0], raw[1]), 0.0, 1.0).astype(np.float32)
        return a, phase, conf

    def assess(self, frame: np.ndarray, tta: int = 1) -> dict[str, Any]:
        """Whether one 2-D image looks like the training distribution.

        Returns
        -------
        dict
            ``mean_confidence``, ``amplitude_sd`` (of the scaled amplitude), ``familiar`` (bool) and
            ``reasons`` (list of str, empty when familiar).
        """
        a, _, conf = self.phase_and_confidence(_check_frame(frame), tta)
        return self._assess(a, conf)

    def _assess(self, a: np.ndarray, conf: np.ndarray) -> dict[str, Any]:
        c = self.config
        mc, sd = float(conf.mean()), float(a.std())
        reasons = []
        if mc < c.ood_confidence:
            q = c.ood_confidence_quantile
            where = (f"the {100 * q:.0f}th percentile of mean phase confidence over crops of the training waves"
                     if q is not None else "the threshold set for this model")
            reasons.append(f"mean phase confidence {mc:.2f} is below {c.ood_confidence:.2f}, {where}")
        lo, hi = c.amplitude_sd_range
        if not lo <= sd <= hi:
            reasons.append(f"amplitude contrast (sd {sd:.3f} at mean 1) is outside the training range "
                           f"[{lo:.3f}, {hi:.3f}]")
        hf = high_frequency_fraction(a)
        if hf > c.high_frequency_max:
            reasons.append(f"{hf:.1%} of its contrast lies above 2/3 of the Nyquist frequency, more than the "
                           f"{c.high_frequency_max:.1%} of band-limited training waves (noise, or another sampling)")
        return {"mean_confidence": mc, "amplitude_sd": sd, "high_frequency_fraction": hf, "familiar": not reasons,
                "reasons": reasons}

    def _frame(self, frame: np.ndarray, tta: int, out: str, warn: bool) -> np.ndarray:
        a, phase, conf = self.phase_and_confidence(frame, tta)
        if warn:
            verdict = self._assess(a, conf)
            if not verdict["familiar"]:
                warnings.warn(f"input unlike the training data of {self.name}: " + "; ".join(verdict["reasons"])
                              + " (its phases are likely close to random)", UnfamiliarInputWarning, stacklevel=4)
        if out == "wave":
            return (a * np.exp(1j * phase)).astype(np.complex64)
        if out == "phase":
            return phase
        return conf

    def predict(self, x, *, tta: int = 1, warn: bool = True):
        """The complex exit wave ``A exp(i theta)`` of an amplitude image, a stack or a list of them.

        Parameters
        ----------
        x : ndarray (H, W) or (N, H, W), Micrograph, or a list of these
            Amplitudes (or intensities, ``config.input``), any units; scaled as ``config.scale`` says.
        tta : int
            Number of flipped/rotated views whose outputs are averaged (1..8).
        warn : bool
            Warn (:class:`UnfamiliarInputWarning`) for inputs unlike the training distribution.

        Returns
        -------
        The input's kind, complex64: ``A exp(i theta)`` with ``A`` the input amplitude scaled to mean
        1 and ``theta`` in ``[-pi, pi)``; a Micrograph keeps its calibration and gets a provenance entry.
        """
        views = check_views(tta)
        return map_images(lambda f: self._frame(f, views, "wave", warn), x, operation="exit_wave",
                          what="amplitude",
                          provenance=lambda: {"model": self.name, "tta": views, "input": self.config.input,
                                              "scale": self.config.scale})

    def predict_phase(self, x, *, tta: int = 1, warn: bool = True):
        """The phase ``theta`` in ``[-pi, pi)`` (radians, float32), same input kinds as :meth:`predict`."""
        views = check_views(tta)
        return map_images(lambda f: self._frame(f, views, "phase", warn), x, operation="exit_wave_phase",
                          what="amplitude", provenance=lambda: {"model": self.name, "tta": views})

    def confidence(self, x, *, tta: int = 1):
        """Per-pixel phase confidence in ``[0, 1]`` (float32), same input kinds as :meth:`predict`."""
        views = check_views(tta)
        return map_images(lambda f: self._frame(f, views, "confidence", False), x,
                          operation="exit_wave_confidence", what="amplitude",
                          provenance=lambda: {"model": self.name, "tta": views})


def exit_wave(img, model: str | ExitWaveEstimator = DEFAULT_MODEL, tta: int = 1, warn: bool = True):
    """The complex exit wave of an amplitude image with a pretrained model (``sn.exit_wave``).

    Parameters
    ----------
    img : ndarray (H, W) / (N, H, W), Micrograph, or a list of these
        The exit-wave amplitude ``|psi|`` (non-negative; scaled to mean 1 internally).
    model : str or ExitWaveEstimator
        ``"restricted"`` (default: many materials, restricted simulation ranges), ``"single"``
        (SrTiO3 only), a path stem, or an estimator.
    tta : int
        Flipped/rotated views averaged (1..8).
    warn : bool
        Warn when the input is unlike the model's training distribution.

    Returns
    -------
    The input's kind, complex64 (a complex Micrograph for a Micrograph): ``A exp(i theta)``,
    ``A`` the amplitude scaled to mean 1, ``theta`` in ``[-pi, pi)``.

    Examples
    --------
    >>> import numpy as np, scopenet as sn
    >>> psi = sn.exit_wave(np.ones((32, 32)), warn=False)
    >>> psi.dtype, psi.shape
    (dtype('complex64'), (32, 32))
    """
    est = model if isinstance(model, ExitWaveEstimator) else \
        cached(("exitwave", str(model)), lambda: ExitWaveEstimator.pretrained(str(model)))
    return est.predict(img, tta=tta, warn=warn)


def as_waves(x: Iterable | np.ndarray | str | Path) -> np.ndarray:
    """Complex waves ``(N, H, W)`` from an array, a list of arrays or Micrographs (see :func:`.train.load_pool`)."""
    from .train import load_pool

    return load_pool(x)

