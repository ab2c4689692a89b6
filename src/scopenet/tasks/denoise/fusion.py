"""Learned fusion denoiser: a small network choosing, per pixel, among classical filters and denoising networks.

:class:`FusionDenoiser` computes a bank of *candidates* for each frame (the robust-normalised noisy input,
Gaussian blurs at three widths, 3x3 and 5x5 medians, the Wiener filter, BayesShrink wavelets, NL-means with
its own noise estimate, and the outputs of installed denoising networks such as ``denoise-default`` and
``denoise-high-dose``) and fuses them with :class:`~scopenet.nn.fusion.FusionNet`: softmax weights over the
candidates from image-wide features, optionally refined per pixel with a residual bounded by the candidates'
spread. The filters run outside the
network, here in :meth:`FusionDenoiser.predict`; only the fusion network is trained and saved (the
networks among the candidates are referenced by name in the card and loaded from the installed weights).

The idea: robust filters behave predictably under noise the networks never saw (scan-line noise,
spikes, other dose regimes), so a selection learnt over them should transfer better than a raw network.
Measured (``benchmarks/results/denoise-fusion.md``): it does on the simulated physical set, not on real
micrographs, so no fusion model is shipped.

>>> import numpy as np
>>> est = FusionDenoiser(candidates=["input", "gaussian", "median"], arch_config={"width": 4, "dilations": [1]})
>>> est.predict(np.random.default_rng(0).random((32, 40))).shape
(32, 40)
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...errors import InputError
from .._estimator import Estimator
from . import baselines as B

__all__ = ["FILTERS", "DEFAULT_CANDIDATES", "FusionConfig", "FusionTrainConfig", "FusionDenoiser", "candidate_stack",
           "train_fusion", "fusion_loss", "is_fusion_card", "load_denoiser"]


def _gauss(sigma: float, size: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u: B.gaussian(u, sigma=sigma, size=size)


#: the fast classical candidates (each maps a 2-D [0, 1] image to float32 of the same shape)
FILTERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "input": lambda u: np.asarray(u, np.float32),
    "gaussian": _gauss(0.8, 3),
    "gaussian5": _gauss(1.2, 5),
    "gaussian9": _gauss(2.5, 9),
    "median": B.median,
    "median5": lambda u: B.median(u, size=5),
    "wiener": B.wiener,
    "wavelet": B.wavelet,
    "nl_means": B.nl_means,
}

#: the shipped candidate bank: the input first, then the filters, then the two installed networks
DEFAULT_CANDIDATES = ["input", "gaussian", "gaussian5", "gaussian9", "median", "median5", "wiener", "wavelet",
                      "nl_means", "net:denoise-default", "net:denoise-high-dose"]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_candidates(v: list[str]) -> list[str]:
    if not v:
        raise ValueError("at least one candidate is needed")
    for c in v:
        if c not in FILTERS and not (c.startswith("net:") and len(c) > 4):
            raise ValueError(f"unknown candidate {c!r}: one of {', '.join(FILTERS)} or 'net:<denoiser name or path>'")
    if len(set(v)) != len(v):
        raise ValueError(f"candidates repeat: {v}")
    return list(v)


class FusionConfig(_Base):
    """Settings of a :class:`FusionDenoiser`.

    Attributes
    ----------
    arch : str
        The fusion network (``"denoise-fusion"``, :class:`~scopenet.nn.fusion.FusionNet`).
    arch_config : dict
        Its arguments; ``n_candidates`` is set from ``candidates``.
    candidates : list of str
        The candidate bank, in channel order: keys of :data:`FILTERS`, or ``"net:NAME"`` for the output of
        an installed denoiser (``Denoiser.pretrained(NAME)``) or a saved one (a path).
    normalise : {"robust", "minmax"}
        How a frame is brought to [0, 1] before the candidates are made (robust percentiles, outliers
        clipped, or min and max).
    percentiles : (float, float)
        The robust percentiles.
    clip : bool
        Clip the fused output to [0, 1] before mapping back to the input's units.
    """

    arch: str = "denoise-fusion"
    arch_config: dict[str, Any] = Field(default_factory=dict)
    candidates: list[str] = Field(default_factory=lambda: list(DEFAULT_CANDIDATES))
    normalise: Literal["robust", "minmax"] = "robust"
    percentiles: tuple[float, float] = (0.1, 99.9)
    clip: bool = True

    @field_validator("candidates")
    @classmethod
    def _cands(cls, v: list[str]) -> list[str]:
        return _check_candidates(v)


class FusionTrainConfig(_Base):
    """One training run of the fusion network (``scripts/train_denoise_fusion.py``,
    ``recipes/denoise-fusion/fusion.yaml``).

    Pairs are made from the *training* sources of ``denoise-default`` only
    (:class:`~scopenet.tasks.denoise.train.TrainingPool`: simulated STEM/HRTEM/mesoscale images at seeds
    ``1000+`` and the em-real ``train`` split); the candidates of every pair are computed once and cached.

    Attributes
    ----------
    name : str
        The model's card name.
    cache : path
        Folder for the cached pairs and candidates (``pairs.npz``) and the checkpoints.
    n_pairs, size : int
        Training crops and their side (px).
    physical_fraction : float
        Pairs made with the physical model (:func:`~scopenet.tasks.denoise.pairs.physical_pair`, one
        modality chosen uniformly, content matched: TEM - HRTEM, STEM - STEM lattices, SEM - mesoscale);
        the rest with Ede's dose noise (``high_dose_fraction`` of them high dose).
    real_fraction, bin_fraction : float
        Dose-noise pairs from real training micrographs (else simulated), of which binned 2x2.
    physical_real_fraction : float
        Physical pairs from real training micrographs (else the modality's simulated kind).
    zoom_range : (float, float)
        Random pixel sampling of the physical pairs' clean crops.
    n_sim_per_kind, sim_size : int
        The simulated pool (as ``denoise-default``'s, smaller).
    steps, lr, weight_decay : the image-wide stage: full-batch Adam on the MLP over every training crop's
        features, the loss computed exactly from each crop's candidate error Gram matrix (seconds on a CPU).
    loss : {"crop", "group"}
        The image-wide stage's loss: the mean over crops of ``log(MSE)`` (every crop by its ratio), or the mean
        over the kinds of pair (physical TEM/STEM/SEM, Ede low/high) of ``log(mean MSE of the kind)``, as the
        benchmark scores (a few ruined crops weigh what they cost the mean).
    pixel_steps, pixel_lr, time_budget_s, batch_size, patch, lr_final_fraction : the optional per-pixel stage
        (``arch_config.width > 0``): Adam on random patches, cosine, :func:`train_fusion`.
    val_fraction : float
        Pairs held out from training for the validation loss.
    checkpoint_every : int
        Steps between checkpoints.
    seed, threads : int
    """

    name: str = "denoise-fusion"
    cache: Path = Path("/tmp/fusion-data")
    candidates: list[str] = Field(default_factory=lambda: list(DEFAULT_CANDIDATES))
    arch_config: dict[str, Any] = Field(default_factory=lambda: {"hidden": 16, "width": 0})
    normalise: Literal["robust", "minmax"] = "robust"
    percentiles: tuple[float, float] = (0.1, 99.9)
    n_pairs: int = Field(360, ge=2)
    size: int = Field(256, ge=16)
    physical_fraction: float = Field(0.5, ge=0, le=1)
    high_dose_fraction: float = Field(0.5, ge=0, le=1)
    real_fraction: float = Field(0.6, ge=0, le=1)
    bin_fraction: float = Field(0.5, ge=0, le=1)
    physical_real_fraction: float = Field(0.2, ge=0, le=1)
    zoom_range: tuple[float, float] = (0.5, 2.5)
    n_sim_per_kind: int = Field(24, ge=1)
    sim_size: int = Field(256, ge=16)
    steps: int = Field(2000, ge=1)
    loss: Literal["crop", "group"] = "crop"
    lr: float = Field(1e-2, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    pixel_steps: int = Field(0, ge=0)
    pixel_lr: float = Field(1e-3, gt=0)
    time_budget_s: float | None = Field(1800.0, gt=0)
    batch_size: int = Field(8, ge=1)
    patch: int = Field(64, ge=8)
    lr_final_fraction: float = Field(0.05, ge=0, le=1)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    checkpoint_every: int = Field(100, ge=1)
    seed: int = 0
    threads: int = Field(1, ge=1)

    @field_validator("candidates")
    @classmethod
    def _cands(cls, v: list[str]) -> list[str]:
        return _check_candidates(v)


# ------------------------------------------------------------------------------------ candidates
def _load_net_candidate(spec: str):
    from .model import Denoiser

    return Denoiser.load(Path(spec)) if ("/" in spec or spec.endswith(".json")) else Denoiser.pretrained(spec)


def candidate_stack(u: np.ndarray, candidates: Sequence[str], nets: dict[str, Any] | None = None,
                    timings: dict[str, float] | None = None) -> np.ndarray:
    """The candidate bank of one [0, 1] frame: ``(K, H, W)`` float32, in ``candidates`` order.

    ``nets`` maps ``"net:NAME"`` entries to loaded denoisers (loaded here when missing); ``timings``
    (optional) receives the seconds spent on each candidate.
    """
    u = np.asarray(u, np.float32)
    nets = {} if nets is None else nets
    out = []
    for c in candidates:
        t0 = time.perf_counter()
        if c.startswith("net:"):
            if c not in nets:
                nets[c] = _load_net_candidate(c[4:])
            y = nets[c].denoise_frame(u)
        else:
            y = FILTERS[c](u)
        out.append(np.clip(np.asarray(y, np.float32), 0.0, 1.0))
        if timings is not None:
            timings[c] = timings.get(c, 0.0) + time.perf_counter() - t0
    return np.stack(out)


# ------------------------------------------------------------------------------------- estimator
class FusionDenoiser(Estimator):
    """Denoiser fusing classical filters and networks per pixel (see the module docstring).

    A ``denoise`` estimator like :class:`~scopenet.tasks.denoise.Denoiser` (same card task, so the bench
    and the CLI's model paths take it); it is not the task's registered estimator, which stays
    ``Denoiser`` (:func:`load_denoiser` picks the right class from a card).

    Parameters
    ----------
    config : FusionConfig or dict, optional
    device : str, optional
        Where the fusion network and the candidate networks run.
    """

    task = "denoise"
    config_class = FusionConfig
    aliases = {"fusion": "denoise-fusion"}

    def build_net(self):
        from ...nn import build_architecture

        cfg = {**self.config.arch_config, "n_candidates": len(self.config.candidates)}
        return build_architecture(self.config.arch, cfg).eval()

    def _after_load(self) -> None:
        n = self.net_.config.get("n_candidates")
        if n != len(self.config.candidates):
            raise InputError(f"fusion model {self.card_.name!r}: {n} candidate channels but "
                             f"{len(self.config.candidates)} candidates in its config")

    @property
    def nets_(self) -> dict[str, Any]:
        """The loaded candidate networks (``"net:NAME"`` -> Denoiser), loaded on first use."""
        if getattr(self, "_nets", None) is None:
            self._nets = {}
        for c in self.config.candidates:
            if c.startswith("net:") and c not in self._nets:
                d = _load_net_candidate(c[4:])
                d.device = self.device
                self._nets[c] = d
        return self._nets

    # ----------------------------------------------------------------- prediction
    def candidates_of(self, u: np.ndarray, timings: dict[str, float] | None = None) -> np.ndarray:
        """The ``(K, H, W)`` candidate bank of a [0, 1] frame."""
        return candidate_stack(u, self.config.candidates, self.nets_, timings)

    def fuse(self, cands: np.ndarray) -> np.ndarray:
        """The fusion network on a candidate bank ``(K, H, W)`` or a batch ``(B, K, H, W)`` -> ``(H, W)`` / ``(B, H, W)``."""
        from ...nn.device import run_numpy

        c = np.asarray(cands, np.float32)
        one = c.ndim == 3
        y = run_numpy(self.net_, c[None] if one else c, self.device)[:, 0]
        y = np.clip(y, 0.0, 1.0) if self.config.clip else y
        return y[0] if one else y

    def weights(self, cands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel weights ``(K, H, W)`` (summing to one) and the residual ``(H, W)`` for one candidate bank."""
        from ...nn.device import place

        dev = place(self.net_, self.device)
        with torch.inference_mode():
            w, r = self.net_.forward_parts(torch.from_numpy(np.asarray(cands, np.float32)[None]).to(dev))
        return w[0].float().cpu().numpy(), r[0, 0].float().cpu().numpy()

    def _unit_frame(self, u: np.ndarray) -> np.ndarray:
        return self.fuse(self.candidates_of(u))

    def denoise_frame(self, frame: np.ndarray, tta: int = 1) -> np.ndarray:
        """Denoise one 2-D frame in its own units (NaN where the input is not finite)."""
        from .model import _denoise_in_units

        return _denoise_in_units(self._unit_frame, frame, self.config.normalise, self.config.percentiles, tta)

    def predict(self, img, *, tta: int = 1, dose: float | None = None):
        """Denoise an image, a stack or a list of them (as :meth:`Denoiser.predict`, ``dose`` included).

        Raises
        ------
        InputError
            A non-numeric, empty, all-NaN or wrongly shaped input.
        """
        from .model import _denoise_images

        return _denoise_images(self, img, tta, dose, candidates=list(self.config.candidates))

    # ----------------------------------------------------------------- training
    def prepare_pair(self, noisy: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The candidate bank of ``noisy`` and ``truth`` on the same [0, 1] scale (as :meth:`predict` scales)."""
        from ...image.scaling import robust_unit_scale, unit_scale

        if self.config.normalise == "robust":
            _, s = robust_unit_scale(noisy, tuple(self.config.percentiles))
        else:
            _, s = unit_scale(noisy)
        u = np.clip(s.apply(noisy), 0.0, 1.0).astype(np.float32)
        t = np.clip(s.apply(truth), 0.0, 1.0).astype(np.float32) if s.span > 0 else np.zeros_like(u)
        return self.candidates_of(u), t

    def fit(self, images, targets=None, *, steps: int = 200, batch_size: int = 4, patch: int = 64, lr: float = 2e-3,
            degradation: Literal["ede", "physical", "mixed"] = "mixed", seed: int = 0, progress: bool = False
            ) -> "FusionDenoiser":
        """Train (or fine-tune) the fusion network.

        Parameters
        ----------
        images : sequence of 2-D arrays / Micrographs, or an (N, H, W) array
            Clean images (pairs made with ``degradation``: Ede's dose noise, the physical model, or a mix),
            or, with ``targets``, the noisy inputs.
        targets : sequence of 2-D arrays, optional
            The clean truth of each noisy image.
        steps, batch_size, patch, lr : optimisation (Adam; random ``patch`` x ``patch`` crops of the banks).
        degradation : {"ede", "physical", "mixed"}
        seed : int
        progress : bool

        Returns
        -------
        self
        """
        from .model import Denoiser
        from .pairs import make_pair

        srcs = Denoiser._fit_arrays(images, "images")
        tgts = Denoiser._fit_arrays(targets, "targets") if targets is not None else None
        if tgts is not None and (len(tgts) != len(srcs) or any(a.shape != b.shape for a, b in zip(srcs, tgts))):
            raise InputError("targets must match images one to one, with the same shapes")
        rng = np.random.default_rng(seed)
        xs, ys = [], []
        for k, a in enumerate(srcs):
            a = a[0] if a.ndim == 3 else a
            if min(a.shape) < patch:
                raise InputError(f"image of shape {a.shape} is smaller than patch={patch}; lower patch")
            if tgts is None:
                noisy, truth = make_pair(a, rng, degradation, normalise="robust")
            else:
                t = tgts[k][0] if tgts[k].ndim == 3 else tgts[k]
                noisy, truth = a, t
            c, t = self.prepare_pair(noisy, truth)
            xs.append(c)
            ys.append(t[None])
        t0 = time.perf_counter()
        self.history_ = train_fusion(self.net_, xs, ys, steps=steps, batch_size=batch_size, patch=patch, lr=lr,
                                     seed=seed, device=self.device, progress=progress)
        self.net_.eval()
        self.card_.training.fine_tuning.append(
            {"mode": "fusion", "degradation": degradation if tgts is None else "pairs", "n_images": len(srcs),
             "steps": steps, "time_s": round(time.perf_counter() - t0, 2), "final_loss": self.history_[-1]})
        return self


# ------------------------------------------------------------------------------------- training
def fusion_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over crops of ``log(MSE_i + 1e-6)``: every crop counts by its *ratio* of improvement, so
    clean (high-dose) crops weigh as much as noisy ones."""
    mse = ((pred - target) ** 2).mean(dim=(1, 2, 3))
    return torch.log(mse + 1e-6).mean()


def _batch(xs, ys, idx, patch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    from ...image.tta import dihedral

    bx, by = [], []
    for i in idx:
        x, y = xs[i], ys[i]
        h, w = x.shape[-2:]
        p = min(patch, h, w)
        r, c = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        k = int(rng.integers(8))
        bx.append(dihedral(x[:, r:r + p, c:c + p], k))
        by.append(dihedral(y[:, r:r + p, c:c + p], k))
    return torch.from_numpy(np.ascontiguousarray(np.stack(bx), np.float32)), \
        torch.from_numpy(np.ascontiguousarray(np.stack(by), np.float32))


def train_fusion(net: torch.nn.Module, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], *, steps: int,
                 batch_size: int = 8, patch: int = 96, lr: float = 2e-3, lr_final_fraction: float = 0.05,
                 seed: int = 0, device: str | None = None, time_budget_s: float | None = None,
                 val: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
                 checkpoint: Callable[[int, list[float], float | None], None] | None = None,
                 checkpoint_every: int = 100, start_step: int = 0, optimizer_state: dict | None = None,
                 progress: bool = False, log: Callable[[str], None] | None = None) -> list[float]:
    """Adam on random ``patch`` crops (dihedral flips) of the candidate banks ``xs`` ``(K, H, W)`` against
    ``ys`` ``(1, H, W)``; cosine learning rate to ``lr * lr_final_fraction``; :func:`fusion_loss`.

    ``checkpoint(step, history, val_loss)`` is called every ``checkpoint_every`` steps and at the end;
    the run stops at ``steps`` or after ``time_budget_s`` seconds (the cosine follows whichever is nearer
    its end). Returns the loss per step.
    """
    from ...nn.device import place

    if not len(xs) or len(xs) != len(ys):
        raise InputError("train_fusion needs as many candidate banks as targets (at least one)")
    dev = place(net, device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    net.opt_ = opt  # for the caller's checkpoints
    rng = np.random.default_rng([seed, start_step])
    hist: list[float] = []
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start_step, desc="fusion")

    def val_loss() -> float | None:
        if not val or not len(val[0]):
            return None
        net.eval()
        with torch.inference_mode():
            ls = [float(fusion_loss(net(torch.from_numpy(x[None]).to(dev)), torch.from_numpy(y[None]).to(dev)))
                  for x, y in zip(*val)]
        net.train()
        return float(np.mean(ls))

    net.train()
    step = start_step
    while step < steps:
        frac = step / max(1, steps)  # the schedule follows whichever budget, steps or time, is nearer its end
        if time_budget_s is not None:
            frac = max(frac, (time.perf_counter() - t0) / time_budget_s)
        cur = lr * (lr_final_fraction + (1 - lr_final_fraction) * 0.5 * (1 + np.cos(np.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = cur
        idx = rng.integers(0, len(xs), batch_size)
        x, y = _batch(xs, ys, idx, patch, rng)
        loss = fusion_loss(net(x.to(dev)), y.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.append(float(loss.detach()))
        step += 1
        if bar is not None:
            bar.update(1)
        over = time_budget_s is not None and time.perf_counter() - t0 > time_budget_s
        if checkpoint is not None and (step % checkpoint_every == 0 or step >= steps or over):
            v = val_loss()
            checkpoint(step, hist, v)
            if log is not None:
                log(f"step {step} elapsed {time.perf_counter() - t0:.0f}s lr {cur:.3g} "
                    f"train {np.mean(hist[-checkpoint_every:]):.4f} val {v if v is None else round(v, 4)}")
        if over:
            break
    if bar is not None:
        bar.close()
    net.eval()
    return hist


# ------------------------------------------------------------------------------------- loading
def is_fusion_card(spec: str | Path) -> bool:
    """Whether an installed name or saved path holds a fusion denoiser (its card's architecture)."""
    from ...weights import list_models

    s = str(spec)
    s = FusionDenoiser.aliases.get(s, s)
    try:
        if "/" in s or s.endswith(".json") or Path(s + ".json").exists():
            import json

            p = Path(s)
            p = p if p.suffix == ".json" else p.with_name(p.name + ".json")
            return json.loads(p.read_text())["architecture"]["name"] == "denoise-fusion"
        names = {m.name: m for m in list_models()}
        m = names.get(s) or names.get("denoise-" + s)
        return m is not None and m.architecture == "denoise-fusion"
    except Exception:  # unreadable: let the ordinary loader report it
        return False


def load_denoiser(spec: str | Path, **kw):
    """A saved or installed denoiser by name or path: a :class:`FusionDenoiser` when the card is a fusion
    model, else :meth:`Denoiser.pretrained` / :meth:`Denoiser.load`."""
    from .model import Denoiser

    if is_fusion_card(spec):
        s = str(spec)
        return FusionDenoiser.load(Path(s), **kw) if "/" in s or s.endswith(".json") else \
            FusionDenoiser.pretrained(s, **kw)
    return Denoiser.load(Path(spec), **kw) if "/" in str(spec) else Denoiser.pretrained(str(spec), **kw)
