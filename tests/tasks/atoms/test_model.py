"""AtomFinder / sn.find_atoms: the table's convention, calibration, tiling, fitting and errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scopenet as sn
from scopenet.errors import InputError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.metrics.atoms import match_atoms
from scopenet.simulate.em.atoms import atom_image
from scopenet.tasks.atoms import AtomFinder, find_atoms
from scopenet.tasks.atoms.model import COLUMNS


@pytest.fixture(scope="module")
def example():
    return atom_image(np.random.default_rng(11), 128, split="held_out", dose=500.0, spacing_px=9.0, region="full")


@pytest.fixture(scope="module")
def table(example):
    return find_atoms(example.image)


def test_table_columns_and_held_out_accuracy(example, table):
    assert isinstance(table, pd.DataFrame) and list(table.columns[:len(COLUMNS)]) == COLUMNS
    m = match_atoms(example.atoms, table[["y", "x"]].to_numpy(), 0.3 * example.spacing_px)
    assert m.f1 > 0.9 and m.rms_px < 0.5
    assert table["x_m"].isna().all()  # an uncalibrated array
    assert (table["sigma_px"] > 0).all() and table["confidence"].between(0, 1).all()
    assert table.attrs["model"] == "atoms-default" and table.attrs["ood"] is False
    assert table.attrs["spacing_px"] == pytest.approx(9.0, rel=0.15)
    # sigma_px = the calibrated fit sigma and the structured-background term in quadrature (with a floor)
    cfg = AtomFinder.pretrained().config
    both = np.hypot(table["sigma_noise_px"], table["sigma_background_px"])
    np.testing.assert_allclose(table["sigma_px"], np.maximum(both, cfg.sigma_floor_px), rtol=1e-9)
    assert (table["sigma_background_px"] >= 0).all() and table.attrs["structured_background_sd"] >= 0


def test_x_is_the_column_and_pixel_centres_are_integers():
    img = np.full((64, 80), 5.0, np.float32)
    yy, xx = np.mgrid[0:64, 0:80]
    for y, x in ((20.0, 50.0), (40.0, 15.0), (45.0, 60.0)):
        img += 200 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5 ** 2))
    df = find_atoms(img)
    got = sorted(zip(df["y"].round(1), df["x"].round(1)))
    assert got == [(20.0, 50.0), (40.0, 15.0), (45.0, 60.0)]


def test_calibrated_micrograph_gives_metres(example, table):
    px = 0.2e-10
    mg = Micrograph(example.image, axes=[Axis("y", 128, 0.02, unit="nm"), Axis("x", 128, 0.02, unit="nm")])
    df = find_atoms(mg)
    np.testing.assert_allclose(df["x"], table["x"])
    np.testing.assert_allclose(df["x_m"], df["x"] * px, rtol=1e-9)
    np.testing.assert_allclose(df["sigma_m"], df["sigma_px"] * px, rtol=1e-9)


def test_tiled_prediction_matches_the_whole_image(example, table):
    tiled = find_atoms(example.image, max_direct_pixels=1000, tile=64, overlap=24)
    m = match_atoms(table[["y", "x"]].to_numpy(), tiled[["y", "x"]].to_numpy(), 0.5)
    assert m.f1 > 0.97 and m.rms_px < 0.05


def test_stacks_and_lists_give_one_table_per_frame(example):
    est = AtomFinder.pretrained()
    out = est.predict(np.stack([example.image[:64, :64], example.image[64:, 64:]]))
    assert isinstance(out, list) and len(out) == 2 and all(isinstance(d, pd.DataFrame) for d in out)
    assert len(est.predict([example.image[:64, :64]])) == 1


def test_noise_is_flagged_out_of_distribution():
    df = find_atoms(np.random.default_rng(0).normal(0, 1, (96, 96)).astype(np.float32))
    assert df.attrs["ood"] is True and df.attrs["ood_reasons"]


@pytest.mark.parametrize("bad", [np.zeros((4, 4)), np.full((16, 16), np.nan), "x.tif", np.zeros((2, 2, 2, 2))])
def test_bad_input_is_an_input_error(bad):
    with pytest.raises(InputError):
        find_atoms(bad)
    with pytest.raises(InputError, match="AtomsConfig"):
        find_atoms(np.zeros((16, 16)), no_such_setting=1)


@pytest.mark.slow
def test_fit_on_masks_and_coordinates_and_its_errors(example):
    est = AtomFinder(arch_config={"in_channels": 1, "out_channels": 1, "depth": 1, "base_channels": 4,
                                  "norm": "none"})
    mask = np.zeros(example.image.shape, np.uint8)
    for y, x in np.rint(example.atoms).astype(int):
        mask[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = 1
    est.fit([example.image], masks=[mask], steps=2, batch_size=2, patch=32)
    assert len(est.history_) == 2 and np.isfinite(est.history_).all()
    xy = pd.DataFrame({"x": example.atoms[:, 1], "y": example.atoms[:, 0]})
    est.fit([example.image], [xy], steps=1, batch_size=1, patch=32)
    assert len(est.history_) == 1
    with pytest.raises(InputError, match="coordinates or masks"):
        est.fit([example.image], steps=1)
    with pytest.raises(InputError, match="one coordinate table or mask per image"):
        est.fit([example.image, example.image], [xy], steps=1)
    with pytest.raises(InputError, match="not both"):
        est.fit([example.image], [xy], masks=[mask], steps=1)


def test_public_names():
    assert sn.find_atoms is find_atoms and sn.AtomFinder is AtomFinder


def test_fast_refinement_has_no_uncertainty_but_finds_the_same_atoms(example, table):
    fast = find_atoms(example.image, refine="heatmap")
    assert fast["sigma_px"].isna().all() and len(fast) > 0
    m = match_atoms(table[["y", "x"]].to_numpy(), fast[["y", "x"]].to_numpy(), 1.0)
    assert m.f1 > 0.97 and m.rms_px < 0.5
