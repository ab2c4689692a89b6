"""Atomic-resolution STEM images: atom columns from ASE crystals projected along a zone axis.

A crystal built with :mod:`ase` (``ase.build.bulk``, ``graphene``, ``mx2``; cubic perovskite SrTiO3) is projected along a zone axis ``[uvw]`` (integer combination of its
cell vectors). The projection is a 2-D periodic pattern of *columns*; each column's HAADF weight is
``sum Z^1.7`` over the basis atoms projecting onto it (incoherent Z-contrast) and its potential weight
``sum Z^0.75`` (used by :mod:`.hrtem`). Columns are tiled over the field of view at a random rotation,
displaced slightly, thinned by vacancies, altered by dopants, and rendered as Gaussians on an amorphous
low-Z support. Ground truth: column positions in pixels and metres, species-class masks.

Pixel convention: the value of pixel ``(i, j)`` is the intensity at position ``(row=i, col=j)``; a
column at ``(y, x)`` has its maximum at that continuous position.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError

#: HAADF Z-contrast exponent (Rutherford-like scattering to high angles, ~1.6-1.9 in practice)
Z_EXPONENT = 1.7
#: exponent for the projected-potential weight used by HRTEM (weak-phase) images
POTENTIAL_EXPONENT = 0.75


@dataclass(frozen=True)
class ProjectedCell:
    """A crystal projected along a zone axis: a 2-D lattice of columns.

    Attributes
    ----------
    name : str
        e.g. ``"SrTiO3 [100]"``.
    basis : ndarray, shape (2, 2)
        Rows are the 2-D lattice vectors, Å (Cartesian, in the projection plane).
    positions : ndarray, shape (m, 2)
        Column positions in the cell, Å.
    z : ndarray, shape (m,)
        Dominant atomic number of each column.
    haadf : ndarray, shape (m,)
        ``sum Z^1.7`` of the basis atoms in each column.
    potential : ndarray, shape (m,)
        ``sum Z^0.75`` of the basis atoms in each column.
    two_d : bool
        A monolayer material (vacancies remove a column).
    """

    name: str
    basis: np.ndarray
    positions: np.ndarray
    z: np.ndarray
    haadf: np.ndarray
    potential: np.ndarray
    two_d: bool = False

    @property
    def min_spacing(self) -> float:
        """Smallest distance between two columns (including periodic images), Å."""
        p = self.positions
        shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ self.basis
        allp = (p[None, :, :] + shifts[:, None, :]).reshape(-1, 2)
        d = np.hypot(*(p[:, None, :] - allp[None, :, :]).transpose(2, 0, 1))
        d = d[d > 1e-6]
        return float(d.min())


def project_atoms(atoms, zone_axis: tuple[int, int, int], name: str = "", two_d: bool = False,
                  tol: float = 0.05) -> ProjectedCell:
    """Project a periodic ASE ``Atoms`` along the zone axis ``zone_axis`` (in its cell-vector basis).

    The 2-D lattice is the projection of the 3-D lattice, whose two shortest independent vectors form
    a basis (true for any 2-D lattice); every basis atom lands on one column per 2-D cell, and basis atoms
    projecting within ``tol`` Å of each other share a column.

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic crystal (the vacuum direction of a monolayer should be the zone axis).
    zone_axis : (int, int, int)
        ``[uvw]``: the beam direction ``u a + v b + w c``.
    """
    cell = np.asarray(atoms.cell[:], float)
    u = np.asarray(zone_axis, float) @ cell
    if np.linalg.norm(u) == 0:
        raise InputError(f"zone axis {zone_axis} is the zero vector")
    u /= np.linalg.norm(u)
    # orthonormal frame (e1, e2) of the plane normal to u
    ref = np.array([0, 0, 1.0]) if abs(u[2]) < 0.9 else np.array([1.0, 0, 0])
    e1 = np.cross(ref, u)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    proj = np.stack([e1, e2], 1)  # (3, 2)
    rng_ = np.arange(-4, 5)
    n = np.stack(np.meshgrid(rng_, rng_, rng_, indexing="ij"), -1).reshape(-1, 3)
    pv = (n @ cell) @ proj
    length = np.hypot(pv[:, 0], pv[:, 1])
    ok = length > 1e-6
    pv, length = pv[ok], length[ok]
    order = np.argsort(length, kind="stable")
    p1 = pv[order[0]]
    p2 = None
    for i in order[1:]:
        if abs(p1[0] * pv[i, 1] - p1[1] * pv[i, 0]) > 1e-6 * length[order[0]] * length[i]:
            p2 = pv[i]
            break
    if p2 is None:  # pragma: no cover - a 3-D lattice always gives a 2-D projection
        raise InputError(f"cannot project along {zone_axis}")
    basis = np.stack([p1, p2])
    inv = np.linalg.inv(basis)
    xy = atoms.positions @ proj
    frac = np.mod(xy @ inv, 1.0)
    frac[frac > 1 - 1e-6] = 0.0
    pos = frac @ basis
    numbers = atoms.numbers
    cols: list[list[int]] = []
    centres: list[np.ndarray] = []
    shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ basis
    for k, p in enumerate(pos):
        for ci, c in enumerate(centres):
            if np.min(np.hypot(*(p - c - shifts).T)) < tol:
                cols[ci].append(k)
                break
        else:
            centres.append(p)
            cols.append([k])
    zs = np.array([np.bincount(numbers[c]).argmax() for c in cols])
    haadf = np.array([np.sum(numbers[c].astype(float) ** Z_EXPONENT) for c in cols])
    pot = np.array([np.sum(numbers[c].astype(float) ** POTENTIAL_EXPONENT) for c in cols])
    return ProjectedCell(name or f"{atoms.get_chemical_formula()} {list(zone_axis)}", basis,
                         np.array(centres), zs, haadf, pot, two_d)


def _structures():
    from ase import Atoms
    from ase.build import bulk, graphene, mx2

    # cubic perovskite SrTiO3 (Pm-3m): Sr at the corner, Ti at the body centre, O at the face centres
    sto = Atoms("SrTiO3", scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
                cell=[3.905] * 3, pbc=True)
    return {
        "Si": (bulk("Si", "diamond", a=5.431, cubic=True), [(1, 1, 0), (1, 0, 0), (1, 1, 1)], False),
        "GaAs": (bulk("GaAs", "zincblende", a=5.653, cubic=True), [(1, 1, 0), (1, 0, 0)], False),
        "Au": (bulk("Au", "fcc", a=4.078, cubic=True), [(1, 1, 0), (1, 0, 0), (1, 1, 1)], False),
        "Cu": (bulk("Cu", "fcc", a=3.615, cubic=True), [(1, 1, 0), (1, 0, 0)], False),
        "SrTiO3": (sto, [(1, 0, 0), (1, 1, 0)], False),
        "GaN": (bulk("GaN", "wurtzite", a=3.19, c=5.19), [(0, 0, 1), (1, 0, 0), (1, 1, 0)], False),
        "graphene": (graphene(formula="C2", a=2.46, size=(1, 1, 1), vacuum=5.0), [(0, 0, 1)], True),
        "hBN": (graphene(formula="BN", a=2.50, size=(1, 1, 1), vacuum=5.0), [(0, 0, 1)], True),
        "MoS2": (mx2("MoS2", kind="2H", a=3.18, thickness=3.19, size=(1, 1, 1), vacuum=5.0), [(0, 0, 1)], True),
        "WSe2": (mx2("WSe2", kind="2H", a=3.28, thickness=3.34, size=(1, 1, 1), vacuum=5.0), [(0, 0, 1)], True),
    }


@functools.lru_cache(maxsize=1)
def structure_library() -> tuple[ProjectedCell, ...]:
    """All projected cells shipped with the simulator (crystal x zone axis), built once with ASE."""
    out = []
    for name, (atoms, axes, two_d) in _structures().items():
        for ax in axes:
            out.append(project_atoms(atoms, ax, f"{name} [{''.join(map(str, ax))}]", two_d))
    return tuple(out)


# ------------------------------------------------------------------------------------- rendering


def render_gaussians(shape: tuple[int, int], positions: np.ndarray, weights: np.ndarray,
                     sigma: float, truncate: float = 3.5) -> np.ndarray:
    """Sum of isotropic Gaussians ``w * exp(-d^2 / (2 sigma^2))`` at sub-pixel ``(row, col)`` positions.

    Each Gaussian is evaluated exactly on a ``(2r+1)^2`` patch (``r = ceil(truncate * sigma)``) as an
    outer product of two 1-D profiles and accumulated with :func:`numpy.bincount`; positions outside the
    image contribute their overlapping tails.

    Parameters
    ----------
    shape : (int, int)
    positions : ndarray, shape (k, 2), px
    weights : ndarray, shape (k,)
        Peak heights.
    sigma : float
        Standard deviation, px.

    Returns
    -------
    ndarray, float64, shape ``shape``
    """
    h, w = shape
    positions = np.asarray(positions, float).reshape(-1, 2)
    weights = np.asarray(weights, float).reshape(-1)
    if len(positions) == 0:
        return np.zeros(shape)
    r = patch_radius(sigma, truncate)
    keep = ((positions[:, 0] > -r) & (positions[:, 0] < h + r) & (positions[:, 1] > -r) & (positions[:, 1] < w + r))
    positions, weights = positions[keep], weights[keep]
    iy, ix = patch_indices(positions, r)
    gy = np.exp(-((iy - positions[:, :1]) ** 2) / (2 * sigma**2)) * weights[:, None]
    gx = np.exp(-((ix - positions[:, 1:]) ** 2) / (2 * sigma**2))
    gy[(iy < 0) | (iy >= h)] = 0.0
    gx[(ix < 0) | (ix >= w)] = 0.0
    return accumulate_patches(shape, iy, ix, gy[:, :, None] * gx[:, None, :])


def patch_radius(sigma: float, truncate: float) -> int:
    """Half-width ``r = max(1, ceil(truncate * sigma))`` px of the patch a Gaussian is evaluated on."""
    return max(1, int(math.ceil(truncate * sigma)))


def patch_indices(positions: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices ``(iy, ix)``, each int64 (k, 2r+1), of the ``(2r+1)^2`` pixel patch around each
    sub-pixel ``(row, col)`` position (k, 2); they may fall outside the image."""
    d = np.arange(-r, r + 1)
    return (np.floor(positions[:, 0]).astype(np.int64)[:, None] + d,
            np.floor(positions[:, 1]).astype(np.int64)[:, None] + d)


