"""Settings of the super-resolution task (pydantic; round-trip to YAML)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SuperResConfig"]


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
