"""Atom-finding test images from a second image model: abTEM potentials and probe, incoherent HAADF.

:func:`~.atoms.atom_image` (the training and benchmark images of the atom finder) draws every column
as a Gaussian. A model tuned to that picture can fail on images made another way, which is how other
groups' simulators and real microscopes make them. This module makes HAADF-STEM images by a different
route, with the physics of the ``sim`` extra (abTEM):

1. an oriented slab of a crystal is built with ASE (the beam along a zone axis) and abTEM computes its
   **projected potential** ``V(r)`` (Lobato parametrisation) on a 0.05 Å grid: real atomic cores with
   long tails, columns of different atoms and occupancy, not Gaussians;
2. the incoherent-imaging approximation of ADF-STEM (Pennycook & Jesson 1991; Kirkland,
   *Advanced Computing in Electron Microscopy*, ch. 6): the image is an object function convolved with
   the **probe intensity** ``|psi(r)|^2`` that abTEM builds from the aperture (semi-angle 20-30 mrad),
   defocus and spherical aberration (with its Airy rings and tails), and with a Gaussian
   **source size** (0.3-0.6 Å FWHM) and **thermal smearing** (0.08 Å rms). The object function is
   ``V(r)^gamma`` (``gamma`` = :data:`CONTRAST_EXPONENT`): high-angle scattering grows faster than the
   potential with Z, which makes heavy columns brighter than their potential alone;
3. the scan samples the periodic image on a rotated, shifted grid at 4-30 px per smallest column
   spacing, with a slowly varying scan-line shift and per-line jitter, a constant background and
   Poisson noise at a given peak dose.

Ground truth: the projected positions of the slab's columns (atoms within 0.2 Å of each other in
projection share a column), converted to scan pixels with the same distortion as the image, kept when
their noise-free peak is at least :data:`~.atoms.VISIBLE_FRACTION` of the brightest columns' typical
peak (the rule of :func:`~.atoms.atom_image`) and their centre lies inside the image.
A column's peak here is its contrast (:func:`_column_values`: its value minus the lowest value around it),
because the tails of heavy neighbours lift a light column's value without making it visible. The fainter
columns (light atoms such as oxygen) are real but below that rule, and a column that the probe does not
resolve (no local maximum of the noise-free image near it: a shoulder on a heavier neighbour, or two
columns merged into one blob, as a dumbbell under an 80 kV probe) cannot be located either:
``params["faint_columns"]`` holds the faint columns, the unresolved ones and the maxima of merged
blobs, so a benchmark can count a detection there as neither right nor wrong; the unresolved columns
are not in the truth.

None of the crystals here is an atom-finder training structure (:data:`CRYSTALS`): Cu and WSe2 are the
held-out crystals of :mod:`.atoms`; Pt, Ge, InP, CeO2 and BaTiO3 are in no structure list of scopenet.
abTEM is optional: without it :func:`abtem_atom_image` raises :class:`~scopenet.errors.MissingDependencyError`.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ...errors import InputError
from .abtem_backend import _abtem
from .atoms import VISIBLE_FRACTION, AtomImage

__all__ = ["CRYSTALS", "CONTRAST_EXPONENT", "FINE_SAMPLING", "abtem_atom_image", "projected_scene"]

#: exponent of the projected potential in the ADF object function
CONTRAST_EXPONENT = 1.5
#: sampling of the projected potential and of the noise-free image, Å
FINE_SAMPLING = 0.05
#: thermal (frozen-phonon-like) smearing of the columns, Å rms
THERMAL_RMS = 0.08
#: columns closer than this in projection are one column, Å
COLUMN_TOL = 0.2

#: name -> (builder key, zone axis [uvw]); none is an AtomFinder training structure
CRYSTALS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "Cu [110]": ("Cu", (1, 1, 0)),
    "Cu [100]": ("Cu", (1, 0, 0)),
    "Pt [110]": ("Pt", (1, 1, 0)),
    "Ge [110]": ("Ge", (1, 1, 0)),
    "InP [110]": ("InP", (1, 1, 0)),
    "CeO2 [110]": ("CeO2", (1, 1, 0)),
    "BaTiO3 [100]": ("BaTiO3", (1, 0, 0)),
    "WSe2 [001]": ("WSe2", (0, 0, 1)),
}


def _bulk(key: str):
    from ase import Atoms
    from ase.build import bulk, mx2

    if key == "Cu":
        return bulk("Cu", "fcc", a=3.615, cubic=True)
    if key == "Pt":
        return bulk("Pt", "fcc", a=3.924, cubic=True)
    if key == "Ge":
        return bulk("Ge", "diamond", a=5.658, cubic=True)
    if key == "InP":
        return bulk("InP", "zincblende", a=5.869, cubic=True)
    if key == "CeO2":
        return bulk("CeO2", "fluorite", a=5.411, cubic=True)
    if key == "BaTiO3":  # cubic perovskite: Ba at the corner, Ti at the body centre, O at the face centres
        return Atoms("BaTiO3", scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
                     cell=[4.00] * 3, pbc=True)
    if key == "WSe2":
        return mx2("WSe2", kind="2H", a=3.28, thickness=3.34, size=(1, 1, 1), vacuum=5.0)
    raise InputError(f"unknown crystal {key!r}")  # pragma: no cover - CRYSTALS names only these


@functools.lru_cache(maxsize=16)
def projected_scene(name: str, thickness_A: float = 60.0, extent_A: float = 40.0):
    """The noise-free object of one crystal: ``(potential, columns, cell)``.

    Parameters
    ----------
    name : str
        A key of :data:`CRYSTALS`.
    thickness_A : float
        Slab thickness along the beam, Å (a monolayer keeps its own).
    extent_A : float
        Smallest lateral size of the periodic supercell, Å.

    Returns
    -------
    potential : ndarray float64, shape (ny, nx)
        Projected potential on the :data:`FINE_SAMPLING` grid of the periodic supercell (abTEM units), index
        ``[iy, ix]`` at ``(y, x) = (iy, ix) * sampling``.
    columns : ndarray float64, shape (k, 2)
        ``(y, x)`` Å of every column of the supercell.
    cell : ndarray float64, shape (2,)
        ``(Ly, Lx)`` Å, the supercell's periodic lengths.
    """
    if name not in CRYSTALS:
        raise InputError(f"unknown crystal {name!r}; choose from {', '.join(CRYSTALS)}")
    abtem = _abtem()
    from ase.build import surface

    key, zone = CRYSTALS[name]
    crystal = _bulk(key)
    if zone == (0, 0, 1) and key == "WSe2":
        slab = crystal
    else:
        # one repeat along the beam, Å: how far the top atom moves when a layer is added
        layer = float(surface(crystal, zone, 2, vacuum=None).positions[:, 2].max()
                      - surface(crystal, zone, 1, vacuum=None).positions[:, 2].max())
        n_layers = max(1, int(round(thickness_A / layer)))
        slab = surface(crystal, zone, n_layers, vacuum=None)
        cell = np.asarray(slab.cell[:], float)
        cell[2] = [0.0, 0.0, n_layers * layer]
        slab.set_cell(cell)
    slab = abtem.orthogonalize_cell(slab)
    lengths = slab.cell.lengths()
    rep = np.maximum(1, np.ceil(extent_A / lengths[:2])).astype(int)
    slab = slab * (int(rep[0]), int(rep[1]), 1)
    lengths = slab.cell.lengths()
    pot = abtem.Potential(slab, sampling=FINE_SAMPLING, projection="infinite", parametrization="lobato",
                          slice_thickness=float(lengths[2]))
    v = np.asarray(pot.build().compute(progress_bar=False).array, np.float64).sum(0)  # (nx, ny): abTEM is x-first
    v = v.T  # -> [iy, ix]
    xy = np.mod(slab.positions[:, :2], lengths[:2])
    cols: list[np.ndarray] = []
    for p in xy[np.lexsort((xy[:, 1], xy[:, 0]))]:
        if cols:
            d = np.abs(np.asarray(cols) - p)
            d = np.minimum(d, lengths[:2] - d)
            if np.min(np.hypot(d[:, 0], d[:, 1])) < COLUMN_TOL:
                continue
        cols.append(p)
    colxy = np.asarray(cols)
    # grid actually used by abTEM (gpts may round the sampling)
    cell_yx = np.array([lengths[1], lengths[0]])
    return v, colxy[:, ::-1].copy(), cell_yx


def _probe_intensity(shape: tuple[int, int], spacing: tuple[float, float], energy: float, semiangle: float,
                     defocus: float, cs_A: float) -> np.ndarray:
    """Probe intensity ``|psi|^2`` on the periodic grid ``shape`` (centred at index 0), normalised to sum 1."""
    abtem = _abtem()
    ny, nx = shape
    probe = abtem.Probe(energy=energy, semiangle_cutoff=semiangle, defocus=defocus, Cs=cs_A,
                        gpts=(nx, ny), extent=(nx * spacing[1], ny * spacing[0]))
    psi = np.asarray(probe.build((0.0, 0.0)).compute(progress_bar=False).array).T  # -> [iy, ix]
    p = np.abs(psi) ** 2
    return p / p.sum()


def _smooth_periodic(img: np.ndarray, kernel: np.ndarray | None, sigma_px: float) -> np.ndarray:
    """Periodic convolution with ``kernel`` (centred at index 0) and a Gaussian of ``sigma_px``."""
    f = np.fft.rfft2(img)
    if kernel is not None:
        f *= np.fft.rfft2(kernel)
    ky = np.fft.fftfreq(img.shape[0])[:, None]
    kx = np.fft.rfftfreq(img.shape[1])[None, :]
    f *= np.exp(-2 * (math.pi * sigma_px) ** 2 * (ky ** 2 + kx ** 2))
    return np.fft.irfft2(f, s=img.shape)


def _column_sigma(probe: np.ndarray, step: tuple[float, float], sig: float, pix: float) -> float:
    """Effective Gaussian width of a column, scan px: the second moment, inside 1 Å, of the probe intensity
    blurred by the source and thermal smearing (an Airy pattern's tails have no finite moment), with the
    atomic core (~0.1 Å) added in quadrature."""
    ny, nx = probe.shape
    psf = np.maximum(_smooth_periodic(np.roll(np.roll(probe, ny // 2, 0), nx // 2, 1), None, sig), 0)
    r2 = ((np.arange(ny) - ny // 2)[:, None] * step[0]) ** 2 + ((np.arange(nx) - nx // 2)[None, :] * step[1]) ** 2
    core = r2 < 1.0
    var = float(np.sum(psf[core] * r2[core]) / np.sum(psf[core]) / 2)
    return math.sqrt(var + 0.1 ** 2) / pix


def _column_values(clean_fine: np.ndarray, step: tuple[float, float], cols: np.ndarray, dmin: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each column's value in the noise-free image, and its contrast: the value minus the lowest value on a
    circle of radius 0.5 x the smallest spacing around it (the tails of heavier neighbours lift a light
    column's value, not its contrast)."""
    from scipy.ndimage import map_coordinates

    a = np.linspace(0, 2 * math.pi, 32, endpoint=False)
    ring = cols[:, None, :] + 0.5 * dmin * np.stack([np.sin(a), np.cos(a)], -1)[None]
    grid = lambda yx: np.stack([yx[..., 0] / step[0], yx[..., 1] / step[1]]).reshape(2, -1)  # noqa: E731
    centre = map_coordinates(clean_fine, grid(cols), order=3, mode="grid-wrap")
    low = map_coordinates(clean_fine, grid(ring), order=3, mode="grid-wrap").reshape(len(cols), -1).min(1)
    return centre, centre - low


def _resolved(clean_fine: np.ndarray, step: tuple[float, float], cols: np.ndarray, cell: np.ndarray, dmin: float,
              floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Which columns the probe resolves, and the image maxima that belong to no column.

    A column is resolved when the noise-free image has a local maximum within 0.3 x the smallest column
    spacing of it (a shoulder on a brighter neighbour, or two columns merged into one blob as a
    silicon dumbbell under an 80 kV probe, have none). Maxima below ``floor`` are ignored.

    Returns
    -------
    resolved : ndarray of bool, shape (len(cols),)
    blobs : ndarray, shape (m, 2)
        ``(y, x)`` Å of the maxima with no column within 0.3 x the spacing (merged columns' blobs).
    """
    from scipy.ndimage import maximum_filter

    r = max(2, int(round(0.2 / step[0])))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    mx = (clean_fine == maximum_filter(clean_fine, footprint=(yy ** 2 + xx ** 2) <= r * r, mode="wrap"))
    mx &= clean_fine > floor
    pk = np.argwhere(mx) * np.asarray(step)
    if not len(pk):
        return np.zeros(len(cols), bool), np.zeros((0, 2))
    d = np.abs(cols[:, None, :] - pk[None, :, :])
    d = np.minimum(d, cell - d)
    dist = np.hypot(d[..., 0], d[..., 1])
    near = dist <= 0.3 * dmin
    return near.any(1), pk[~near.any(0)]


def abtem_atom_image(rng: np.random.Generator, size: int = 256, *, name: str | None = None, dose: float | None = None,
                     spacing_px: float | None = None, thickness_A: float = 60.0, distortion: bool = True) -> AtomImage:
    """One HAADF-STEM image of a crystal by abTEM potentials, probe and incoherent imaging, with exact truth.

    Parameters
    ----------
    rng : numpy Generator
    size : int
        Image side, px.
    name : str, optional
        A key of :data:`CRYSTALS` (default random).
    dose : float, optional
        Peak dose: expected counts at the typical peak of the brightest columns (default log-uniform 10-1000).
    spacing_px : float, optional
        Smallest column spacing in px (default log-uniform 4-30).
    thickness_A : float
        Slab thickness, Å.
    distortion : bool
        Scan-line shift and jitter (False: a perfect scan).

    Returns
    -------
    AtomImage
        As :func:`~.atoms.atom_image` (``params`` names the crystal, probe, source size and distortion).
    """
    from scipy.ndimage import map_coordinates

    if size < 16:
        raise InputError(f"image size must be at least 16 px, got {size}")
    if dose is not None and not (np.isfinite(dose) and dose > 0):
        raise InputError(f"dose must be a positive number of counts, got {dose}")
    if spacing_px is not None and not (np.isfinite(spacing_px) and 1.0 <= spacing_px <= size / 2):
        raise InputError(f"spacing_px must be between 1 and half the image size ({size / 2:g} px), got {spacing_px}")
    name = name if name is not None else str(rng.choice(list(CRYSTALS)))
    dose = float(dose) if dose is not None else float(math.exp(rng.uniform(math.log(10), math.log(1000))))
    spacing_px = float(spacing_px) if spacing_px is not None else float(math.exp(rng.uniform(math.log(4), math.log(30))))
    v, cols, cell = projected_scene(name, thickness_A)
    ny, nx = v.shape
    step = (cell[0] / ny, cell[1] / nx)
    energy = float(rng.choice([80e3, 200e3, 300e3]))
    semiangle = float(rng.uniform(20.0, 30.0))
    defocus = float(rng.normal(0.0, 15.0))
    cs_A = float(rng.uniform(0.0, 5e4))  # 0-5 um (aberration-corrected)
    source_fwhm = float(rng.uniform(0.3, 0.6))
    probe = _probe_intensity((ny, nx), step, energy, semiangle, defocus, cs_A)
    sig = math.hypot(source_fwhm / 2.3548, THERMAL_RMS) / step[0]
    obj = np.maximum(v, 0.0) ** CONTRAST_EXPONENT
    clean_fine = _smooth_periodic(obj, probe, sig)
    # the smallest spacing between distinct columns, Å (periodic)
    d = cols[:, None, :] - cols[None, :, :]
    d = np.abs(d)
    d = np.minimum(d, cell - d)
    dist = np.hypot(d[..., 0], d[..., 1])
    dmin = float(np.min(dist[dist > 1e-6]))
    pix = dmin / spacing_px  # Å per scan pixel
    theta = float(rng.uniform(0, 2 * math.pi))
    origin = rng.uniform(0, 1, 2) * cell
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    # scan distortion: slow sinusoidal line shift + per-line jitter, px along x (fast scan)
    rows = np.arange(size, dtype=float)
    amp = float(rng.uniform(0, 0.5)) if distortion else 0.0
    jitter_sd = float(rng.uniform(0, 0.15)) if distortion else 0.0
    shift = amp * np.sin(2 * math.pi * rows / float(rng.uniform(size / 2, 2 * size)) + rng.uniform(0, 2 * math.pi))
    shift = shift + rng.normal(0, jitter_sd, size)
    ii, jj = np.meshgrid(rows, np.arange(size, dtype=float), indexing="ij")
    rc = np.stack([ii, jj + shift[:, None]], -1)  # where each pixel actually samples, in ideal scan px
    yx = origin + (rc * pix) @ rot.T  # Å
    coords = np.stack([yx[..., 0] / step[0], yx[..., 1] / step[1]])
    clean_unit = map_coordinates(clean_fine, coords, order=3, mode="grid-wrap")
    # truth: every periodic image of every column that falls inside the scan
    inv = rot.T
    span = size * pix * math.sqrt(2) + cell.max()
    nrep = np.ceil(span / cell).astype(int) + 1
    reps = np.stack(np.meshgrid(np.arange(-nrep[0], nrep[0] + 1), np.arange(-nrep[1], nrep[1] + 1), indexing="ij"),
                    -1).reshape(-1, 2) * cell
    allc = (cols[None, :, :] + reps[:, None, :]).reshape(-1, 2)
    ideal = ((allc - origin) @ inv.T) / pix  # (row, col) in ideal scan px
    inside = (ideal[:, 0] >= -1) & (ideal[:, 0] <= size) & (ideal[:, 1] >= -2) & (ideal[:, 1] <= size + 1)
    ideal = ideal[inside]
    # recorded position: a column imaged on row r is shifted by -shift[r] along x (the scan sampled x + shift)
    sigma_px = _column_sigma(probe, step, sig, pix)
    g = np.exp(-0.5 * ((rows[None, :] - ideal[:, :1]) / sigma_px) ** 2)  # each column's profile along y
    sm = (g @ shift) / np.maximum(g.sum(1), 1e-12)
    rec = ideal.copy()
    rec[:, 1] -= sm
    keep = (rec[:, 0] >= 0) & (rec[:, 0] <= size - 1) & (rec[:, 1] >= 0) & (rec[:, 1] <= size - 1)
    rec = rec[keep]
    base = np.flatnonzero(inside)[keep] % len(cols)  # the supercell column each recorded column copies
    value, contrast = _column_values(clean_fine, step, cols, dmin)
    peak = value[base]
    visible = contrast[base] >= VISIBLE_FRACTION * float(np.percentile(contrast, 90))
    typical = float(np.percentile(value, 90))
    resolved, blobs = _resolved(clean_fine, step, cols, cell, dmin, 0.5 * VISIBLE_FRACTION * typical)
    merged = visible & ~resolved[base]
    ball = (blobs[None, :, :] + reps[:, None, :]).reshape(-1, 2)
    bpx = ((ball - origin) @ inv.T) / pix
    bpx = bpx[(bpx >= 0).all(1) & (bpx <= size - 1).all(1)]
    background = float(rng.uniform(0.0, 0.08))
    scale = dose / typical
    clean = (clean_unit * scale + background * dose).astype(np.float32)
    image = rng.poisson(np.maximum(clean, 0)).astype(np.float32)
    faint = np.vstack([rec[~visible], rec[merged], bpx])
    visible &= ~merged
    level = np.round(np.log(np.maximum(peak[visible], 1e-12) / typical) / np.log(0.6)).astype(int)
    classes = np.unique(np.clip(level, 0, None), return_inverse=True)[1].astype(int)
    return AtomImage(image=image, clean=clean, atoms=rec[visible], classes=classes,
                     dopant=np.zeros(int(visible.sum()), bool), sigma_px=float(sigma_px), spacing_px=spacing_px,
                     dose=dose, pixel_size_m=pix * 1e-10,
                     params={"structure": name, "simulator": "abtem-incoherent", "energy_eV": energy,
                             "semiangle_mrad": semiangle, "defocus_A": defocus, "cs_A": cs_A,
                             "source_fwhm_A": source_fwhm, "rotation_rad": theta, "line_shift_px": amp,
                             "jitter_px": jitter_sd, "background": background, "thickness_A": thickness_A,
                             "support": 0.0, "faint_columns": faint, "unresolved": int(merged.sum())})