def accumulate_patches(shape: tuple[int, int], iy: np.ndarray, ix: np.ndarray, vals: np.ndarray,
                       ok: np.ndarray | None = None) -> np.ndarray:
    """Sum patch values ``vals`` (k, P, P) at pixels ``(iy[:, :, None], ix[:, None, :])`` into a float64
    image of ``shape`` (:func:`numpy.bincount`). ``ok`` (k, P, P) keeps only those pixels; without it
    every value counts, so values of pixels outside the image must be zero."""
    h, w = shape
    flat = np.clip(iy, 0, h - 1)[:, :, None] * w + np.clip(ix, 0, w - 1)[:, None, :]
    flat, vals = (flat.ravel(), vals.ravel()) if ok is None else (flat[ok], vals[ok])
    return np.bincount(flat, weights=vals, minlength=h * w).reshape(h, w)


@functools.lru_cache(maxsize=16)
def _rfft_q2(h: int, w: int) -> np.ndarray:
    qy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    qx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    q2 = qy**2 + qx**2
    q2.flags.writeable = False
    return q2


def gaussian_random_field(shape: tuple[int, int], rng: np.random.Generator, corr_px: float,
                          beta: float | None = None) -> np.ndarray:
    """Zero-mean, unit-variance random field, generated in Fourier space.

    White noise low-passed by a Gaussian of ``corr_px`` px, or (``beta`` given) a ``1/f^beta`` power-law
    field (additionally low-passed when ``corr_px > 0``). Only Fourier coefficients where the filter is
    non-negligible are drawn, so smooth fields are cheap.

    Returns
    -------
    ndarray, float32, shape ``shape``
    """
    from scipy import fft as sfft

    h, w = shape
    q2 = _rfft_q2(h, w)
    if beta is None:
        filt = np.exp(-2 * np.pi**2 * corr_px**2 * q2)
    else:
        q2s = q2.copy()
        q2s[0, 0] = np.inf
        filt = q2s ** np.float32(-beta / 4)
        if corr_px > 0:
            filt = filt * np.exp(-2 * np.pi**2 * corr_px**2 * q2)
    filt[0, 0] = 0.0
    sel = filt > 1e-4 * filt.max()
    coef = np.zeros(filt.shape, np.complex64)
    k = int(sel.sum())
    coef[sel] = (rng.standard_normal(k, dtype=np.float32) + 1j * rng.standard_normal(k, dtype=np.float32)) * filt[sel]
    f = sfft.irfft2(coef, s=(h, w), workers=1)
    sd = f.std()
    return (f / sd).astype(np.float32) if sd > 0 else f.astype(np.float32)


