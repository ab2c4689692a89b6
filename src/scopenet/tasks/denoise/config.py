"""Settings of the denoising task (pydantic; round-trip through YAML/JSON via ``model_dump``)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DenoiseConfig", "FitSettings"]


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
    """

    arch: str = "denoise-compact"
    arch_config: dict[str, Any] = Field(default_factory=dict)
    tile: int = Field(512, ge=16)
    overlap: int = Field(64, ge=0)
    max_direct_pixels: int = Field(1024 * 1024, ge=1)
    batch_size: int = Field(1, ge=1)
    clip: bool = True


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
    seed : int
    """

    steps: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1)
    crop_size: int = Field(64, ge=8)
    lr: float = Field(2e-4, gt=0)
    high_dose_fraction: float = Field(0.5, ge=0, le=1)
    n2v_fraction: float = Field(0.02, gt=0, lt=0.5)
    n2v_radius: int = Field(2, ge=1)
    seed: int = 0
    mode: Literal["supervised", "n2n", "n2v"] = "supervised"
