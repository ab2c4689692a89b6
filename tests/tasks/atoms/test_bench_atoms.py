"""``scopenet bench atoms`` bookkeeping: the position error and its coverage split by the support's strength."""
from __future__ import annotations

import numpy as np
import pytest

from scopenet.tasks.atoms import AtomFinder
from scopenet.tasks.atoms.bench import WEAK_SUPPORT, evaluate, held_out_images


@pytest.mark.slow
def test_evaluate_splits_error_and_coverage_by_support():
    weak = held_out_images(1, 200.0, 96, seed=9, support=0.0)  # Cu [110], 9.9 px spacing, 47 columns
    strong = held_out_images(1, 200.0, 96, seed=9, support=0.12)  # the same crystal on a support
    assert weak[0].params["support"] < WEAK_SUPPORT <= strong[0].params["support"]
    m = evaluate(AtomFinder.pretrained("default"), weak + strong, methods={})["AtomFinder"]
    alone = [evaluate(AtomFinder.pretrained("default"), x, methods={})["AtomFinder"] for x in (weak, strong)]
    assert m["n_weak"] == alone[0]["n_weak"] > 0 and m["n_strong"] == alone[1]["n_strong"] > 0
    assert m["rms_px_weak"] == pytest.approx(alone[0]["rms_px"]) and m["rms_px_strong"] == pytest.approx(alone[1]["rms_px"])
    assert m["inside_1sigma_weak"] == pytest.approx(alone[0]["inside_1sigma"])
    assert m["inside_1sigma_strong"] == pytest.approx(alone[1]["inside_1sigma"])
    n = np.array([m["n_weak"], m["n_strong"]])  # the parts add up to the whole
    both = np.array([m["inside_1sigma_weak"], m["inside_1sigma_strong"]])
    assert m["inside_1sigma"] == pytest.approx(float(n @ both / n.sum()))
    rms = np.array([m["rms_px_weak"], m["rms_px_strong"]])
    assert m["rms_px"] == pytest.approx(float(np.sqrt(n @ rms ** 2 / n.sum())))
    assert m["rms_px_strong"] > m["rms_px_weak"]  # the same columns, moved by the support's bumps


def test_noise_bound_is_the_cramer_rao_bound_of_a_gaussian_column():
    from types import SimpleNamespace

    from scopenet.simulate.em.lattice import render_gaussians
    from scopenet.tasks.atoms.bench import noise_bound

    g = np.arange(14.0, 80.0, 16.0)
    atoms = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2) + [0.3, -0.2]  # 2 px wide, 16 apart: alone
    peaks = np.where(np.arange(len(atoms)) % 2, 100.0, 400.0)
    clean = render_gaussians((88, 88), atoms, peaks, 2.0, truncate=6.0)
    ex = SimpleNamespace(atoms=atoms, clean=clean, sigma_px=2.0)
    sq, n = noise_bound(ex)
    assert n == len(atoms)
    # per axis 1 / (2 pi A) for a Gaussian of peak A on no background; 2-D twice that
    assert sq == pytest.approx(float(np.sum(2 / (2 * np.pi * peaks))), rel=0.03)
    ex.clean = clean + 50.0  # a background's shot noise raises it
    assert noise_bound(ex)[0] > 1.5 * sq
    assert noise_bound(ex, np.array([1]))[1] == 1


def test_coverage_by_intensity_splits_faint_and_bright_columns():
    from types import SimpleNamespace

    import pandas as pd

    from scopenet.tasks.atoms.bench import FAINT_COLUMN, coverage_by_intensity, relative_intensity

    truth = np.array([[10.0, 10.0], [10.0, 20.0], [20.0, 10.0], [20.0, 20.0], [30.0, 30.0]])
    # bright columns off by 0.1 px (inside a sigma of 0.2), faint ones by 0.5 px on one axis (outside)
    pred = truth + np.array([[0.1, 0.0], [0.0, -0.1], [0.5, 0.0], [0.0, 0.5], [0.1, 0.1]])
    df = pd.DataFrame({"y": pred[:, 0], "x": pred[:, 1], "sigma_px": 0.2,
                       "intensity": [100.0, 100.0, 30.0, 30.0, 100.0]})
    assert list(relative_intensity(df["intensity"].to_numpy()) < FAINT_COLUMN) == [False, False, True, True, False]
    acc: dict = {}
    r = {"matched_pred": np.arange(5), "matched_true": np.arange(5)}
    coverage_by_intensity(df, SimpleNamespace(atoms=truth), r, acc)
    assert acc["bright"] == [6.0, 6.0] and acc["faint"] == [2.0, 4.0]
    coverage_by_intensity(df, SimpleNamespace(atoms=truth), {"matched_pred": [], "matched_true": []}, acc)
    assert acc["faint"] == [2.0, 4.0]  # nothing matched: nothing added
