"""Settings of particle tracking (pydantic; round-trip to YAML)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrackConfig"]


class TrackConfig(BaseModel):
    """How :func:`~scopenet.tasks.track.track` finds, corrects and links particles.

    Attributes
    ----------
    diameter : int
        Feature size for trackpy's locator (odd, px; a little larger than the spots).
    minmass : float or None
        Smallest integrated brightness of a feature (trackpy's ``minmass``); None: found automatically,
        Otsu's split of the log-masses of the features of the first frames.
    bright : bool
        Particles brighter than the background (False: dark particles, the frames are inverted).
    detector : {"trackpy", "segment"}
        Spots by trackpy's centroid locator, or regions of a segmentation model (their centroids).
    model : str
        The segmentation model for ``detector="segment"``.
    search_range : float
        Largest displacement between linked frames (px, after drift correction).
    memory : int
        Frames a particle may vanish and still keep its identity.
    drift : {"first", "previous", "none"}
        Phase correlation of each frame with the first frame, or with the previous one (accumulated; for
        content that changes a lot), or no drift correction.
    highpass : float
        Sigma (px) of the Gaussian blur subtracted before the phase correlation (0: none).
    max_drift_step : float
        Largest change of the drift between frames (px); the correlation peak is sought that close to the
        previous frame's drift.
    upsample : int
        Sub-pixel precision of the phase correlation (1 / ``upsample`` px).
    min_length : int
        Tracks with fewer frames are dropped.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    diameter: int = Field(7, ge=3)
    minmass: float | None = Field(None, ge=0)
    bright: bool = True
    detector: Literal["trackpy", "segment"] = "trackpy"
    model: str = "segment-particles"
    search_range: float = Field(5.0, gt=0)
    memory: int = Field(2, ge=0)
    drift: Literal["first", "previous", "none"] = "first"
    highpass: float = Field(1.0, ge=0)
    max_drift_step: float = Field(8.0, gt=0)
    upsample: int = Field(100, ge=1)
    min_length: int = Field(2, ge=1)
