"""Settings of the segmentation task (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...training.config import TrainConfig

__all__ = ["SegmentConfig", "SegmentTrainConfig"]


class SegmentConfig(BaseModel):
    """The settings of a :class:`~scopenet.tasks.segment.Segmenter`: the classes, the U-Net, the ensemble,
    the intensity scaling and the tiling of large images.

    Attributes
    ----------
    classes : list of str
        Class names; class 0 is the background. Masks hold the class index of each pixel.
    unet : dict
        Settings of each :class:`~scopenet.nn.seg_unet.SegUNet` (``depth``, ``base_channels``,
        ``dilation``, ``norm``, ``dropout``); ``n_classes`` follows ``classes``. Filled with every
        default when the estimator is built.
    ensemble : int
        Independently trained networks whose probabilities are averaged; their spread is the per-pixel
        uncertainty (:meth:`~scopenet.tasks.segment.Segmenter.predict_uncertainty`).
    percentiles : (float, float)
        Each image is scaled so these intensity percentiles map to 0 and 1 (robust to hot pixels).
    tile, overlap, max_direct_pixels : int
        Images with more than ``max_direct_pixels`` pixels go through the network in ``tile`` px tiles.
    threshold : float
        Binary models: a pixel is foreground when its foreground probability exceeds this.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    classes: list[str] = Field(default_factory=lambda: ["background", "particle"], min_length=2)
    unet: dict = Field(default_factory=dict)
    ensemble: int = Field(1, ge=1, le=16)
    percentiles: tuple[float, float] = (0.5, 99.5)
    tile: int = Field(256, ge=16)
    overlap: int = Field(32, ge=0)
    max_direct_pixels: int = Field(512 * 512, ge=1)
    threshold: float = Field(0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _check(self):
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        if self.overlap >= self.tile:
            raise ValueError(f"overlap {self.overlap} must be smaller than tile {self.tile}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"class names must be distinct, got {self.classes}")
        return self


class SegmentTrainConfig(TrainConfig):
    """One training run of a segmentation model (``scopenet train segment``) or ``Segmenter.fit``.

    A :class:`~scopenet.nn.seg_unet.SegUNet` learns per-pixel classes on random ``patch`` px crops
    (flipped and rotated by multiples of 90 degrees), each image scaled by its intensity percentiles.
    Loss: cross-entropy plus the soft Dice loss of the non-background classes; Adam at ``lr`` following a
    cosine to ``lr * lr_final_fraction`` over the budget; gradients clipped to norm ``grad_clip``.

    Attributes
    ----------
    images, masks : Path or None
        Folders of the user's images and label images (paired by file name; any format scopenet
        reads). None: simulated particle micrographs (:mod:`scopenet.simulate.em.particle_data`).
    classes : list of str
        Class names, background first (the masks' values are class indices; with two classes any
        non-zero value is foreground).
    n_sim, sim_size, sim_setting, sim_seed : simulated training data (when ``images`` is None).
    depth, base_channels, dilation, norm, dropout : the network.
    ensemble : int
        Networks trained one after the other (seeds ``seed``, ``seed + 1``...), each for the budget
        divided by ``ensemble``.
    """

    task: Literal["segment"] = "segment"
    workdir: Path | None = Path("runs/segment")
    images: Path | None = None
    masks: Path | None = None
    classes: list[str] = Field(default_factory=lambda: ["background", "particle"], min_length=2)
    n_sim: int = Field(400, ge=1)
    sim_size: int = Field(256, ge=32)
    sim_setting: Literal["train", "heldout"] = "train"
    sim_seed: int = 0
    depth: int = Field(3, ge=0)
    base_channels: int = Field(16, ge=1)
    dilation: list[int] = Field(default_factory=lambda: [1, 2, 4], min_length=1)
    norm: Literal["none", "batch", "group", "instance"] = "group"
    dropout: float = Field(0.0, ge=0, lt=1)
    ensemble: int = Field(1, ge=1, le=16)
    batch_size: int = Field(8, ge=1)
    patch: int = Field(128, ge=16)
    lr: float = Field(1e-3, gt=0)
    lr_final_fraction: float = Field(0.1, ge=0, le=1)
    dice_weight: float = Field(1.0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    percentiles: tuple[float, float] = (0.5, 99.5)
    max_steps: int = Field(100_000, ge=1)
    time_budget_s: float | None = Field(2400.0, gt=0)
    checkpoint_every_n_steps: int | None = Field(100, ge=1)
    checkpoint_every_s: float | None = Field(None, gt=0)
    threads: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _paired(self):
        if (self.images is None) != (self.masks is None):
            raise ValueError("give both images and masks (folders), or neither (simulated particles)")
        return self

    @property
    def unet(self) -> dict:
        """The network settings as :class:`~scopenet.tasks.segment.SegmentConfig` ``unet``."""
        return dict(depth=self.depth, base_channels=self.base_channels, dilation=list(self.dilation),
                    norm=self.norm, dropout=self.dropout, n_classes=len(self.classes))
