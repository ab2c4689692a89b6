"""Exit-wave datasets by multislice (abTEM) from crystals built offline with ASE.

The protocol follows Ede's chapter 7 (``papers/ede2021-thesis-6-7-8-denoiser-exitwave.txt``,
section 2), scaled down to run on a few CPU cores:

- a crystal (an :class:`ase.Atoms` unit cell, from :func:`material_library` or a CIF file) is
  oriented along a zone axis ``[u v w]`` with ``u, v, w`` in ``{0, 1, 2}`` (``[0 0 0]`` excluded),
  each crystal axis tilted by a zero-centred Gaussian of standard deviation 0.1 degree, and carved
  into a block ``lateral x lateral x thickness`` (lateral uniform in ``[5, 10)`` nm, thickness
  uniform in ``[5, 100)`` nm, for the full range);
- the block is padded with 0.8 nm of vacuum in the image plane and 0.3 nm along the beam;
- a plane wave at 80, 200 or 300 kV is propagated through it by abTEM (Kirkland
  parametrisation) on a fixed grid of ``gpts x gpts`` pixels;
- the central ``crop x crop`` region (the chapter keeps 320 of 512, we keep 3/4 of the grid, which
  stays inside the material for every lateral size of the range) is kept and the wave is divided by
  its mean amplitude.

``RANGES["restricted"]`` narrows the ranges by factors close to 1/4, as the chapter's restricted
set: thickness ``[5, 28.75)`` nm, lateral ``[5, 6.25)`` nm, one voltage (300 kV) and zone-axis
indices in ``{0, 1}``. The chapter does not give its restricted voltages or zone axes; those two
choices are ours.

Materials are split by name (:data:`SPLITS`), so that waves for the ``test`` materials come from
structures a network trained on ``train`` never saw. Simulations are cached on disk (one ``.npz``
per wave, keyed by structure and parameters) under ``$SCOPENET_CACHE/exitwave`` or
``~/.cache/scopenet/exitwave``.

abTEM and ASE are optional (``pip install 'scopenet[sim]'``); they are imported when a wave is
simulated or a crystal built, never at import time.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable

import numpy as np

from ...errors import InputError, ReadError, require

__all__ = ["ParameterRange", "RANGES", "WaveParams", "SPLITS", "BASE_TRAIN", "EXTRA_TRAIN", "SINGLE_MATERIAL", "material_library",
           "load_structure", "zone_axes", "sample_params", "orient_and_carve", "simulate_exit_wave",
           "simulate_set", "cache_dir", "save_waves", "load_waves"]

FEATURE = "exit-wave simulation (abTEM + ASE)"
VACUUM_XY_NM = 0.8
VACUUM_Z_NM = 0.3


@dataclass(frozen=True)
class ParameterRange:
    """Ranges the simulation parameters are drawn from.

    Attributes
    ----------
    voltages_kv : tuple of float
        Accelerating voltages, kV, drawn uniformly.
    thickness_nm : (float, float)
        Specimen thickness along the beam, nm, uniform in ``[lo, hi)``.
    lateral_nm : (float, float)
        Specimen width in the image plane (square), nm, uniform in ``[lo, hi)``.
    zone_index_max : int
        Zone axes ``[u v w]`` with indices in ``{0 .. zone_index_max}``.
    tilt_sigma_deg : float
        Standard deviation of the Gaussian tilt of each axis, degrees.
    """

    voltages_kv: tuple[float, ...] = (80.0, 200.0, 300.0)
    thickness_nm: tuple[float, float] = (5.0, 100.0)
    lateral_nm: tuple[float, float] = (5.0, 10.0)
    zone_index_max: int = 2
    tilt_sigma_deg: float = 0.1


RANGES: dict[str, ParameterRange] = {
    "full": ParameterRange(),
    "restricted": ParameterRange(voltages_kv=(300.0,), thickness_nm=(5.0, 28.75), lateral_nm=(5.0, 6.25),
                                 zone_index_max=1),
}


@dataclass(frozen=True)
class WaveParams:
    """Parameters of one simulated exit wave (all drawn by :func:`sample_params`)."""

    material: str
    voltage_kv: float
    thickness_nm: float
    lateral_nm: float
    zone: tuple[int, int, int]
    tilt_deg: tuple[float, float, float]
    origin_frac: tuple[float, float, float]
    gpts: int = 192
    crop: int = 144
    slice_thickness: float = 2.0

    def key(self, structure_id: str) -> str:
        """Cache key: a hash of these parameters and the structure's identity."""
        blob = json.dumps({**asdict(self), "structure": structure_id, "v": 1}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:20]


