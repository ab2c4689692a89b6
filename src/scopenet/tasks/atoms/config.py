"""Settings of the atom-finding task (pydantic; round-trip to YAML)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...training.config import TrainConfig

__all__ = ["AtomsConfig", "AtomsTrainConfig"]


class AtomsConfig(BaseModel):
    """The settings of an :class:`~scopenet.tasks.atoms.AtomFinder`: its network, how its heatmap becomes
    peaks, how peaks are refined, classified and given an uncertainty, and how large images are tiled.

    Attributes
    ----------
    arch, arch_config : str, dict
        The network (:func:`scopenet.nn.build_architecture`): a U-Net mapping the normalised image to
        one heatmap channel (logits of a Gaussian of peak 1 at every atom).
    threshold : float
        Smallest heatmap value (0-1) of a peak that counts as an atom by itself.
    faint_threshold : float or None
        Peaks between this and ``threshold`` count as atoms where the lattice of the confident peaks repeats
        them: another peak one lattice vector away (a faint sublattice, faint columns on a strong support,
        columns at the border), unlike the bumps of an amorphous support. None: ``threshold`` alone.
    faint_partners : int
        How many of the four lattice-vector neighbours (``+-a1``, ``+-a2``) a faint peak needs (2: an edge
        column of a faint sublattice still has 3).
    faint_reach : float or None
        A faint peak farther than this many nearest-neighbour distances from every confident peak is
        dropped, however many partners it has (bumps of a support around a particle support each other
        by chance; a faint column sits within a cell of a confident one). None: no such rule.
    min_distance : int
        Smallest distance between two peaks, px (before refinement).
    pad : int
        The normalised image is mirrored (reflect) this many px on every side before the network and the
        heatmap cropped back, so the columns at the border see neighbours as the inner ones do (without it
        the network's zero padding leaves them faint in the heatmap). 0 turns it off.
    adaptive_distance : bool
        Raise ``min_distance`` to 0.35 x the heatmap's repeat distance (its autocorrelation), so a large
        column gives one peak; refined atoms closer than 0.3 x that distance are merged.
    merge_width : float
        Refined atoms closer than this many fitted column widths (the median Gaussian sigma) are merged
        (the more confident kept): such columns are not resolved. 0 turns it off.
    edge_margin : float
        Atoms refined within this many px of the first or last pixel centre are not reported (a column cut by
        the border, its centre outside, is mirrored by ``pad`` into a peak at the edge).
    edge_fit_px : float or None
        Atoms within this many px of the border whose Gaussian fit failed are not reported: the fit of a
        column whose centre lies outside leaves the image, and the heatmap's peak at the edge would stand in
        for it. None: kept (with the heatmap's position). Gaussian refinement only.
    residual_contrast : float or None
        A second look for columns the heatmap missed (a faint column on the shoulder of a bright one's heatmap
        blob): maxima of the image less the fitted atoms (:func:`~.postprocess.residual_columns`) at least this
        fraction of the atoms' median peak, significant and repeated by the lattice, are added and all refitted.
        None: no second look. Gaussian refinement only.
    residual_significance : float
        ... and at least this many times the filtered remainder's noise.
    residual_min_share : float
        The second look adds its columns only when they are at least this share of the atoms found (a missed
        sublattice is many columns; a few maxima are noise or support).
    residual_min_distance : float
        ... and only maxima at least this many nearest-neighbour distances from every atom,
    residual_min_widths : float
        ... and at least this many fitted column widths (Gaussian sigma).
    refine : {"gaussian", "com", "heatmap", "none"}
        Sub-pixel refinement: 2-D Gaussians fitted to the image jointly, each column's neighbours
        subtracted (:func:`~scopenet.tasks.atoms.postprocess.refine_gaussian`), the image's centre of
        mass, the centroid of the heatmap, or the pixel. Only ``"gaussian"`` gives an uncertainty
        (``sigma_px``, NaN otherwise); the others are faster.
    windows, window_thresholds : list of float
        The fit window (in column widths) of the joint passes after the first: ``windows[i]``, ``i`` the
        number of ``window_thresholds`` at or below the ratio of the structured background's position error
        to the noise's after the first pass (:func:`~scopenet.tasks.atoms.postprocess.refine_gaussian`;
        chosen on the training crystals: 2.5 widths below 0.5, 2 up to 1.2, 1.25 above). ``windows=None``:
        the older rule, 1.25 widths when the first pass's median Cramér-Rao bound is below 0.065 px.
    structured_locked : bool
        The structured background (the window rule's ratio and the uncertainty's background term) leaves out
        what repeats at every column of a class (:func:`~scopenet.tasks.atoms.postprocess.structured_sd`): a
        probe's tails and rings, faint columns at fixed places in the cell. False: everything left between
        the columns counts (version 4 and before).
    refine_radius : float or None
        Radius of the first, one-column-at-a-time fits (which give the shared column width) and of the
        centre-of-mass window, px (None: 0.45 x the median nearest-neighbour distance,
        between 1.5 and 12 px).
    sigma_scale : float
        Calibration factor applied to the least-squares position uncertainty of the Gaussian fit
        (measured on simulated training-setting images, :func:`~scopenet.tasks.atoms.train.calibrate`).
    sigma_floor_px : float
        Smallest reported uncertainty, px (covers model mismatch at very high dose).
    background_gain : float
        The position error a structured background adds (an amorphous support, contamination; its
        standard deviation ``s`` measured between the columns, :func:`~scopenet.tasks.atoms.postprocess.structured_sd`)
        is ``background_gain * s / amplitude * width`` px per axis, added in quadrature to the fit's
        calibrated Cramér-Rao bound (calibrated together with ``sigma_scale``).
    mismatch_fraction : float
        A third term of the uncertainty, in quadrature: ``mismatch_fraction`` x the fitted column width, px
        (what the Gaussian model misses: the tails of columns too faint to find, the scan's line jitter
        blurring a column's shape; calibrated with ``sigma_scale``).
    mismatch_fraction_small : float or None
        ``mismatch_fraction`` for the fits that used the adaptive small window. None: the usual one.
    background_gain_small, sigma_scale_small : float or None
        ``background_gain`` and ``sigma_scale`` for the fits that used the adaptive small window (little
        noise; see :func:`~scopenet.tasks.atoms.postprocess.refine_gaussian`), which a structured
        background moves less (calibrated separately). None: the usual ones.
    level_topographs : bool
        A scanning-probe height image given as a Micrograph (STM/AFM modality, values in a length unit, as
        :func:`scopenet.read` gives an SPM file's topography) is levelled first (:func:`scopenet.flatten`, method
        auto: scan lines aligned, then a robust plane), as SPM software does before any analysis: a raw
        topograph's tilt is far larger than an atom's corrugation. Plain arrays are taken as they are.
    dark_columns : bool
        The columns are dark on a bright background (bright-field or annular bright-field STEM, an HRTEM
        image at a defocus that shows atoms dark): the image is turned over (its maximum minus it) before the
        network and the fit, and the fit weighs its pixels uniformly (the turned image's noise does not grow
        with its values). ``intensity`` is then the depth of each column's dip. An image of dark columns found
        without it is flagged (the network marks the gaps between them).
    lattice_prior : bool
        Combine each fitted position with the prediction of its same-class neighbours (the midpoints of
        the neighbour pairs that bracket it; exact for a uniformly strained lattice) by inverse variance,
        the prediction's variance including the per-column displacements the data show nearby
        (:func:`~scopenet.tasks.atoms.postprocess.lattice_prior`): below the error of a fit of one
        column on a regular lattice, while strain, rotation, shifted sublattices or regions and
        displacements beyond ``prior_gate`` sigma are kept; a real displacement of a single column within
        a few sigma is shrunk with the noise. Gaussian refinement only.
    prior_gate : float
        Atoms whose distance from the lattice's prediction exceeds this many standard deviations are kept
        as measured.
    prior_sigma_scale : float
        Calibration factor of the combined uncertainty (``sigma_px`` with the lattice prior).
    n_classes : int or None
        Column classes by intensity (k-means); None chooses 1-3 by the separation of the intensities.
    tile, overlap, max_direct_pixels : int
        Images with more than ``max_direct_pixels`` pixels go through the network in ``tile`` px tiles.
    ood_confidence : float
        The out-of-distribution flag is raised when the median peak confidence falls below this.
    ood_lattice : float
        ... or when the share of the atoms' neighbour vectors that fall in a sharp mode
        (:func:`~.postprocess.lattice_share`) is below this: peaks on noise, a texture or an amorphous
        support do not form a lattice. 0 turns the check off.
    bin_above_px : float or None
        When the image's repeat distance (its autocorrelation, :func:`~.postprocess.estimate_spacing`) is
        above this, the network sees the image binned 2 x 2 and its heatmap is interpolated back (the
        refinement still fits the full image): wide columns in real images, smeared along the scan and under
        a thick background, break into several peaks at full size, and the binning halves their width and
        the noise. None: never.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    arch: str = "unet"
    arch_config: dict = Field(default_factory=lambda: {"in_channels": 1, "out_channels": 1, "depth": 4,
                                                       "base_channels": 8, "norm": "none"})
    threshold: float = Field(0.4, gt=0, lt=1)
    faint_threshold: float | None = Field(None, gt=0, lt=1)
    faint_partners: int = Field(2, ge=1, le=4)
    faint_reach: float | None = Field(None, gt=0)
    min_distance: int = Field(2, ge=1)
    pad: int = Field(16, ge=0)
    adaptive_distance: bool = True
    merge_width: float = Field(1.0, ge=0)
    edge_margin: float = Field(0.25, ge=-0.5, le=2.0)
    edge_fit_px: float | None = Field(None, gt=0)
    residual_contrast: float | None = Field(None, gt=0)
    residual_significance: float = Field(5.0, gt=0)
    residual_min_share: float = Field(0.0, ge=0, le=1)
    residual_min_distance: float = Field(0.3, ge=0, le=1)
    residual_min_widths: float = Field(2.0, ge=0)
    refine: Literal["gaussian", "com", "heatmap", "none"] = "gaussian"
    windows: list[float] | None = Field(default_factory=lambda: [2.5, 2.0, 1.25])
    structured_locked: bool = True
    window_thresholds: list[float] = Field(default_factory=lambda: [0.5, 1.2])
    refine_radius: float | None = Field(None, gt=0)
    sigma_scale: float = Field(1.0, gt=0)
    sigma_floor_px: float = Field(0.005, ge=0)
    background_gain: float = Field(1.2, ge=0)
    background_gain_small: float | None = Field(None, ge=0)
    sigma_scale_small: float | None = Field(None, gt=0)
    mismatch_fraction: float = Field(0.0, ge=0)
    mismatch_fraction_small: float | None = Field(None, ge=0)
    level_topographs: bool = True
    dark_columns: bool = False
    lattice_prior: bool = False
    prior_gate: float = Field(3.0, gt=0)
    prior_sigma_scale: float = Field(1.0, gt=0)
    n_classes: int | None = Field(None, ge=1, le=8)
    tile: int = Field(1024, ge=32)
    overlap: int = Field(32, ge=0)
    max_direct_pixels: int = Field(2048 * 2048, ge=1)
    ood_confidence: float = Field(0.6, ge=0, le=1)
    ood_lattice: float = Field(0.0, ge=0, le=1)
    bin_above_px: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check_windows(self):
        if self.windows is not None:
            if len(self.windows) != len(self.window_thresholds) + 1:
                raise ValueError(f"windows needs one entry more than window_thresholds, got {len(self.windows)} "
                                 f"and {len(self.window_thresholds)}")
            if min(self.windows) <= 0:
                raise ValueError("windows must be positive")
        if list(self.window_thresholds) != sorted(self.window_thresholds):
            raise ValueError("window_thresholds must increase")
        return self


# ------------------------------------------------------------------------------ training (scripts/train_atoms.py)
class AtomsTrainConfig(TrainConfig):
    """One training run of an atom finder (``scripts/train_atoms.py``) or ``AtomFinder.fit``.

    Batches of ``patch`` px images are simulated on the fly (:func:`scopenet.simulate.em.atoms.atom_image`
    on the ``train`` structures, a fraction ``spm_fraction`` from
    :func:`~scopenet.simulate.em.atoms.spm_atom_image`) with their target heatmaps; the loss is the binary
    cross-entropy of the heatmap logits, the rate a cosine from ``lr`` to ``lr * lr_final_fraction``.

    Attributes
    ----------
    depth, base_channels : int
        The U-Net (no normalisation layers, so a single tile or a whole image gives the same result).
    spm_fraction : float
        Share of SPM-like surfaces in a batch.
    sigma_frac : (float, float) or None
        Range of the column width as a fraction of the smallest spacing, drawn uniformly per image
        (None: the simulator's default, 0.12-0.28). Dumbbells under a wide probe are wider than 0.28.
    sigma_frac_p : float
        Share of the STEM images whose width is drawn from ``sigma_frac``; the others use the simulator's
        default range (1: all of them). A mixture keeps the default widths' precision while the network
        learns wider columns.
    detector_p : float
        Share of the STEM images given a random detector and scan-electronics model
        (:func:`~scopenet.simulate.em.atoms.detector_noise`: fast-scan smear, line flicker, read noise), as
        real ADF images at short dwell times show (0: shot noise only, as ``atoms-default`` v1 was trained).
    support_max : float or None
        Amorphous support amplitude drawn uniformly from 0 to this (x a column's peak) for the STEM images
        (None: the simulator's default, 0-0.15; ``atoms-default`` v1 was trained when that default was 0-0.3).
    """

    task: Literal["atoms"] = "atoms"
    workdir: Path | None = Path("runs/atoms")
    depth: int = Field(4, ge=1)
    base_channels: int = Field(8, ge=1)
    batch_size: int = Field(8, ge=1)
    patch: int = Field(128, ge=16)
    spm_fraction: float = Field(0.15, ge=0, le=1)
    sigma_frac: tuple[float, float] | None = None
    sigma_frac_p: float = Field(1.0, ge=0, le=1)
    detector_p: float = Field(0.0, ge=0, le=1)
    support_max: float | None = Field(None, ge=0, le=1)
    lr: float = Field(2e-3, gt=0)
    lr_final_fraction: float = Field(0.05, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)
    max_steps: int = Field(100_000, ge=1)
    time_budget_s: float | None = Field(2400.0, gt=0)
    checkpoint_every_n_steps: int | None = Field(100, ge=1)
    checkpoint_every_s: float | None = Field(None, gt=0)
    threads: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _width_range(self):
        if self.sigma_frac is not None:
            lo, hi = self.sigma_frac
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(f"sigma_frac must be (lo, hi) with 0 < lo <= hi <= 1, got {self.sigma_frac}")
        return self
