"""Training and test images for atom finding, with exact ground-truth column positions.

Two sources, both returning an :class:`AtomImage`:

- :func:`atom_image`: HAADF-STEM columns of a crystal from :func:`~.lattice.structure_library` (several
  structures and zone axes, cut by :func:`~.lattice.random_columns`: vacancies, dopants, particles and
  bicrystals), rendered as Gaussians whose width is a fraction of the column spacing, on an amorphous
  support; the species of a sublattice may be made brighter or darker; scan distortion (linear drift,
  a slow sinusoidal line shift and per-line jitter); Poisson noise at a peak dose of 10-1000 counts.
- :func:`spm_atom_image`: an STM/AFM-like atomic surface: a square or hexagonal lattice of bumps
  (one or two sublattices) on a rough, tilted and stepped background, blurred by the tip, with scan-line
  offsets and Gaussian noise.

Ground truth is exact: every column is rendered at its own continuous position, including the scan
distortion. A line jitter shifts each pixel row ``r`` of the image by ``j[r]`` px along x; a column's
recorded position is then the centroid of its jittered profile, ``x + sum_r g(r) j[r] / sum_r g(r)``
(``g`` its Gaussian profile along y), which is what :attr:`AtomImage.atoms` holds.

Pixel convention (as :mod:`.lattice`): pixel ``(i, j)`` is the value at ``(row=i, col=j)``; positions
are ``(row, col)`` px with pixel centres at integers.

The structures are split into a training set and a held-out set (:data:`HELD_OUT_STRUCTURES`), so a
benchmark can measure a model on crystals it never saw.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from .lattice import (ProjectedCell, accumulate_patches, gaussian_random_field, patch_indices, patch_radius,
                      random_columns, render_gaussians, structure_library)

__all__ = ["AtomImage", "HELD_OUT_STRUCTURES", "SPACING_RANGE", "DOSE_RANGE", "VISIBLE_FRACTION", "atom_image", "spm_atom_image",
           "structures", "heatmap", "render_columns"]

#: crystals never used for training (the atom-finding benchmark's held-out structures)
HELD_OUT_STRUCTURES = ("Cu", "WSe2", "GaN [110]")
#: smallest column spacing of the images, px
SPACING_RANGE = (4.0, 30.0)
#: peak dose (expected counts at the maximum of a typical column of the brightest species)
DOSE_RANGE = (10.0, 1000.0)
#: columns fainter than this fraction of the brightest species' typical peak are not ground truth
VISIBLE_FRACTION = 0.2


def structures(split: str = "train") -> tuple[ProjectedCell, ...]:
    """Projected cells of a split: ``"train"``, ``"held_out"`` (:data:`HELD_OUT_STRUCTURES`) or ``"all"``.

    A held-out entry names a crystal (``"Cu"``: every zone axis) or one projection (``"GaN [110]"``).
    """
    lib = structure_library()
    if split == "all":
        return lib

    def held(c: ProjectedCell) -> bool:
        return any(c.name == h or c.name.split(" ")[0] == h for h in HELD_OUT_STRUCTURES)

    if split == "train":
        return tuple(c for c in lib if not held(c))
    if split == "held_out":
        return tuple(c for c in lib if held(c))
    raise InputError(f"unknown split {split!r}; use train, held_out or all")


@dataclass
class AtomImage:
    """A simulated atomic-resolution image and its ground truth.

    Attributes
    ----------
    image : ndarray, float32, shape (H, W)
        Recorded signal (counts for STEM; arbitrary height units for SPM).
    clean : ndarray, float32, shape (H, W)
        The noise-free expected signal, same units.
    atoms : ndarray, float64, shape (k, 2)
        ``(row, col)`` px of every visible column (peak at least :data:`VISIBLE_FRACTION` of the
        brightest species') whose centre lies inside the image, as recorded (scan distortion included).
    classes : ndarray of int, shape (k,)
        Sublattice/species index of each column (0 = the brightest species of the crystal).
    dopant : ndarray of bool, shape (k,)
    sigma_px : float
        Standard deviation of a column's Gaussian, px.
    spacing_px : float
        Smallest column spacing of the crystal, px.
    dose : float
        Peak dose: expected counts at a typical column's maximum (SPM: signal-to-noise ratio).
    pixel_size_m : float
    params : dict
        The draw's parameters. :func:`atom_image` adds ``faint_columns``: ``(m, 2)`` float64 ``(row, col)`` px
        of the rendered columns fainter than :data:`VISIBLE_FRACTION` whose centre lies inside the image
        (real columns that are not truth: a detection on one is neither right nor wrong in the benchmarks).
    """

    image: np.ndarray
    clean: np.ndarray
    atoms: np.ndarray
    classes: np.ndarray
    dopant: np.ndarray
    sigma_px: float
    spacing_px: float
    dose: float
    pixel_size_m: float
    params: dict = field(default_factory=dict)


def render_columns(shape: tuple[int, int], positions: np.ndarray, weights: np.ndarray, sigma: float,
                   jitter: np.ndarray | None = None, truncate: float = 3.5) -> tuple[np.ndarray, np.ndarray]:
    """Sum of Gaussians at ``(row, col)`` px, each row ``r`` of the image shifted by ``jitter[r]`` px along x.

    Parameters
    ----------
    shape, positions, weights, sigma, truncate
        As :func:`~.lattice.render_gaussians` (positions in px, weights the peak heights, sigma in px).
    jitter : ndarray, shape (H,), optional
        Per-row x shift, px (None: no jitter; the image is then :func:`~.lattice.render_gaussians`).

    Returns
    -------
    image : ndarray, float64, shape ``shape``
    recorded : ndarray, shape (k, 2)
        The recorded ``(row, col)`` of each column: its x moved by the profile-weighted mean jitter.
    """
    positions = np.asarray(positions, float).reshape(-1, 2)
    weights = np.asarray(weights, float).reshape(-1)
    if jitter is None or len(positions) == 0:
        return render_gaussians(shape, positions, weights, sigma, truncate), positions.copy()
    h, w = shape
    jitter = np.asarray(jitter, float)
    r = patch_radius(sigma, truncate)
    iy, ix = patch_indices(positions, r)  # (k, P)
    gy = np.exp(-((iy - positions[:, :1]) ** 2) / (2 * sigma ** 2))
    jr = jitter[np.clip(iy, 0, h - 1)]  # rows outside the image continue the edge rows' shifts
    shift = (gy * jr).sum(1) / gy.sum(1)
    recorded = positions.copy()
    recorded[:, 1] += shift
    keep = ((positions[:, 0] > -r) & (positions[:, 0] < h + r) & (positions[:, 1] > -r - 2)
            & (positions[:, 1] < w + r + 2))
    if not keep.any():
        return np.zeros(shape), recorded
    iy, ix, gy, jr, pos, wt = iy[keep], ix[keep], gy[keep], jr[keep], positions[keep], weights[keep]
    gx = np.exp(-((ix[:, None, :] - pos[:, None, 1:] - jr[:, :, None]) ** 2) / (2 * sigma ** 2))  # (k, P, P)
    vals = gy[:, :, None] * gx * wt[:, None, None]
    ok = (iy[:, :, None] >= 0) & (iy[:, :, None] < h) & (ix[:, None, :] >= 0) & (ix[:, None, :] < w)
    return accumulate_patches(shape, iy, ix, vals, ok), recorded


def heatmap(shape: tuple[int, int], atoms: np.ndarray, sigma: float) -> np.ndarray:
    """Training target: a Gaussian of peak 1 and width ``sigma`` px at every atom, clipped to [0, 1].

    Returns
    -------
    ndarray, float32, shape ``shape``
    """
    img = render_gaussians(shape, np.asarray(atoms, float).reshape(-1, 2), np.ones(len(atoms)), sigma, 3.0)
    return np.clip(img, 0, 1).astype(np.float32)


def heat_sigma(spacing_px: float) -> float:
    """Width (px) of the heatmap Gaussians for columns ``spacing_px`` apart: 0.15 x spacing in [0.8, 2.5]."""
    return float(np.clip(0.15 * spacing_px, 0.8, 2.5))


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _distort(rng: np.random.Generator, rc: np.ndarray, size: int, strength: float):
    """Linear drift (shear and stretch) and a slow sinusoidal line shift, applied to positions."""
    shear = rng.uniform(-0.03, 0.03) * strength
    stretch = rng.uniform(-0.03, 0.03) * strength
    amp = rng.uniform(0.0, 0.4) * strength
    period = rng.uniform(0.3, 1.5) * size
    phase = rng.uniform(0, 2 * np.pi)
    y, x = rc[:, 0], rc[:, 1]
    c = size / 2
    y2 = c + (y - c) * (1 + stretch)
    x2 = x + shear * (y - c) + amp * np.sin(2 * np.pi * y / period + phase)
    return np.stack([y2, x2], 1), {"shear": shear, "stretch": stretch, "line_shift_amp_px": amp}


def atom_image(rng: np.random.Generator, size: int = 128, *, split: str = "train",
               cell: ProjectedCell | None = None, spacing_px: float | None = None, dose: float | None = None,
               sigma_frac: float | None = None, region: str | None = None, distortion: float | None = None,
               jitter_px: float | None = None, support: float | None = None,
               detector: bool = False) -> AtomImage:
    """A simulated HAADF-STEM image of atom columns with exact positions.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int
        Image side, px.
    split : {"train", "held_out", "all"}
        Which crystals to draw from when ``cell`` is not given (:func:`structures`).
    cell : ProjectedCell, optional
        A fixed crystal and zone axis.
    spacing_px : float, optional
        Smallest column spacing, px (default log-uniform over :data:`SPACING_RANGE`).
    dose : float, optional
        Expected counts at a typical column's maximum (default log-uniform over :data:`DOSE_RANGE`).
    sigma_frac : float, optional
        Column Gaussian width as a fraction of the spacing (default 0.12-0.28; at least 0.7 px).
    region : {"full", "particle", "bicrystal"}, optional
    distortion : float, optional
        Scale of the drift and slow line shift (default uniform 0-1; 1 gives up to 3 % shear and
        stretch and a 0.4 px sinusoidal line shift).
    jitter_px : float, optional
        Standard deviation of the per-line jitter, px (default uniform 0-0.15).
    support : float, optional
        Amorphous support amplitude relative to a column peak (default uniform 0-0.15; the shipped
        model trained with 0-0.3).
    detector : bool
        Add a diffuse background under the columns with its shot noise (``pedestal``, 0.02-5 x a column's
        peak, log-uniform: thickness and amorphous layers, as real images show from 0.4 to 70 times) and a
        random detector and scan-electronics model after the shot noise (:func:`detector_noise`: noise and
        signal smeared along the fast scan, per-line offset and gain flicker, Gaussian read noise); the image
        is then no longer in counts. Default off (and no random numbers drawn for it).

    Returns
    -------
    AtomImage
    """
    if size < 8:
        raise InputError(f"size must be at least 8 px, got {size}")
    lib = structures(split)
    cell = cell if cell is not None else lib[rng.integers(len(lib))]
    spacing = spacing_px if spacing_px is not None else _loguniform(rng, *SPACING_RANGE)
    if not spacing > 0:
        raise InputError(f"spacing_px must be > 0, got {spacing}")
    dose = dose if dose is not None else _loguniform(rng, *DOSE_RANGE)
    pixel_size = cell.min_spacing / spacing
    region = region or str(rng.choice(["full", "particle", "bicrystal"], p=[0.75, 0.15, 0.1]))
    scene = random_columns(rng, size, cell, pixel_size, region)
    sigma = max(0.7, (sigma_frac if sigma_frac is not None else rng.uniform(0.12, 0.28)) * spacing)
    # species classes: rank of each column's host species by its HAADF weight (0 = brightest)
    zs = np.unique(cell.z)
    host_w = np.array([cell.haadf[cell.z == z].max() for z in zs])
    rank = {int(z): int(i) for i, z in enumerate(zs[np.argsort(-host_w, kind="stable")])}
    classes = np.array([rank[int(z)] for z in scene.z], int)
    w = scene.haadf / max(float(np.median(scene.haadf)), 1e-9) if len(scene.haadf) else scene.haadf.copy()
    # one sublattice made brighter or darker (a different species, thickness or channelling)
    if len(zs) > 1 and rng.random() < 0.5:
        k = int(rng.integers(len(zs)))
        w = np.where(classes == k, w * rng.uniform(0.5, 1.5), w)
    if len(w):
        # scale so that the brightest species' typical column has peak 1; columns fainter than
        # VISIBLE_FRACTION of it (O in SrTiO3, N in GaN) are rendered but are not atoms to find
        top = max(float(np.median(w[classes == c])) for c in np.unique(classes))
        w = w / max(top, 1e-9)
    visible = w >= VISIBLE_FRACTION
    strength = distortion if distortion is not None else rng.uniform(0, 1)
    pos, dparams = _distort(rng, scene.positions, size, strength)
    jit_sd = jitter_px if jitter_px is not None else rng.uniform(0.0, 0.15)
    jitter = rng.normal(0, jit_sd, size) if jit_sd > 0 else None
    # slow thickness variation: each column's weight (not the image, which would move the peaks)
    thick = gaussian_random_field((size, size), rng, size / 4)
    ij = np.clip(np.rint(pos).astype(int), 0, size - 1)
    w = w * np.clip(1 + rng.uniform(0, 0.2) * thick[ij[:, 0], ij[:, 1]], 0.2, None)
    clean, recorded = render_columns((size, size), pos, w, sigma, jitter)
    supp = support if support is not None else rng.uniform(0.0, 0.15)
    if supp > 0:
        clean = clean + supp * (0.5 + 0.5 * gaussian_random_field((size, size), rng, max(sigma, 1.0)))
        clean = clean + supp * 0.3 * gaussian_random_field((size, size), rng, size / 6)
    clean = np.clip(clean, 0, None)
    det: dict = {}
    if detector:
        det["pedestal"] = float(_loguniform(rng, 0.02, 5.0))
        clean = clean + det["pedestal"]
    expected = clean * dose
    img = rng.poisson(expected).astype(np.float32)
    if detector:
        img, more = detector_noise(rng, img, dose)
        det.update(more)
    in_box = ((recorded >= 0) & (recorded <= size - 1)).all(1)
    inside = in_box & visible
    params = dict(scene.params, kind="stem", sigma_px=float(sigma), spacing_px=float(spacing), dose=float(dose),
                  support=float(supp), jitter_px=float(jit_sd), distortion=float(strength), **dparams,
                  n_classes=int(len(zs)), **det, faint_columns=recorded[in_box & ~visible].astype(np.float64))
    return AtomImage(img, expected.astype(np.float32), recorded[inside], classes[inside], scene.dopant[inside],
                     float(sigma), float(spacing), float(dose), pixel_size * 1e-10, params)


def detector_noise(rng: np.random.Generator, img: np.ndarray, dose: float) -> tuple[np.ndarray, dict]:
    """A random detector and scan-electronics model applied to a shot-noise image of counts; returns the image
    (float32) and its parameters.

    Real ADF images at short dwell times are not white Poisson noise: the detector and amplifier bandwidth
    smear signal and noise along the fast scan (``fast_scan_sigma_px``, a symmetric Gaussian of 0-2.5 px, so
    a column's centre stays where it is and its recorded position is unchanged), the scan lines flicker
    (an offset of ``line_offset`` x the mean level's shot noise and a gain of 1 +- ``line_gain`` per line),
    and the electronics add Gaussian read noise (``read_noise`` x the shot noise at the peak dose). The fast
    scan runs along x (``scan_axis`` 1) or, in a quarter of the images (a rotated or transposed scan), along y.
    """
    from scipy.ndimage import gaussian_filter1d

    axis = 1 if rng.random() < 0.75 else 0
    a = np.asarray(img, np.float64)
    a = a if axis == 1 else a.T
    h = a.shape[0]
    fs = float(rng.uniform(0.0, 2.5))
    if fs > 0.2:
        a = gaussian_filter1d(a, fs, axis=1, mode="reflect")
    off = float(rng.uniform(0.0, 1.0))
    gain = float(rng.uniform(0.0, 0.06))
    read = float(rng.uniform(0.0, 0.5))
    level = max(float(a.mean()), 1e-6)
    a = a * (1.0 + gain * rng.standard_normal(h))[:, None] + off * np.sqrt(level) * rng.standard_normal(h)[:, None]
    a = a + read * np.sqrt(max(dose, 1.0)) * rng.standard_normal(a.shape)
    a = a if axis == 1 else a.T
    return a.astype(np.float32), {"fast_scan_sigma_px": fs, "line_offset": off, "line_gain": gain, "read_noise": read,
                                  "scan_axis": axis}


def _lattice_positions(rng, size: int, a1: np.ndarray, a2: np.ndarray, basis: np.ndarray):
    """(row, col) of a 2-D lattice with basis covering a ``size`` field at a random origin."""
    inv = np.linalg.inv(np.stack([a1, a2]))
    half = size * 0.75 + 2 * max(np.abs(a1).max(), np.abs(a2).max())
    corners = np.array([[-half, -half], [half, -half], [-half, half], [half, half]])
    f = corners @ inv
    lo, hi = np.floor(f.min(0)).astype(int), np.ceil(f.max(0)).astype(int)
    n1, n2 = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    lat = np.stack([n1.ravel(), n2.ravel()], 1) @ np.stack([a1, a2])
    origin = rng.uniform(0, 1, 2) @ np.stack([a1, a2])
    pts = (lat[:, None, :] + basis[None]).reshape(-1, 2) + origin + size / 2
    idx = np.tile(np.arange(len(basis)), len(lat))
    keep = (pts > -8).all(1) & (pts < size + 8).all(1)
    return pts[keep], idx[keep]


def spm_atom_image(rng: np.random.Generator, size: int = 128, *, spacing_px: float | None = None,
                   snr: float | None = None, lattice: str | None = None) -> AtomImage:
    """An STM/AFM-like image of an atomic surface with exact atom positions.

    A square, hexagonal (one species) or honeycomb (two sublattices of different height) lattice at a
    random rotation, with vacancies and a few adatom-like bright sites; bumps of width 0.2-0.3 x the
    spacing on a tilted plane with a monatomic step and 1/f roughness; per-line offsets (scan-line
    artefacts) and white noise. ``dose`` of the result holds the signal-to-noise ratio (bump height
    over noise standard deviation).

    Parameters
    ----------
    spacing_px : float, optional
        Nearest-neighbour spacing, px (default log-uniform over :data:`SPACING_RANGE`).
    snr : float, optional
        Bump height over noise (default log-uniform 1.5-30).
    lattice : {"square", "hexagonal", "honeycomb"}, optional
    """
    spacing = spacing_px if spacing_px is not None else _loguniform(rng, *SPACING_RANGE)
    snr = snr if snr is not None else _loguniform(rng, 1.5, 30.0)
    lattice = lattice or str(rng.choice(["square", "hexagonal", "honeycomb"]))
    th = rng.uniform(0, 2 * np.pi)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    if lattice == "square":
        a1, a2, basis = np.array([spacing, 0.0]), np.array([0.0, spacing]), np.zeros((1, 2))
    elif lattice == "hexagonal":
        a1, a2, basis = np.array([spacing, 0.0]), spacing * np.array([0.5, math.sqrt(3) / 2]), np.zeros((1, 2))
    elif lattice == "honeycomb":
        a = spacing * math.sqrt(3)
        a1, a2 = np.array([a, 0.0]), a * np.array([0.5, math.sqrt(3) / 2])
        basis = np.array([[0.0, 0.0], (a1 + a2) / 3])
    else:
        raise InputError(f"unknown lattice {lattice!r}; use square, hexagonal or honeycomb")
    pos, idx = _lattice_positions(rng, size, a1 @ rot.T, a2 @ rot.T, basis @ rot.T)
    keep = rng.random(len(pos)) >= rng.uniform(0, 0.04)
    pos, idx = pos[keep], idx[keep]
    heights = np.where(idx == 0, 1.0, rng.uniform(0.4, 0.8)) if lattice == "honeycomb" else np.ones(len(pos))
    bright = rng.random(len(pos)) < rng.uniform(0, 0.02)
    heights = np.where(bright, heights * rng.uniform(1.5, 2.5), heights)
    sigma = max(0.7, rng.uniform(0.2, 0.3) * spacing)
    pos = pos + rng.normal(0, 0.02 * spacing, pos.shape)
    clean, recorded = render_columns((size, size), pos, heights, sigma)
    yy, xx = np.mgrid[0:size, 0:size] / size
    clean = clean + rng.uniform(-3, 3) * (yy - 0.5) + rng.uniform(-3, 3) * (xx - 0.5)
    if rng.random() < 0.5:  # a monatomic step
        nrm = rng.normal(size=2)
        clean = clean + rng.uniform(2, 4) * ((yy - 0.5) * nrm[0] + (xx - 0.5) * nrm[1] > rng.uniform(-0.3, 0.3))
    clean = clean + rng.uniform(0, 0.3) * gaussian_random_field((size, size), rng, 0.0, beta=2.0)
    noise_sd = 1.0 / snr
    img = clean + rng.normal(0, noise_sd, clean.shape) + rng.normal(0, rng.uniform(0, 2) * noise_sd, (size, 1))
    inside = ((recorded >= 0) & (recorded <= size - 1)).all(1)
    classes = (idx != 0).astype(int) if lattice == "honeycomb" else np.zeros(len(pos), int)
    params = {"kind": "spm", "lattice": lattice, "spacing_px": float(spacing), "sigma_px": float(sigma),
              "snr": float(snr), "rotation_deg": float(np.rad2deg(th))}
    return AtomImage(img.astype(np.float32), clean.astype(np.float32), recorded[inside], classes[inside],
                     bright[inside], float(sigma), float(spacing), float(snr), 1e-10, params)
