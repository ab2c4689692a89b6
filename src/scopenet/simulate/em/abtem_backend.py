"""Optional multislice backend through abTEM (the ``sim`` extra).

abTEM is imported lazily; without it every function raises
:class:`~scopenet.errors.MissingExtraError` naming ``pip install 'scopenet[sim]'``. The built-in
:mod:`.hrtem` and :mod:`.lattice` simulators need no extra and are what the training data use by default.

Written against the abTEM 1.0 API (``abtem.Potential``, ``abtem.PlaneWave``, ``abtem.Probe``,
``abtem.GridScan``, ``abtem.AnnularDetector``). :func:`exit_wave` is exercised by
``tests/simulate/em/test_exitwave*.py`` (skipped when abTEM is absent).
"""
from __future__ import annotations

import numpy as np

from ...errors import require

FEATURE = "multislice simulation (abTEM)"


def _abtem():
    return require("abtem", "sim", FEATURE)


def available() -> bool:
    """True when abTEM can be imported."""
    try:
        _abtem()
    except ImportError:
        return False
    return True


def exit_wave(atoms, energy: float = 300e3, sampling: float | None = 0.05, slice_thickness: float = 1.0, *,
              gpts: int | tuple[int, int] | None = None, parametrization: str = "lobato",
              projection: str = "infinite") -> np.ndarray:
    """Complex exit wave of a plane wave through ``atoms`` (ase.Atoms), by multislice.

    Checked against abTEM 1.0 (``abtem.Potential(atoms, gpts, sampling, slice_thickness,
    parametrization, projection)``, ``abtem.PlaneWave(energy=...).multislice(potential)``, a lazy
    ``Waves`` computed here with dask's synchronous scheduler so that it uses one thread).

    Parameters
    ----------
    atoms : ase.Atoms
        Orthogonal cell with the beam along z.
    energy : float
        Electron energy, eV.
    sampling : float or None
        Real-space sampling, Å/px (ignored when ``gpts`` is given).
    slice_thickness : float
        Multislice slice thickness, Å.
    gpts : int or (int, int), optional
        Grid size in pixels; the sampling then follows from the cell size.
    parametrization : {"lobato", "kirkland"}
        Atomic potential parametrisation.
    projection : {"infinite", "finite"}
        Potential projection integrals.

    Returns
    -------
    ndarray, complex64, shape (ny, nx)
        The exit wave (unit incident amplitude).
    """
    abtem = _abtem()
    grid = {"gpts": gpts} if gpts is not None else {"sampling": sampling}
    potential = abtem.Potential(atoms, slice_thickness=slice_thickness, parametrization=parametrization,
                                projection=projection, **grid)
    wave = abtem.PlaneWave(energy=energy).multislice(potential)
    return np.asarray(wave.compute(scheduler="synchronous", progress_bar=False).array, np.complex64)


def hrtem_multislice(atoms, energy: float = 300e3, sampling: float = 0.05, defocus: float = 0.0,
                     cs_mm: float = 0.0, focal_spread: float = 0.0, slice_thickness: float = 1.0) -> np.ndarray:
    """HRTEM intensity: multislice exit wave through a CTF (abTEM sign conventions for defocus).

    Returns
    -------
    ndarray, float32, shape (ny, nx)
    """
    abtem = _abtem()
    potential = abtem.Potential(atoms, sampling=sampling, slice_thickness=slice_thickness)
    wave = abtem.PlaneWave(energy=energy).multislice(potential)
    ctf = abtem.CTF(defocus=defocus, Cs=cs_mm * 1e7, focal_spread=focal_spread, energy=energy)
    img = wave.apply_ctf(ctf).intensity().compute().array
    return np.asarray(img, np.float32)


def stem_multislice(atoms, energy: float = 200e3, semiangle_cutoff: float = 25.0, sampling: float = 0.2,
                    inner: float = 70.0, outer: float = 200.0, slice_thickness: float = 1.0) -> np.ndarray:
    """HAADF-STEM image by multislice with an annular detector (``inner``-``outer`` mrad).

    Returns
    -------
    ndarray, float32, shape (ny, nx) of the scan grid
    """
    abtem = _abtem()
    potential = abtem.Potential(atoms, sampling=0.05, slice_thickness=slice_thickness)
    probe = abtem.Probe(energy=energy, semiangle_cutoff=semiangle_cutoff)
    scan = abtem.GridScan(start=(0, 0), end=potential.extent, sampling=sampling)
    detector = abtem.AnnularDetector(inner=inner, outer=outer)
    measurement = probe.scan(potential, scan=scan, detectors=detector)
    return np.asarray(measurement.compute().array, np.float32)
