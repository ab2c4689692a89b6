"""Where to image and where to condition: the sample's layout, fresh spots, and a cleanliness test.

The sample (a square of ``sample_nm``) is split into an **imaging region** (the top part, in cells of
``cell_nm``, each holding a raster of imaging frames) and a **conditioning region** (the bottom
``conditioning_fraction``), where conditioning spots are laid on a raster with ``spot_pitch_nm``
spacing so that no spot is used twice and every action's clean radius fits (DeepSPM forbids reuse).
After each conditioning action the tip images a frame beside the spot (``probe_offset_nm`` away,
clear of the crater).

A cell is abandoned when an image of it is not clean (:func:`area_clean`: contamination or step
edges), when the judge cannot read it (out of domain), or after a crash in it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AreaPlan", "Layout", "area_clean", "outlier_fraction", "step_score"]


class Layout(BaseModel):
    """Geometry of the sample as the supervisor uses it (nm)."""

    model_config = ConfigDict(extra="forbid")

    sample_nm: float = Field(3000.0, gt=0, description="side of the usable sample square (nm)")
    cell_nm: float = Field(50.0, gt=0, description="side of an imaging cell (nm)")
    frame_nm: float = Field(8.0, gt=0, description="side of an imaging frame (nm)")
    conditioning_fraction: float = Field(0.2, gt=0, lt=1, description="bottom fraction kept for conditioning")
    spot_pitch_nm: float = Field(30.0, gt=0, description="spacing of conditioning spots (nm)")
    probe_offset_nm: float = Field(14.0, ge=0, description="frame imaged after an action, this far from the spot")


def outlier_fraction(image: np.ndarray, z: float = 4.0) -> float:
    """Fraction of pixels more than ``z`` robust standard deviations (MAD) from the median."""
    a = np.asarray(image, float)
    med = np.median(a)
    mad = np.median(np.abs(a - med)) * 1.4826
    if mad <= 0:
        return 0.0
    return float(np.mean(np.abs(a - med) > z * mad))


def step_score(image: np.ndarray) -> float:
    """How step-like an X-flattened image is: the largest jump of the column-median profile of the
    line-sorted image relative to the robust spread (0 for a flat terrace, > 4 across a step edge)."""
    a = np.asarray(image, float)
    a = a - np.median(a, axis=1, keepdims=True)
    # a step crossing a line splits it into two levels: the gap between the 10th and 90th percentiles
    lo, hi = np.percentile(a, [10, 90], axis=1)
    gap = np.median(hi - lo)
    mad = np.median(np.abs(np.diff(a, axis=1))) * 1.4826 + 1e-30
    return float(gap / mad)


def area_clean(image: np.ndarray, max_outliers: float = 0.08, max_step: float = 4.0) -> bool:
    """True when an image shows a clean terrace: few outlier pixels (adsorbates, clusters) and no step."""
    return outlier_fraction(image) <= max_outliers and step_score(image) <= max_step


@dataclass
class AreaPlan:
    """The supervisor's cursor over imaging frames and conditioning spots (JSON-serialisable state).

    Attributes
    ----------
    layout : Layout
    cell : int
        Index of the current imaging cell (row-major in the imaging region).
    frame : int
        Index of the next frame inside the cell.
    spot : int
        Index of the next conditioning spot.
    bad_cells : list of int
        Cells abandoned (dirty, unreadable, crashed).
    """

    layout: Layout = field(default_factory=Layout)
    cell: int = 0
    frame: int = 0
    spot: int = 0
    bad_cells: list = field(default_factory=list)

    # ---- geometry
    @property
    def _img_h(self) -> float:
        return self.layout.sample_nm * (1 - self.layout.conditioning_fraction)

    @property
    def cells_per_row(self) -> int:
        return int(self.layout.sample_nm // self.layout.cell_nm)

    @property
    def n_cells(self) -> int:
        return self.cells_per_row * int(self._img_h // self.layout.cell_nm)

    @property
    def frames_per_side(self) -> int:
        return max(1, int(self.layout.cell_nm // (self.layout.frame_nm * 1.25)))

    @property
    def spots_per_row(self) -> int:
        return int(self.layout.sample_nm // self.layout.spot_pitch_nm)

    @property
    def n_spots(self) -> int:
        h = self.layout.sample_nm * self.layout.conditioning_fraction
        return self.spots_per_row * int(h // self.layout.spot_pitch_nm)

    def cell_of(self, xy: tuple[float, float]) -> int:
        """Imaging cell index under a point (-1 in the conditioning region)."""
        x, y = xy
        if y >= self._img_h:
            return -1
        return int(y // self.layout.cell_nm) * self.cells_per_row + int(x // self.layout.cell_nm)

    def frame_centre(self, cell: int, frame: int) -> tuple[float, float]:
        n = self.frames_per_side
        cy, cx = divmod(cell, self.cells_per_row)
        fy, fx = divmod(frame, n)
        step = self.layout.cell_nm / n
        return (cx * self.layout.cell_nm + (fx + 0.5) * step, cy * self.layout.cell_nm + (fy + 0.5) * step)

    def spot_centre(self, spot: int) -> tuple[float, float]:
        sy, sx = divmod(spot, self.spots_per_row)
        p = self.layout.spot_pitch_nm
        return ((sx + 0.5) * p, self._img_h + (sy + 0.5) * p)

    # ---- cursor
    def next_frame(self) -> tuple[float, float]:
        """Centre of the next imaging frame (skipping abandoned and finished cells)."""
        from .instrument import InstrumentError

        while True:
            if self.cell >= self.n_cells:
                raise InstrumentError("the imaging region is used up: no clean cell left")
            if self.cell in self.bad_cells or self.frame >= self.frames_per_side ** 2:
                self.cell += 1
                self.frame = 0
                continue
            c = self.frame_centre(self.cell, self.frame)
            self.frame += 1
            return c

    def abandon_cell(self, cell: int | None = None) -> None:
        """Mark a cell (default: the current one) as not to be imaged again."""
        c = self.cell if cell is None else int(cell)
        if c >= 0 and c not in self.bad_cells:
            self.bad_cells.append(c)

    def next_spot(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """A fresh conditioning spot and the centre of the frame imaged after the action there."""
        from .instrument import InstrumentError

        if self.spot >= self.n_spots:
            raise InstrumentError("the conditioning region is used up: no fresh spot left")
        s = self.spot_centre(self.spot)
        self.spot += 1
        return s, (s[0] + self.layout.probe_offset_nm, s[1])

    def to_dict(self) -> dict:
        return {"layout": self.layout.model_dump(), "cell": self.cell, "frame": self.frame, "spot": self.spot,
                "bad_cells": list(self.bad_cells)}

    @classmethod
    def from_dict(cls, d: dict) -> "AreaPlan":
        return cls(Layout(**d["layout"]), int(d["cell"]), int(d["frame"]), int(d["spot"]), list(d["bad_cells"]))