# -- materials -----------------------------------------------------------------------------------

def _crystal(symbols, basis, spacegroup, cellpar, setting=1):
    spg = require("ase.spacegroup", "sim", FEATURE)
    return spg.crystal(symbols, basis=basis, spacegroup=spacegroup, cellpar=cellpar, setting=setting)


def _bulk(*args, **kwargs):
    build = require("ase.build", "sim", FEATURE)
    return build.bulk(*args, **kwargs)


_MATERIALS = {
    # elements
    "Si": lambda: _bulk("Si", "diamond", a=5.431, cubic=True),
    "Ge": lambda: _bulk("Ge", "diamond", a=5.658, cubic=True),
    "C-diamond": lambda: _bulk("C", "diamond", a=3.567, cubic=True),
    "Al": lambda: _bulk("Al", "fcc", a=4.05, cubic=True),
    "Cu": lambda: _bulk("Cu", "fcc", a=3.615, cubic=True),
    "Au": lambda: _bulk("Au", "fcc", a=4.078, cubic=True),
    "Pt": lambda: _bulk("Pt", "fcc", a=3.924, cubic=True),
    "Fe": lambda: _bulk("Fe", "bcc", a=2.8665, cubic=True),
    "W": lambda: _bulk("W", "bcc", a=3.165, cubic=True),
    "Mo": lambda: _bulk("Mo", "bcc", a=3.147, cubic=True),
    "Mg": lambda: _bulk("Mg", "hcp", a=3.209, c=5.211),
    "Ti": lambda: _bulk("Ti", "hcp", a=2.951, c=4.686),
    "Zn": lambda: _bulk("Zn", "hcp", a=2.665, c=4.947),
    # binary compounds
    "NaCl": lambda: _bulk("NaCl", "rocksalt", a=5.64, cubic=True),
    "MgO": lambda: _bulk("MgO", "rocksalt", a=4.212, cubic=True),
    "GaAs": lambda: _bulk("GaAs", "zincblende", a=5.653, cubic=True),
    "CdTe": lambda: _bulk("CdTe", "zincblende", a=6.481, cubic=True),
    "ZnO": lambda: _bulk("ZnO", "wurtzite", a=3.25, c=5.207),
    "GaN": lambda: _bulk("GaN", "wurtzite", a=3.189, c=5.185),
    "CaF2": lambda: _bulk("CaF2", "fluorite", a=5.463, cubic=True),
    "CsCl": lambda: _bulk("CsCl", "cesiumchloride", a=4.123),
    # more training crystals (lattice constants at room temperature, Å)
    "Ni": lambda: _bulk("Ni", "fcc", a=3.524, cubic=True),
    "Ag": lambda: _bulk("Ag", "fcc", a=4.086, cubic=True),
    "Pd": lambda: _bulk("Pd", "fcc", a=3.891, cubic=True),
    "Pb": lambda: _bulk("Pb", "fcc", a=4.950, cubic=True),
    "Ir": lambda: _bulk("Ir", "fcc", a=3.839, cubic=True),
    "Cr": lambda: _bulk("Cr", "bcc", a=2.910, cubic=True),
    "V": lambda: _bulk("V", "bcc", a=3.030, cubic=True),
    "Nb": lambda: _bulk("Nb", "bcc", a=3.300, cubic=True),
    "Ta": lambda: _bulk("Ta", "bcc", a=3.306, cubic=True),
    "Co": lambda: _bulk("Co", "hcp", a=2.507, c=4.069),
    "Zr": lambda: _bulk("Zr", "hcp", a=3.232, c=5.147),
    "Cd": lambda: _bulk("Cd", "hcp", a=2.979, c=5.619),
    "Hf": lambda: _bulk("Hf", "hcp", a=3.195, c=5.051),
    "Sn-alpha": lambda: _bulk("Sn", "diamond", a=6.489, cubic=True),
    "LiF": lambda: _bulk("LiF", "rocksalt", a=4.026, cubic=True),
    "KCl": lambda: _bulk("KCl", "rocksalt", a=6.293, cubic=True),
    "CaO": lambda: _bulk("CaO", "rocksalt", a=4.811, cubic=True),
    "PbS": lambda: _bulk("PbS", "rocksalt", a=5.936, cubic=True),
    "NiO": lambda: _bulk("NiO", "rocksalt", a=4.177, cubic=True),
    "InP": lambda: _bulk("InP", "zincblende", a=5.869, cubic=True),
    "InAs": lambda: _bulk("InAs", "zincblende", a=6.058, cubic=True),
    "AlAs": lambda: _bulk("AlAs", "zincblende", a=5.661, cubic=True),
    "GaP": lambda: _bulk("GaP", "zincblende", a=5.451, cubic=True),
    "ZnS": lambda: _bulk("ZnS", "zincblende", a=5.409, cubic=True),
    "ZnSe": lambda: _bulk("ZnSe", "zincblende", a=5.668, cubic=True),
    "SiC-3C": lambda: _bulk("SiC", "zincblende", a=4.360, cubic=True),
    "AlN": lambda: _bulk("AlN", "wurtzite", a=3.112, c=4.982),
    "CdS": lambda: _bulk("CdS", "wurtzite", a=4.136, c=6.714),
    "SrF2": lambda: _bulk("SrF2", "fluorite", a=5.800, cubic=True),
    "BaF2": lambda: _bulk("BaF2", "fluorite", a=6.200, cubic=True),
    "CeO2": lambda: _bulk("CeO2", "fluorite", a=5.411, cubic=True),
    "CsBr": lambda: _bulk("CsBr", "cesiumchloride", a=4.296),
    "CsI": lambda: _bulk("CsI", "cesiumchloride", a=4.567),
    "KTaO3": lambda: _crystal(["K", "Ta", "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], 221,
                              [3.989, 3.989, 3.989, 90, 90, 90]),
    "LaAlO3-cubic": lambda: _crystal(["La", "Al", "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], 221,
                                     [3.811, 3.811, 3.811, 90, 90, 90]),
    # spacegroup crystals
    "SrTiO3": lambda: _crystal(["Sr", "Ti", "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], 221,
                               [3.905, 3.905, 3.905, 90, 90, 90]),
    "BaTiO3-cubic": lambda: _crystal(["Ba", "Ti", "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], 221,
                                     [4.01, 4.01, 4.01, 90, 90, 90]),
    "TiO2-rutile": lambda: _crystal(["Ti", "O"], [(0, 0, 0), (0.3048, 0.3048, 0)], 136,
                                    [4.594, 4.594, 2.959, 90, 90, 90]),
    "SnO2": lambda: _crystal(["Sn", "O"], [(0, 0, 0), (0.3056, 0.3056, 0)], 136,
                             [4.737, 4.737, 3.186, 90, 90, 90]),
    "Al2O3": lambda: _crystal(["Al", "O"], [(0, 0, 0.3523), (0.3064, 0, 0.25)], 167,
                              [4.759, 4.759, 12.99, 90, 90, 120]),
    "MgAl2O4": lambda: _crystal(["Mg", "Al", "O"], [(0.125, 0.125, 0.125), (0.5, 0.5, 0.5),
                                                     (0.2624, 0.2624, 0.2624)], 227, [8.08, 8.08, 8.08, 90, 90, 90],
                                setting=2),
    "ZrO2-cubic": lambda: _crystal(["Zr", "O"], [(0, 0, 0), (0.25, 0.25, 0.25)], 225,
                                   [5.07, 5.07, 5.07, 90, 90, 90]),
    "MoS2": lambda: _crystal(["Mo", "S"], [(1 / 3, 2 / 3, 0.25), (1 / 3, 2 / 3, 0.621)], 194,
                             [3.16, 3.16, 12.29, 90, 90, 120]),
    "PbTiO3": lambda: _crystal(["Pb", "Ti", "O", "O"], [(0, 0, 0), (0.5, 0.5, 0.538), (0.5, 0.5, 0.117),
                                                          (0.5, 0, 0.617)], 99, [3.904, 3.904, 4.152, 90, 90, 90]),
}

#: Material splits: networks train on ``train``; ``test`` materials are unseen by every shipped model.
#: The first 17 training materials (the sets of the first shipped models); :data:`EXTRA_TRAIN` was added later.
BASE_TRAIN: tuple[str, ...] = ("Si", "Al", "Cu", "Au", "Fe", "W", "Mg", "Ti", "NaCl", "GaAs", "ZnO", "CaF2", "SrTiO3",
                               "TiO2-rutile", "Al2O3", "MgAl2O4", "MoS2")
#: 35 more training crystals (metals, rocksalt, zincblende, wurtzite, fluorite, CsCl and perovskite types).
EXTRA_TRAIN: tuple[str, ...] = ("Ni", "Ag", "Pd", "Pb", "Ir", "Cr", "V", "Nb", "Ta", "Co", "Zr", "Cd", "Hf",
                                "Sn-alpha", "LiF", "KCl", "CaO", "PbS", "NiO", "InP", "InAs", "AlAs", "GaP", "ZnS",
                                "ZnSe", "SiC-3C", "AlN", "CdS", "SrF2", "BaF2", "CeO2", "CsBr", "CsI", "KTaO3",
                                "LaAlO3-cubic")
SPLITS: dict[str, tuple[str, ...]] = {
    "train": BASE_TRAIN + EXTRA_TRAIN,
    "val": ("Ge", "Pt", "Zn", "CsCl", "SnO2"),
    "test": ("C-diamond", "Mo", "MgO", "CdTe", "GaN", "BaTiO3-cubic", "ZrO2-cubic", "PbTiO3"),
}
#: The material of the single-material model (the chapter used one complex oxide; ours is SrTiO3).
SINGLE_MATERIAL = "SrTiO3"


def material_library() -> tuple[str, ...]:
    """Names of the built-in crystals (elements, binary compounds and spacegroup crystals)."""
    return tuple(_MATERIALS)


def load_structure(name_or_path: str | os.PathLike):
    """A crystal unit cell: a built-in material name or a CIF (any file ASE can read).

    Returns
    -------
    (ase.Atoms, str)
        The unit cell and an identity string for the cache (name, or path plus content hash).

    Raises
    ------
    InputError
        Unknown material name.
    ReadError
        A file ASE cannot read, or one holding no atoms.
    """
    key = str(name_or_path)
    if key in _MATERIALS:
        return _MATERIALS[key](), key
    path = Path(name_or_path)
    if not path.exists():
        raise InputError(f"unknown material {key!r}: neither a built-in name ({', '.join(_MATERIALS)}) "
                         "nor an existing structure file")
    aseio = require("ase.io", "sim", FEATURE)
    try:
        atoms = aseio.read(str(path))
    except Exception as exc:  # ASE raises many kinds
        raise ReadError(path, f"ASE could not read a crystal structure: {exc}") from exc
    if len(atoms) == 0 or abs(np.linalg.det(np.asarray(atoms.cell))) < 1e-6:
        raise ReadError(path, "holds no atoms or no 3-D unit cell")
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:12]
    return atoms, f"{path.name}:{digest}"


# -- geometry ------------------------------------------------------------------------------------

def zone_axes(index_max: int = 2) -> list[tuple[int, int, int]]:
    """Zone axes ``[u v w]`` with indices in ``{0 .. index_max}``, ``[0 0 0]`` excluded."""
    r = range(index_max + 1)
    return [(u, v, w) for u in r for v in r for w in r if (u, v, w) != (0, 0, 0)]


def _rotation_to_z(direction: np.ndarray, in_plane: np.ndarray) -> np.ndarray:
    """Rotation matrix taking ``direction`` to +z and ``in_plane`` (projected) to +x."""
    z = direction / np.linalg.norm(direction)
    x = in_plane - np.dot(in_plane, z) * z
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(z, [0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.cross(z, [1.0, 0.0, 0.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])  # rows: new axes in old coordinates


def _tilt_matrix(tilt_deg) -> np.ndarray:
    ax, ay, az = np.deg2rad(np.asarray(tilt_deg, float))
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def orient_and_carve(unit_cell, zone, tilt_deg, lateral_a: float, thickness_a: float,
                     origin_frac=(0.0, 0.0, 0.0), chunk_a: float = 40.0):
    """Atoms of a crystal oriented along ``zone`` (and tilted) inside a block, with vacuum.

    Parameters
    ----------
    unit_cell : ase.Atoms
        Any periodic cell.
    zone : (int, int, int)
        Zone axis ``[u v w]`` in the cell's lattice vectors; it becomes the beam direction (+z).
    tilt_deg : (float, float, float)
        Small rotations about x, y, z applied after orientation, degrees.
    lateral_a, thickness_a : float
        Block size in the image plane (square) and along the beam, Å.
    origin_frac : (float, float, float)
        Shift of the crystal origin in fractional coordinates (random translations).
    chunk_a : float
        The block is filled slab by slab of this height (Å), which bounds memory.

    Returns
    -------
    ase.Atoms
        Orthogonal cell ``lateral + 2*0.8 nm`` wide and ``thickness + 2*0.3 nm`` deep, not periodic
        along z.
    """
    ase = require("ase", "sim", FEATURE)
    cell = np.asarray(unit_cell.cell, float)
    frac = np.mod(np.asarray(unit_cell.get_scaled_positions(wrap=True), float) + np.asarray(origin_frac, float), 1.0)
    numbers = np.asarray(unit_cell.numbers)
    direction = np.asarray(zone, float) @ cell
    if np.linalg.norm(direction) == 0:
        raise InputError("zone axis [0 0 0] has no direction")
    in_plane = cell[0] if np.linalg.norm(np.cross(cell[0], direction)) > 1e-6 else cell[1]
    rot = _tilt_matrix(tilt_deg) @ _rotation_to_z(direction, in_plane)  # lab = rot @ crystal
    inv_cell = np.linalg.inv(cell)
    pos_all, num_all = [], []
    z0 = 0.0
    while z0 < thickness_a:
        z1 = min(z0 + chunk_a, thickness_a)
        corners = np.array([[x, y, z] for x in (0, lateral_a) for y in (0, lateral_a) for z in (z0, z1)])
        frac_c = (corners @ rot) @ inv_cell  # crystal cartesian = rot.T @ lab; row form: lab @ rot
        lo = np.floor(frac_c.min(0)).astype(int) - 1
        hi = np.ceil(frac_c.max(0)).astype(int) + 1
        grid = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1)
        grid = grid.reshape(-1, 3)
        f = (grid[:, None, :] + frac[None, :, :]).reshape(-1, 3)
        lab = (f @ cell) @ rot.T
        keep = ((lab[:, 0] >= 0) & (lab[:, 0] < lateral_a) & (lab[:, 1] >= 0) & (lab[:, 1] < lateral_a)
                & (lab[:, 2] >= z0) & (lab[:, 2] < z1))
        pos_all.append(lab[keep])
        num_all.append(np.tile(numbers, len(grid))[keep])
        z0 = z1
    pos = np.concatenate(pos_all) if pos_all else np.zeros((0, 3))
    nums = np.concatenate(num_all) if num_all else np.zeros(0, int)
    vxy, vz = VACUUM_XY_NM * 10.0, VACUUM_Z_NM * 10.0
    pos = pos + np.array([vxy, vxy, vz])
    atoms = ase.Atoms(numbers=nums, positions=pos,
                      cell=[lateral_a + 2 * vxy, lateral_a + 2 * vxy, thickness_a + 2 * vz],
                      pbc=[True, True, False])
    return atoms


# -- parameters and simulation -------------------------------------------------------------------

def sample_params(material: str, rng: np.random.Generator, prange: ParameterRange | str = "full", *,
                  gpts: int = 192, crop: int = 144, slice_thickness: float = 2.0) -> WaveParams:
    """Draw one set of simulation parameters from ``prange`` (a :class:`ParameterRange` or its name)."""
    pr = RANGES[prange] if isinstance(prange, str) else prange
    axes = zone_axes(pr.zone_index_max)
    zone = axes[int(rng.integers(len(axes)))]
    return WaveParams(
        material=str(material),
        voltage_kv=float(pr.voltages_kv[int(rng.integers(len(pr.voltages_kv)))]),
        thickness_nm=float(rng.uniform(*pr.thickness_nm)),
        lateral_nm=float(rng.uniform(*pr.lateral_nm)),
        zone=tuple(int(i) for i in zone),
        tilt_deg=tuple(float(t) for t in rng.normal(0.0, pr.tilt_sigma_deg, 3)),
        origin_frac=tuple(float(t) for t in rng.uniform(0.0, 1.0, 3)),
        gpts=int(gpts), crop=int(crop), slice_thickness=float(slice_thickness),
    )


def cache_dir() -> Path:
    """Where simulated waves are cached: ``$SCOPENET_CACHE/exitwave`` or ``~/.cache/scopenet/exitwave``."""
    root = os.environ.get("SCOPENET_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "scopenet"
    return base / "exitwave"


def _crop_center(a: np.ndarray, size: int) -> np.ndarray:
    ny, nx = a.shape[-2:]
    if size > min(ny, nx):
        raise InputError(f"crop {size} larger than the simulated grid {ny}x{nx}")
    y0, x0 = (ny - size) // 2, (nx - size) // 2
    return a[..., y0:y0 + size, x0:x0 + size]


def simulate_exit_wave(params: WaveParams, structure=None, *, cache: bool | str | Path = True) -> np.ndarray:
    """One exit wave for ``params``: multislice, central crop, mean amplitude scaled to 1.

    Parameters
    ----------
    params : WaveParams
        From :func:`sample_params`.
    structure : ase.Atoms or path or None
        The unit cell; default: ``load_structure(params.material)``.
    cache : bool or path
        Read/write the on-disk cache (True: :func:`cache_dir`; a path: that folder; False: none).

    Returns
    -------
    ndarray, complex64, shape (crop, crop)
        The exit wave ``A exp(i theta)`` with ``mean(A) == 1``.
    """
    from .abtem_backend import exit_wave

    if structure is None:
        unit, sid = load_structure(params.material)
    elif isinstance(structure, (str, os.PathLike)):
        unit, sid = load_structure(structure)
    else:
        unit, sid = structure, f"atoms:{hashlib.sha1(np.asarray(structure.positions).tobytes()).hexdigest()[:12]}"
    path = None
    if cache:
        folder = cache_dir() if cache is True else Path(cache)
        path = folder / f"{params.key(sid)}.npy"
        if path.exists():
            try:
                return np.load(path)
            except (OSError, ValueError):
                pass  # a broken cache entry is recomputed
    atoms = orient_and_carve(unit, params.zone, params.tilt_deg, params.lateral_nm * 10.0,
                             params.thickness_nm * 10.0, params.origin_frac)
    wave = exit_wave(atoms, energy=params.voltage_kv * 1e3, gpts=params.gpts,
                     slice_thickness=params.slice_thickness, parametrization="kirkland")
    wave = _crop_center(wave, params.crop).astype(np.complex64)
    wave = wave / np.float32(np.abs(wave).mean())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, wave)
        os.replace(tmp, path)
    return wave


def simulate_set(materials: Iterable[str], n_per_material: int, *, prange: ParameterRange | str = "full",
                 seed: int = 0, gpts: int = 192, crop: int = 144, slice_thickness: float = 2.0,
                 cache: bool | str | Path = True, progress: bool = True, structures: dict | None = None):
    """Simulate ``n_per_material`` waves for each material.

    Parameters
    ----------
    materials : iterable of str
        Built-in names or CIF paths.
    structures : dict, optional
        Pre-loaded unit cells by material name (skips :func:`load_structure`).

    Returns
    -------
    (ndarray complex64 (N, crop, crop), list of WaveParams)
    """
    rng = np.random.default_rng(seed)
    materials = list(materials)
    jobs = [sample_params(m, rng, prange, gpts=gpts, crop=crop, slice_thickness=slice_thickness)
            for _ in range(n_per_material) for m in materials]
    waves = []
    it = jobs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(jobs, desc="exit waves", unit="wave")
    for p in it:
        s = (structures or {}).get(p.material)
        waves.append(simulate_exit_wave(p, structure=s if s is not None else p.material, cache=cache))
    return np.stack(waves) if waves else np.zeros((0, crop, crop), np.complex64), jobs


def save_waves(path: str | Path, waves: np.ndarray, params: list[WaveParams], meta: dict | None = None) -> Path:
    """Write waves and their parameters to one ``.npz`` (written to a temporary name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    info = json.dumps({"params": [asdict(p) for p in params], "meta": meta or {}})
    np.savez_compressed(tmp, waves=np.asarray(waves, np.complex64), info=np.array(info))
    os.replace(tmp, path)
    return path


def load_waves(path: str | Path) -> tuple[np.ndarray, list[WaveParams], dict]:
    """Read a file written by :func:`save_waves`: ``(waves, params, meta)``."""
    path = Path(path)
    try:
        with np.load(path) as z:
            waves = z["waves"]
            info = json.loads(str(z["info"]))
    except (OSError, KeyError, ValueError) as exc:
        raise ReadError(path, f"not an exit-wave file written by save_waves: {exc}") from exc
    params = [WaveParams(**{**p, "zone": tuple(p["zone"]), "tilt_deg": tuple(p["tilt_deg"]),
                            "origin_frac": tuple(p["origin_frac"])}) for p in info["params"]]
    return waves, params, info.get("meta", {})


def with_grid(p: WaveParams, gpts: int, crop: int) -> WaveParams:
    """``p`` on another simulation grid."""
    return replace(p, gpts=int(gpts), crop=int(crop))
