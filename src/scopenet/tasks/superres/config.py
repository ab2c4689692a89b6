"""Settings of the super-resolution task (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...training.config import TrainConfig

__all__ = ["SuperResConfig", "SuperResTrainConfig"]


class SuperResConfig(BaseModel):
    """The settings of a :class:`~scopenet.tasks.superres.SuperResolver`: its network, how coarse scans
    sample the fine grid, and how large images are tiled.

    Attributes
    ----------
    arch, arch_config : str, dict
        The network (:func:`scopenet.nn.build_architecture`; default an untrained VDSR, which returns the
        bicubic upsample exactly).
    sampling : {"block_mean", "decimate"}
        Block means (SPM: the tip integrates over its footprint) or every ``factor``-th probe position
        (STEM sub-lattice scans, ``coarse = fine[::f, ::f]``; the output keeps the measured samples).
    factor : int
        The default upsampling factor of :meth:`~scopenet.tasks.superres.SuperResolver.predict`.
    tile, overlap, max_direct_pixels : int
        Fine images with more than ``max_direct_pixels`` pixels go through the network in tiles.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    arch: str = "superres-vdsr"
    arch_config: dict = Field(default_factory=dict)
    sampling: Literal["block_mean", "decimate"] = "block_mean"
    factor: int = Field(4, ge=2, le=8)
    tile: int = Field(512, ge=16)
    overlap: int = Field(32, ge=0)
    max_direct_pixels: int = Field(2048 * 2048, ge=1)


# ------------------------------------------------------------------------------ training (scopenet train)
class SuperResTrainConfig(TrainConfig):
    """One training run of a super-resolution model (``scopenet train superres``) or ``SuperResolver.fit``.

    A VDSR-style network (``layers`` 3x3 convolutions of ``channels``) learns the residual between the
    bicubic upsample of a coarse scan and the fine one, on ``patch`` px fine patches each scaled to
    [0, 1], at a factor drawn from ``factors`` per step. Loss: MSE; Adam at ``lr`` following a cosine to
    ``lr * lr_final_fraction`` over the budget (1.0, the shipped models' recipe: a constant rate);
    gradients clipped to norm ``grad_clip``.

    Attributes
    ----------
    domain : {"spm", "stem"}
        The training images of ``scopenet train superres``: ``spm`` simulated SPM images (seed 1, 128 px)
        plus ``n_real`` gordon-hsi STM images from sessions outside the benchmark's held-out fold, coarse
        scans by block means; ``stem`` simulated EM micrographs (seed 11, 256 px) plus 256 px tiles of the
        em-real train split, coarse scans by decimation ``fine[::f, ::f]`` (STEM sub-lattice scans).
    sampling : {"block_mean", "decimate"} or None
        How the coarse scan samples the fine grid; None: by domain (block_mean for spm, decimate for stem).
    n_sim, n_real : int or None
        Simulated and real training images (None: 1200 spm / 600 stem simulated, 400 real).
    """

    task: Literal["superres"] = "superres"
    workdir: Path | None = Path("runs/superres")
    domain: Literal["spm", "stem"] = "spm"
    sampling: Literal["block_mean", "decimate"] | None = None
    layers: int = Field(8, ge=1)
    channels: int = Field(32, ge=1)
    factors: list[int] = Field(default_factory=lambda: [2, 4], min_length=1)
    batch_size: int = Field(16, ge=1)
    patch: int | None = Field(None, ge=8, description="fine patch px (None: 64 spm, 96 stem)")
    lr: float = Field(1e-3, gt=0)
    lr_final_fraction: float = Field(1.0, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)
    max_steps: int = Field(100_000, ge=1)
    time_budget_s: float | None = Field(840.0, gt=0)
    checkpoint_every_n_steps: int | None = Field(100, ge=1)
    checkpoint_every_s: float | None = Field(None, gt=0)
    threads: int = Field(1, ge=1)
    n_sim: int | None = Field(None, ge=0)
    n_real: int = Field(400, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data):
        """Migrate the free ``config`` dict of cards written by ``scripts/train_superres.py`` (``batch``,
        ``steps`` done, a ``loss`` description)."""
        if not isinstance(data, dict) or not {"batch", "loss", "steps"} & data.keys():
            return data
        d = dict(data)
        if "batch" in d:
            d["batch_size"] = d.pop("batch")
        if "steps" in d:
            d["max_steps"] = d.pop("steps")
        loss = d.pop("loss", None)
        if loss is not None and not str(loss).startswith("MSE"):
            raise ValueError(f"super-resolution runs train with the MSE, not {loss!r}")
        return d

    @model_validator(mode="after")
    def _patch_fits(self):
        import math

        if any(not 2 <= f <= 8 for f in self.factors):
            raise ValueError(f"factors must be integers from 2 to 8, got {self.factors}")
        lcm = math.lcm(*self.factors)
        if self.patch is not None and self.patch % lcm:
            raise ValueError(f"patch {self.patch} must be a multiple of every factor {self.factors}")
        return self

    @property
    def sampling_(self) -> str:
        """The sampling in effect (``sampling`` or the domain's)."""
        return self.sampling or ("decimate" if self.domain == "stem" else "block_mean")

    @property
    def patch_(self) -> int:
        """The patch in effect (``patch`` or the domain's)."""
        return self.patch or (96 if self.domain == "stem" else 64)
