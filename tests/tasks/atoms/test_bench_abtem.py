"""The atom benches: detections on faint real columns are neither right nor wrong (and counted for the strict
figures)."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from scopenet.simulate.em.atoms import atom_image
from scopenet.tasks.atoms.bench import pool_add, pooled, score
from scopenet.tasks.atoms.bench_abtem import score_images


def test_a_detection_on_a_faint_column_is_left_out_but_not_one_on_a_visible_column_or_on_nothing():
    ex = SimpleNamespace(atoms=np.array([[10.0, 10.0], [10.0, 20.0]]), spacing_px=10.0, image=np.zeros((40, 40)),
                         params={"faint_columns": np.array([[20.0, 15.0]])})
    rc = np.array([[10.2, 10.1], [20.5, 15.2], [30.0, 30.0]])
    r = score(rc, ex, np.array([0.1, 0.2, 0.3]))
    assert r["on_faint"] == 1 and r["tp"] == 1 and r["n_pred"] == 2 and r["n_true"] == 2
    assert list(r["matched_pred"]) == [0]  # indices into the predictions as given
    assert r["inside"] == 1.0 and r["axes"] == 2.0  # (0.2, 0.1) px inside sigma 0.1 on one axis only
    plain = score(rc, SimpleNamespace(atoms=ex.atoms, spacing_px=10.0, image=ex.image, params={}))
    assert plain["on_faint"] == 0 and plain["n_pred"] == 3
    m = pooled({"a": pool_add({}, "a", r, 0.0)})["a"]  # strict: the faint detection counted as false
    assert m["on_faint_columns"] == 1 and m["precision"] == 0.5 and m["precision_strict"] == pytest.approx(1 / 3)
    assert m["f1_strict"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))


class _Perfect:
    """Predicts the truth of the one image it is given, plus one atom on a faint column and one on nothing."""

    def __init__(self, ex):
        self.ex = ex

    def predict(self, image):
        rc = np.vstack([self.ex.atoms, self.ex.params["faint_columns"][:1], [[1.0, 1.0]]])
        return pd.DataFrame({"y": rc[:, 0], "x": rc[:, 1], "sigma_px": np.full(len(rc), 0.1),
                             "intensity": np.full(len(rc), 100.0)})


def test_score_images_pools_and_counts_faint_detections():
    ex = atom_image(np.random.default_rng(0), 96, split="held_out", dose=1000)
    ex.params["faint_columns"] = np.array([[50.0, 50.0]]) + 0.37 * ex.spacing_px  # away from every true column
    ex.params["structure"] = "test"
    # keep the faint column clear of the truth and of the (1, 1) false atom
    d = np.hypot(*(ex.atoms - ex.params["faint_columns"][0]).T)
    ex.atoms = ex.atoms[d > 0.31 * ex.spacing_px]
    ex.atoms = ex.atoms[np.hypot(*(ex.atoms - 1.0).T) > 0.31 * ex.spacing_px]
    res, per_image = score_images(_Perfect(ex), [ex])
    m = res["AtomFinder"]
    assert m["on_faint_columns"] == 1
    assert m["recall"] == 1.0 and m["precision"] == len(ex.atoms) / (len(ex.atoms) + 1)
    assert m["rms_px"] == 0.0
    assert m["inside_1sigma_bright"] == 1.0 and "inside_1sigma_faint" not in m  # equal intensities: none faint
    assert per_image[0]["structure"] == "test" and per_image[0]["tp"] == len(ex.atoms)
    assert {"LoG + CoM", "maxima + Gaussian"} <= set(res)


def test_training_width_range_is_validated_and_reaches_the_simulator():
    import pytest

    from scopenet.tasks.atoms.config import AtomsTrainConfig
    from scopenet.tasks.atoms.train import simulated_batch

    with pytest.raises(ValueError, match="sigma_frac"):
        AtomsTrainConfig(sigma_frac=(0.3, 0.2))
    assert AtomsTrainConfig().sigma_frac is None
    # the default range draws the same batch as before the option existed (no extra random numbers)
    a = simulated_batch(np.random.default_rng(1), 2, 64, 0.0)
    b = simulated_batch(np.random.default_rng(1), 2, 64, 0.0, sigma_frac=None)
    assert np.array_equal(a[0], b[0])
    # wide columns: the heatmap keeps its width (set by the spacing) but the image's columns are wider
    narrow = simulated_batch(np.random.default_rng(2), 1, 96, 0.0, sigma_frac=(0.12, 0.12))[0][0, 0]
    wide = simulated_batch(np.random.default_rng(2), 1, 96, 0.0, sigma_frac=(0.40, 0.40))[0][0, 0]
    assert np.abs(np.diff(wide, axis=1)).mean() < np.abs(np.diff(narrow, axis=1)).mean()


def test_training_support_range_reaches_the_simulator(monkeypatch):
    import scopenet.tasks.atoms.train as tr
    from scopenet.tasks.atoms.config import AtomsTrainConfig

    seen = []
    real = tr.atom_image

    def spy(*a, **kw):
        seen.append(kw.get("support"))
        return real(*a, **kw)

    monkeypatch.setattr(tr, "atom_image", spy)
    tr.simulated_batch(np.random.default_rng(0), 4, 32, 0.0, support_max=0.02)
    assert len(seen) == 4 and all(0.0 <= s <= 0.02 for s in seen) and len(set(seen)) == 4
    seen.clear()
    tr.simulated_batch(np.random.default_rng(0), 2, 32, 0.0)
    assert seen == [None, None]  # the simulator's own default, no extra random numbers
    with pytest.raises(ValueError):
        AtomsTrainConfig(support_max=1.5)
