"""Exit-wave data pipeline (scopenet.simulate.em.exitwave): crystals, parameters, multislice, files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ase")

from scopenet.errors import InputError, ReadError  # noqa: E402
from scopenet.simulate.em import exitwave as ew  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "data" / "exitwave"


def test_zone_axes_have_indices_in_range_and_exclude_000():
    full, small = ew.zone_axes(2), ew.zone_axes(1)
    assert len(full) == 26 and len(small) == 7
    assert (0, 0, 0) not in full and (2, 2, 2) in full and (2, 0, 1) in full
    assert all(max(z) <= 1 for z in small)


@pytest.mark.parametrize("name", ["full", "restricted"])
def test_parameters_are_drawn_inside_their_ranges(name):
    pr = ew.RANGES[name]
    rng = np.random.default_rng(0)
    ps = [ew.sample_params("Si", rng, name) for _ in range(300)]
    assert {p.voltage_kv for p in ps} == set(pr.voltages_kv)
    th = np.array([p.thickness_nm for p in ps])
    lat = np.array([p.lateral_nm for p in ps])
    assert pr.thickness_nm[0] <= th.min() and th.max() < pr.thickness_nm[1]
    assert pr.lateral_nm[0] <= lat.min() and lat.max() < pr.lateral_nm[1]
    tilts = np.array([p.tilt_deg for p in ps])
    assert tilts.std() == pytest.approx(0.1, rel=0.15)
    assert all(max(p.zone) <= pr.zone_index_max and any(p.zone) for p in ps)


def test_restricted_ranges_are_about_a_quarter_of_the_full_ones():
    full, res = ew.RANGES["full"], ew.RANGES["restricted"]
    span = lambda r: r[1] - r[0]  # noqa: E731
    assert span(res.thickness_nm) / span(full.thickness_nm) == pytest.approx(0.25)
    assert span(res.lateral_nm) / span(full.lateral_nm) == pytest.approx(0.25)


def test_material_splits_are_disjoint_and_built_in():
    tr, va, te = (set(ew.SPLITS[k]) for k in ("train", "val", "test"))
    assert not (tr & va or tr & te or va & te)
    assert tr | va | te == set(ew.material_library())
    assert ew.SINGLE_MATERIAL in tr
    # the later training materials extend the first ones, each once
    assert ew.SPLITS["train"] == ew.BASE_TRAIN + ew.EXTRA_TRAIN
    assert len(set(ew.SPLITS["train"])) == len(ew.SPLITS["train"]) == 52


@pytest.mark.slow
def test_every_built_in_material_builds_with_its_formula():
    formulas = {"NaCl": "Cl4Na4", "MgAl2O4": "Al16Mg8O32", "SrTiO3": "O3SrTi", "Al2O3": "Al12O18",
                "CeO2": "Ce4O8", "KTaO3": "KO3Ta", "InP": "In4P4", "CsI": "CsI", "AlN": "Al2N2"}
    for name in ew.material_library():
        atoms, sid = ew.load_structure(name)
        assert sid == name and len(atoms) > 0 and atoms.cell.volume > 0
        if name in formulas:
            assert atoms.get_chemical_formula() == formulas[name]


def test_carved_block_keeps_the_crystal_density_and_sits_in_vacuum():
    unit, _ = ew.load_structure("Si")
    lat, th = 60.0, 80.0
    for zone in [(0, 0, 1), (1, 1, 1), (2, 1, 0)]:
        atoms = ew.orient_and_carve(unit, zone, (0.05, -0.1, 0.02), lat, th, origin_frac=(0.3, 0.1, 0.7))
        density = len(unit) / unit.cell.volume
        assert len(atoms) == pytest.approx(density * lat * lat * th, rel=0.03)  # boundary layers: a few %
        # filling slab by slab changes nothing
        one = ew.orient_and_carve(unit, zone, (0.05, -0.1, 0.02), lat, th, origin_frac=(0.3, 0.1, 0.7), chunk_a=1e4)
        assert len(one) == len(atoms)
        pos = atoms.positions
        vxy, vz = ew.VACUUM_XY_NM * 10, ew.VACUUM_Z_NM * 10
        assert pos[:, :2].min() >= vxy - 1e-9 and pos[:, :2].max() < vxy + lat
        assert pos[:, 2].min() >= vz - 1e-9 and pos[:, 2].max() < vz + th
        assert np.allclose(atoms.cell.lengths(), [lat + 2 * vxy, lat + 2 * vxy, th + 2 * vz])


def test_zone_axis_becomes_the_beam_direction():
    # Si along [001] without tilt: atoms stack in columns, so few distinct (x, y) positions
    unit, _ = ew.load_structure("Si")
    atoms = ew.orient_and_carve(unit, (0, 0, 1), (0, 0, 0), 20.0, 30.0)
    xy = np.round(atoms.positions[:, :2], 3)
    columns = np.unique(xy, axis=0)
    assert len(columns) < len(atoms) / 4  # about 6 atoms per column in 3 nm
    tilted = ew.orient_and_carve(unit, (0, 0, 1), (2.0, 0, 0), 20.0, 30.0)
    assert len(np.unique(np.round(tilted.positions[:, :2], 3), axis=0)) > 5 * len(columns)


def test_unknown_material_and_bad_structure_files_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="unknown material 'Unobtainium'"):
        ew.load_structure("Unobtainium")
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\n_cell_length_a oops\n")
    with pytest.raises(ReadError, match="broken.cif"):
        ew.load_structure(bad)


def test_a_cif_file_gives_the_same_crystal_as_the_built_in(tmp_path):
    from ase.io import write

    unit, _ = ew.load_structure("GaAs")
    write(tmp_path / "gaas.cif", unit)
    back, sid = ew.load_structure(tmp_path / "gaas.cif")
    assert sid.startswith("gaas.cif:")
    assert back.get_chemical_formula() == unit.get_chemical_formula()
    assert back.cell.volume == pytest.approx(unit.cell.volume, rel=1e-6)


def test_saved_waves_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    ps = [ew.sample_params("Cu", rng, "restricted", gpts=32, crop=24) for _ in range(2)]
    waves = (rng.random((2, 24, 24)) * np.exp(1j * rng.random((2, 24, 24)))).astype(np.complex64)
    path = ew.save_waves(tmp_path / "s.npz", waves, ps, {"name": "s"})
    w2, p2, meta = ew.load_waves(path)
    np.testing.assert_array_equal(w2, waves)
    assert p2 == ps and meta == {"name": "s"}
    with pytest.raises(ReadError):
        ew.load_waves(tmp_path / "missing.npz")


def test_the_shipped_test_dataset_matches_its_description():
    waves, params, meta = ew.load_waves(DATA / "tiny-train.npz")
    assert waves.dtype == np.complex64 and waves.shape == (6, 48, 48)
    np.testing.assert_allclose(np.abs(waves).mean((1, 2)), 1.0, rtol=1e-5)  # mean amplitude 1
    assert {p.material for p in params} == {"Si", "GaAs", "SrTiO3"}
    assert meta["prange"] == "restricted" and all(p.voltage_kv == 300 for p in params)
    assert sum(f.stat().st_size for f in DATA.iterdir()) < 1_000_000


@pytest.mark.slow
def test_multislice_wave_is_cropped_scaled_and_cached(tmp_path):
    pytest.importorskip("abtem")
    p = ew.WaveParams(material="SrTiO3", voltage_kv=300.0, thickness_nm=5.0, lateral_nm=5.0, zone=(0, 0, 1),
                      tilt_deg=(0.0, 0.0, 0.0), origin_frac=(0.0, 0.0, 0.0), gpts=48, crop=36)
    w = ew.simulate_exit_wave(p, cache=tmp_path)
    assert w.shape == (36, 36) and w.dtype == np.complex64
    assert np.abs(w).mean() == pytest.approx(1.0, rel=1e-5)
    assert np.angle(w).std() > 0.05  # a 5 nm crystal shifts the phase
    assert len(list(tmp_path.glob("*.npy"))) == 1
    np.testing.assert_array_equal(ew.simulate_exit_wave(p, cache=tmp_path), w)  # read from the cache
    # more material, more phase: the same crystal 3x thicker
    thick = ew.simulate_exit_wave(ew.WaveParams(**{**p.__dict__, "thickness_nm": 15.0}), cache=False)
    assert np.abs(np.angle(thick) - np.angle(w)).mean() > 0.05
