"""Settings of the denoising task (pydantic; round-trip through YAML/JSON via ``model_dump``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...training.config import TrainConfig

__all__ = ["DenoiseConfig", "FitSettings", "DenoiseTrainConfig"]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DenoiseConfig(_Base):
    """The settings of a :class:`~scopenet.tasks.denoise.Denoiser`: its network and how it is applied.

    Attributes
    ----------
    arch : str
        Registered architecture (:func:`scopenet.nn.build_architecture`); default the compact U-Net.
    arch_config : dict
        Its constructor arguments.
    tile : int
        Tile side (px) for images larger than ``max_direct_pixels``.
    overlap : int
        Tile overlap (px); tile edges are discarded by the blending window.
    max_direct_pixels : int
        Images with at most this many pixels go through the network in one piece (no tiling).
    batch_size : int
        Tiles per network call.
    clip : bool
        Clip the network output to the input's [min, max] (Ede clips to [0, 1] after min-max scaling).
    normalise : {"minmax", "robust"}
        How a frame is brought to [0, 1] for the network: by its min and max (as the models trained on
        Ede's noise were), or by robust ``percentiles`` with the outliers clipped
        (:func:`scopenet.image.scaling.robust_unit_scale`: hot pixels and spikes do not squash the range).
    percentiles : (float, float)
        The robust percentiles.
    """

    arch: str = "denoise-compact"
    arch_config: dict[str, Any] = Field(default_factory=dict)
    tile: int = Field(512, ge=16)
    overlap: int = Field(64, ge=0)
    max_direct_pixels: int = Field(1024 * 1024, ge=1)
    batch_size: int = Field(1, ge=1)
    clip: bool = True
    normalise: Literal["minmax", "robust"] = "minmax"
    percentiles: tuple[float, float] = (0.1, 99.9)


class FitSettings(_Base):
    """Fine-tuning settings for :meth:`Denoiser.fit`.

    Attributes
    ----------
    steps : int
        Optimiser steps.
    batch_size : int
    crop_size : int
        Side of the random training crops, px.
    lr : float
        Adam learning rate (beta1 = 0.5 as in Ede ch. 6).
    high_dose_fraction : float
        Supervised mode without targets: fraction of pairs with Ede's high-dose noise (else low dose).
    n2v_fraction : float
        Noise2Void: fraction of pixels of each crop masked (blind spots).
    n2v_radius : int
        Noise2Void: a masked pixel takes the value of a random other pixel within this radius.
    n2v_struct : int
        Structured Noise2Void (Broaddus et al. 2020): also mask this many pixels on each side of a blind
        spot along the scan line (0: plain N2V). Removes noise correlated along lines (row-line noise,
        fast-scan lag), which plain N2V learns to reproduce.
    n2v_struct_axis : {"x", "y"}
        The axis of the structured mask (``"x"``: along rows, the fast-scan direction).
    n2v_sampling : {"n2v2", "uniform"}
        Replacement values: ``"n2v2"`` (Hoeck et al. 2022) the median of the neighbourhood without the
        blind spot, which avoids checkerboard artefacts; ``"uniform"`` a random neighbour (Krull et al.).
    seed : int
    """

    steps: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1)
    crop_size: int = Field(64, ge=8)
    lr: float = Field(2e-4, gt=0)
    high_dose_fraction: float = Field(0.5, ge=0, le=1)
    n2v_fraction: float = Field(0.02, gt=0, lt=0.5)
    n2v_radius: int = Field(2, ge=1)
    n2v_struct: int = Field(0, ge=0)
    n2v_struct_axis: Literal["x", "y"] = "x"
    n2v_sampling: Literal["n2v2", "uniform"] = "n2v2"
    seed: int = 0
    mode: Literal["supervised", "n2n", "n2v"] = "supervised"


# ------------------------------------------------------------------------------ training (scopenet train)
class DenoiseTrainConfig(TrainConfig):
    """One denoising training run (``scopenet train denoise``) or fine-tuning (``Denoiser.fit``).

    Without user data the pairs are made from a pool of clean images (simulated STEM/HRTEM/mesoscale
    micrographs and the em-real train split) with Ede's dose noise; ``Denoiser.fit`` trains on the user's
    images in ``mode`` supervised, Noise2Noise or Noise2Void. Loss: Ede's Huberised ``1000 * MSE``; Adam;
    the learning rate follows a cosine from ``lr`` to ``lr * lr_final_fraction`` over the budget
    (``max_steps`` or ``time_budget_s``, whichever ends first).

    Attributes
    ----------
    architecture, arch_config : str, dict
        The network (:func:`scopenet.nn.build_architecture`).
    crop_size, batch_size : int
        Training crops (px) and crops per step.
    lr, betas, weight_decay, lr_final_fraction : Adam and its cosine schedule.
    max_steps, time_budget_s : the budget (steps, seconds of training; None: no time limit).
    n_sim_per_kind, sim_size, use_real : the pool (simulated images of each kind, their side, em-real).
    real_fraction, high_dose_fraction, bin_real_fraction : how a pair is drawn from the pool: a real image
        (else simulated), the high-dose regime (else low dose), a 2x2-binned real image.
    mode : {"supervised", "n2n", "n2v"}
        ``Denoiser.fit`` on user images: clean images (or noisy/target pairs), Noise2Noise, Noise2Void.
    n2v_fraction, n2v_radius : Noise2Void blind spots (fraction of pixels, neighbourhood radius).
    n2v_struct, n2v_struct_axis, n2v_sampling : structured N2V and the replacement rule (:class:`FitSettings`).
    degradation : {"ede", "physical", "mixed"}
        How training pairs are made from clean crops: Ede's dose noise, the physical model of
        :mod:`scopenet.simulate.em.degrade` (random TEM/STEM/SEM acquisitions), or a mix with
        ``physical_fraction`` physical pairs.
    zoom_range : (float, float)
        Random pixel sampling: clean crops are resampled by a log-uniform zoom in this range (the same
        lattice at other px per period); ``(1, 1)`` off.
    normalise, percentiles : how inputs are scaled to [0, 1] (as :class:`DenoiseConfig`, written to the card).
    """

    task: Literal["denoise"] = "denoise"
    workdir: Path | None = Path("runs/denoise-default")
    architecture: str = "denoise-compact"
    arch_config: dict[str, Any] = Field(default_factory=lambda: {"widths": [24, 48, 96], "residual": True})
    crop_size: int = Field(96, ge=8)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    lr_final_fraction: float = Field(0.02, ge=0, le=1)
    max_steps: int = Field(100_000, ge=1)
    time_budget_s: float | None = Field(38 * 60.0, gt=0)
    checkpoint_every_n_steps: int | None = Field(50, ge=1)
    checkpoint_every_s: float | None = Field(None, gt=0)
    threads: int = Field(1, ge=1)
    n_sim_per_kind: int = Field(48, ge=1)
    sim_size: int = Field(256, ge=16)
    use_real: bool = True
    real_fraction: float = Field(0.5, ge=0, le=1)
    high_dose_fraction: float = Field(0.5, ge=0, le=1)
    bin_real_fraction: float = Field(0.5, ge=0, le=1)
    mode: Literal["supervised", "n2n", "n2v"] = "supervised"
    n2v_fraction: float = Field(0.02, gt=0, lt=0.5)
    n2v_radius: int = Field(2, ge=1)
    n2v_struct: int = Field(0, ge=0)
    n2v_struct_axis: Literal["x", "y"] = "x"
    n2v_sampling: Literal["n2v2", "uniform"] = "n2v2"
    degradation: Literal["ede", "physical", "mixed"] = "ede"
    physical_fraction: float = Field(0.7, ge=0, le=1)
    zoom_range: tuple[float, float] = (1.0, 1.0)
    normalise: Literal["minmax", "robust"] = "minmax"
    percentiles: tuple[float, float] = (0.1, 99.9)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data):
        """Migrate the nested layout of runs made before the typed configuration (``name``/``out_dir``,
        ``model``, ``data``, ``optim``, ``trainer`` and a free ``extra``), as in the shipped cards' ``config``."""
        if not isinstance(data, dict) or not ({"model", "data", "optim", "trainer", "extra", "out_dir", "name"}
                                              & data.keys()):
            return data
        d = dict(data)
        out: dict[str, Any] = {}
        if "out_dir" in d or "name" in d:
            out["workdir"] = str(Path(d.pop("out_dir", "runs")) / d.pop("name", "run"))
        model = d.pop("model", None)
        if isinstance(model, dict):
            model = dict(model)
            if "name" in model:
                out["architecture"] = model.pop("name")
            if "config" in model:
                out["arch_config"] = model.pop("config")
            out.update({f"model.{k}": v for k, v in model.items()})  # left over: reported as unknown keys
        data_ = dict(d.pop("data", None) or {})
        for k in ("crop_size", "batch_size", "num_workers"):
            if k in data_:
                out[k] = data_.pop(k)
        for k in ("samples_per_image", "augment", "normalise", "split", "split_seed", "group_key"):
            data_.pop(k, None)  # settings of the old epoch engine, unused by denoising runs
        out.update({f"data.{k}": v for k, v in data_.items()})
        optim = dict(d.pop("optim", None) or {})
        for k in ("lr", "betas", "weight_decay"):
            if k in optim:
                out[k] = optim.pop(k)
        if optim.pop("optimizer", "adam") != "adam" or optim.pop("schedule", "none") != "none" \
                or optim.pop("clipper", None) is not None:
            raise ValueError("legacy denoising configurations train with Adam, no schedule and no clipper")
        for k in ("schedule_params", "clipper_params"):
            optim.pop(k, None)
        out.update({f"optim.{k}": v for k, v in optim.items()})
        trainer = dict(d.pop("trainer", None) or {})
        for k in ("max_steps", "precision", "accelerator", "devices", "strategy", "checkpoint_every_n_steps",
                  "seed", "log_every"):
            if k in trainer:
                out[k] = trainer.pop(k)
        for k in ("max_epochs", "num_nodes", "accumulate", "early_stopping_patience", "deterministic"):
            trainer.pop(k, None)
        out.update({f"trainer.{k}": v for k, v in trainer.items()})
        extra = dict(d.pop("extra", None) or {})
        rename = {"time_budget_min": None, "min_lr_fraction": "lr_final_fraction", "init_weights": "init_from"}
        for k, v in extra.items():
            if k == "time_budget_min":
                out["time_budget_s"] = None if v is None else float(v) * 60.0
            else:
                out[rename.get(k) or k] = v
        out.update(d)  # task and anything else, validated as usual
        return out