def disk_mask(shape: tuple[int, int], positions: np.ndarray, labels: np.ndarray, radius: float) -> np.ndarray:
    """uint8 mask with a disk of ``radius`` px around each position, filled with its label (0 = none)."""
    h, w = shape
    m = np.zeros(shape, np.uint8)
    if len(positions) == 0:
        return m
    r = int(math.ceil(radius))
    d = np.arange(-r, r + 1)
    iy = np.rint(positions[:, 0]).astype(np.int64)[:, None, None] + d[None, :, None]
    ix = np.rint(positions[:, 1]).astype(np.int64)[:, None, None] + d[None, None, :]
    inside = ((iy - positions[:, 0, None, None]) ** 2 + (ix - positions[:, 1, None, None]) ** 2) <= radius**2
    ok = inside & (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    lab = np.broadcast_to(np.asarray(labels, np.uint8)[:, None, None], ok.shape)
    m[np.broadcast_to(iy, ok.shape)[ok], np.broadcast_to(ix, ok.shape)[ok]] = lab[ok]
    return m


# ---------------------------------------------------------------------------------------- scenes


@dataclass
class ColumnScene:
    """Atom columns of one field of view (before rendering).

    Attributes
    ----------
    positions : ndarray, shape (k, 2)
        ``(row, col)`` in px of every column present (vacancies removed).
    haadf, potential : ndarray, shape (k,)
        Column weights (Z^1.7 and Z^0.75 sums, including dopant changes).
    z : ndarray, shape (k,)
        Dominant atomic number per column.
    dopant : ndarray of bool, shape (k,)
    vacancies : ndarray, shape (v, 2)
        Positions of removed columns, px.
    params : dict
    """

    positions: np.ndarray
    haadf: np.ndarray
    potential: np.ndarray
    z: np.ndarray
    dopant: np.ndarray
    vacancies: np.ndarray
    params: dict = field(default_factory=dict)


def _tile(cell: ProjectedCell, size: int, pixel_size: float, angle: float, origin: np.ndarray):
    """Column positions (px) of ``cell`` rotated by ``angle`` covering a ``size``-px field, + cell indices."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    basis = cell.basis @ rot.T  # Å, (x, y)
    half = size * pixel_size / 2 * math.sqrt(2) + 2 * np.abs(basis).max()
    inv = np.linalg.inv(basis)
    corners = np.array([[-half, -half], [half, -half], [-half, half], [half, half]]) - origin
    f = corners @ inv
    lo, hi = np.floor(f.min(0)).astype(int), np.ceil(f.max(0)).astype(int)
    n1, n2 = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    lat = np.stack([n1.ravel(), n2.ravel()], 1) @ basis  # (L, 2)
    pos = cell.positions @ rot.T
    xy = (lat[:, None, :] + pos[None, :, :]).reshape(-1, 2) + origin
    idx = np.tile(np.arange(len(cell.positions)), len(lat))
    rc = np.stack([xy[:, 1] / pixel_size + size / 2, xy[:, 0] / pixel_size + size / 2], 1)
    keep = (rc > -8).all(1) & (rc < size + 8).all(1)
    return rc[keep], idx[keep]


def random_columns(rng: np.random.Generator, size: int, cell: ProjectedCell | None = None,
                   pixel_size: float | None = None, region: str | None = None) -> ColumnScene:
    """Draw a crystal, orientation, sampling and defects; return the columns of one field of view.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int
        Image side, px.
    cell : ProjectedCell, optional
        Fixed crystal/zone axis (default: random from :func:`structure_library`).
    pixel_size : float, optional
        Å per px (default: random, so that the closest columns are 3.5-14 px apart).
    region : {"full", "particle", "bicrystal"}, optional
        Crystal everywhere, a nanoparticle on the support, or two grains meeting at a boundary.
    """
    lib = structure_library()
    cell = cell if cell is not None else lib[rng.integers(len(lib))]
    spacing = cell.min_spacing
    if pixel_size is None:
        pixel_size = spacing / rng.uniform(3.5, 14.0)
    region = region or str(rng.choice(["full", "particle", "bicrystal"], p=[0.6, 0.25, 0.15]))
    angle = rng.uniform(0, 2 * np.pi)
    origin = rng.uniform(-1, 1, 2) * np.abs(cell.basis).max()
    rc, idx = _tile(cell, size, pixel_size, angle, origin)
    keep = np.ones(len(rc), bool)
    if region == "bicrystal":
        angle2 = angle + rng.uniform(np.deg2rad(8), np.deg2rad(45)) * rng.choice([-1, 1])
        rc2, idx2 = _tile(cell, size, pixel_size, angle2, rng.uniform(-1, 1, 2) * np.abs(cell.basis).max())
        normal = np.array([math.cos(a := rng.uniform(0, np.pi)), math.sin(a)])
        off = rng.uniform(-0.25, 0.25) * size
        gap = 0.3 * spacing / pixel_size
        side1 = (rc - size / 2) @ normal - off
        side2 = (rc2 - size / 2) @ normal - off
        rc = np.concatenate([rc[side1 < -gap], rc2[side2 > gap]])
        idx = np.concatenate([idx[side1 < -gap], idx2[side2 > gap]])
        keep = np.ones(len(rc), bool)
    elif region == "particle":
        centre = size / 2 + rng.uniform(-0.15, 0.15, 2) * size
        radius = rng.uniform(0.25, 0.45) * size
        # faceted-ish blob: radius modulated by a few angular harmonics
        ang = np.arctan2(rc[:, 0] - centre[0], rc[:, 1] - centre[1])
        rmod = radius * (1 + sum(rng.uniform(0, 0.08) * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
                                 for k in (2, 3, 4, 6)))
        keep = np.hypot(rc[:, 0] - centre[0], rc[:, 1] - centre[1]) < rmod
    rc, idx = rc[keep], idx[keep]
    # static and thermal displacements (Å -> px)
    disp = rng.uniform(0.0, 0.06) / pixel_size
    rc = rc + rng.normal(0.0, disp, rc.shape)
    haadf = cell.haadf[idx].astype(float)
    pot = cell.potential[idx].astype(float)
    z = cell.z[idx].copy()
    # dopants: substitute a heavier or lighter species in a few columns
    p_dop = rng.uniform(0.0, 0.03)
    dop = rng.random(len(rc)) < p_dop
    factor = np.where(rng.random(len(rc)) < 0.7, rng.uniform(1.5, 3.0, len(rc)), rng.uniform(0.3, 0.6, len(rc)))
    haadf[dop] *= factor[dop]
    pot[dop] *= factor[dop] ** (POTENTIAL_EXPONENT / Z_EXPONENT)
    # vacancies: remove whole columns (a missing atom in a monolayer, an emptied column in a crystal)
    p_vac = rng.uniform(0.0, 0.04)
    vac = (rng.random(len(rc)) < p_vac) & ~dop
    params = {"structure": cell.name, "pixel_size_A": float(pixel_size), "rotation_deg": float(np.rad2deg(angle)),
              "region": region, "displacement_px": float(disp), "dopant_fraction": float(p_dop),
              "vacancy_fraction": float(p_vac), "two_d": cell.two_d}
    return ColumnScene(rc[~vac], haadf[~vac], pot[~vac], z[~vac], dop[~vac], rc[vac], params)


@dataclass
class LatticeImage:
    """A rendered lattice image with labels.

    Attributes
    ----------
    image : ndarray, float32, shape (H, W), in [0, 1]
    atoms : ndarray, float32, shape (k, 2)
        ``(row, col)`` px of the columns inside the image.
    atoms_m : ndarray, float64, shape (k, 2)
        Same positions in metres from the image origin (pixel (0, 0)).
    mask : ndarray, uint8, shape (H, W)
        0 background, 1 host column, 2 dopant column (disks of radius ``mask_radius`` px).
    pixel_size_m : float
    params : dict
    """

    image: np.ndarray
    atoms: np.ndarray
    atoms_m: np.ndarray
    mask: np.ndarray
    pixel_size_m: float
    params: dict


def _labels(scene: ColumnScene, size: int, sigma_px: float, pixel_size_A: float):
    inside = ((scene.positions >= 0) & (scene.positions <= size - 1)).all(1)
    atoms = scene.positions[inside]
    labels = np.where(scene.dopant[inside], 2, 1)
    radius = max(1.0, sigma_px)
    mask = disk_mask((size, size), atoms, labels, radius)
    return atoms.astype(np.float32), atoms * pixel_size_A * 1e-10, mask, radius


def stem_image(rng: np.random.Generator, size: int = 512, scene: ColumnScene | None = None,
               support: float | None = None, sigma_A: float | None = None,
               contrast: str | None = None) -> LatticeImage:
    """HAADF (or bright-field) STEM image of atom columns on an amorphous support, with labels.

    Columns are Gaussians of width ``sigma_A`` (probe size and thermal smearing) with peak height
    proportional to ``sum Z^1.7``; the support is a low-Z random field with the same correlation length
    plus slow thickness variation. ``contrast="bf"`` inverts the image (bright-field STEM).

    Returns
    -------
    LatticeImage
    """
    scene = scene if scene is not None else random_columns(rng, size)
    px = scene.params["pixel_size_A"]
    sigma_A = sigma_A if sigma_A is not None else rng.uniform(0.3, 0.9)
    sigma = max(0.6, sigma_A / px)
    w = scene.haadf / max(np.median(scene.haadf), 1e-9) if len(scene.haadf) else scene.haadf
    img = render_gaussians((size, size), scene.positions, w, sigma)
    support = support if support is not None else rng.uniform(0.0, 0.3)
    if support > 0:
        img += support * (0.5 + 0.5 * gaussian_random_field((size, size), rng, sigma))
        img += support * 0.3 * gaussian_random_field((size, size), rng, size / 6)
    # slow thickness / contamination variation of the column signal
    img *= 1 + rng.uniform(0, 0.25) * gaussian_random_field((size, size), rng, size / 4)
    contrast = contrast or ("bf" if rng.random() < 0.15 else "haadf")
    lo, hi = img.min(), img.max()
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    if contrast == "bf":
        img = 1 - img
    atoms, atoms_m, mask, radius = _labels(scene, size, sigma, px)
    params = dict(scene.params, kind="stem", contrast=contrast, column_sigma_A=float(sigma_A),
                  column_sigma_px=float(sigma), support=float(support), mask_radius_px=float(radius),
                  n_vacancies=int(len(scene.vacancies)), n_dopants=int(scene.dopant.sum()))
    return LatticeImage(img.astype(np.float32), atoms, atoms_m, mask, px * 1e-10, params)
