"""Aggregation of classification events to mean scores and agreements, and training sets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scopenet.errors import InputError
from scopenet.training.crowd.aggregate import (agreement, aggregate_events, category_keys, class_weights,
                                      filter_by_agreement, pos_weight, repeat_counts, rescore, training_set)

CATS = ["Dimers", "Bad/Blurry"]


def hand_events() -> pd.DataFrame:
    return pd.DataFrame({
        "image": ["A", "A", "B", "A", "B", "C"],
        "Dimers": [1, 1, 1, 0, 0, 1],
        "Bad/Blurry": [0, 0, 1, 0, 0, 1],
    })


def test_hand_case_means_agreements_counts():
    s = aggregate_events(hand_events(), CATS).set_index("name")
    assert list(s.index) == ["A", "B", "C"]
    assert s.loc["A", "n_classifications"] == 3 and s.loc["B", "n_classifications"] == 2
    assert s.loc["A", "mean_dimers"] == pytest.approx(2 / 3)
    assert s.loc["A", "agree_dimers"] == pytest.approx(1 / 3)
    assert s.loc["A", "mean_bad_blurry"] == 0 and s.loc["A", "agree_bad_blurry"] == 1
    assert s.loc["A", "agree_mean"] == pytest.approx(2 / 3)
    assert s.loc["B", "mean_dimers"] == 0.5 and s.loc["B", "agree_mean"] == 0.0
    assert s.loc["C", "agree_mean"] == 1.0


def test_filter_drops_low_agreement_images():
    s = aggregate_events(hand_events(), CATS)
    kept = filter_by_agreement(s, 0.40)
    assert list(kept["name"]) == ["A", "C"]
    assert list(filter_by_agreement(s, 0.40, min_classifications=2)["name"]) == ["A"]
    assert len(filter_by_agreement(s, 0.0)) == 3
    with pytest.raises(InputError):
        filter_by_agreement(s, 1.5)


def test_event_column_names_by_key_and_bad_values():
    ev = hand_events().rename(columns={"Bad/Blurry": "bad_blurry"})
    assert category_keys(aggregate_events(ev, CATS)) == ["dimers", "bad_blurry"]
    with pytest.raises(InputError, match="Rows"):
        aggregate_events(ev, ["Rows"])
    bad = hand_events().assign(Dimers=[2, 0, 0, 0, 0, 0])
    with pytest.raises(InputError, match="0/1"):
        aggregate_events(bad, CATS)


def test_agreement_formula():
    np.testing.assert_allclose(agreement([0, 0.25, 0.5, 0.75, 1]), [1, 0.5, 0, 0.5, 1])


def test_repeat_matches_report_example():
    # Report §4.4: max weight 4, bad/blurry 0.4 -> 2 copies, tip change 0.8 -> 4 copies.
    scores = pd.DataFrame({"name": ["x"], "n_classifications": [5], "mean_tip_change": [0.8],
                           "mean_bad_blurry": [0.4]})
    scores = rescore(scores)
    np.testing.assert_array_equal(repeat_counts(np.array([[0.8, 0.4, 0.0, 1.0]]), 4), [[4, 2, 0, 4]])
    ts = training_set(scores, "repeat", max_weight=4, min_agreement=None)
    assert len(ts) == 6 and list(ts.names) == ["x"] * 6
    assert ts.targets.sum(axis=0).tolist() == [4.0, 2.0]
    assert (ts.targets.sum(axis=1) == 1).all()  # one-hot copies


def test_soft_and_balanced_sets():
    scores = rescore(pd.DataFrame({"name": ["a", "b"], "n_classifications": [1, 1],
                                   "mean_rows": [1.0, 1.0], "mean_atoms": [1.0, 0.0]}))
    soft = training_set(scores, "soft", min_agreement=None)
    np.testing.assert_array_equal(soft.targets, [[1, 1], [1, 0]])
    assert soft.weights.tolist() == [1, 1]
    rep = training_set(scores, "repeat", max_weight=1, min_agreement=None)
    assert rep.targets.sum(axis=0).tolist() == [2, 1]
    bal = training_set(scores, "balanced", max_weight=1, min_agreement=None)
    assert bal.targets.sum(axis=0).tolist() == [2, 2]  # the rarer category is over-balanced
    with pytest.raises(InputError, match="method"):
        training_set(scores, "nope", min_agreement=None)


def test_class_weights_and_pos_weight():
    t = np.array([[1, 0], [1, 0], [1, 1], [1, 0]], float)
    np.testing.assert_allclose(class_weights(t), [0.625, 2.5])
    np.testing.assert_allclose(pos_weight(t), [0.0, 3.0])
    np.testing.assert_allclose(class_weights(np.array([[1, 0], [0, 0]])), [1.0, 0.0])


# ----------------------------------------------------------------------- the real label file


@pytest.fixture
def hsi_labels():
    from tests.conftest import shared_path

    return pd.read_csv(shared_path("data", "gordon-hsi", "labels.csv"))


@pytest.mark.shared
def test_real_labels_agreements_follow_formula(hsi_labels):
    keys = category_keys(hsi_labels)
    assert keys == ["asymmetries", "individual_atoms", "dimers", "rows", "tip_change", "bad_blurry"]
    m = hsi_labels[[f"mean_{k}" for k in keys]].to_numpy()
    a = hsi_labels[[f"agree_{k}" for k in keys]].to_numpy()
    np.testing.assert_allclose(a, 2 * np.abs(m - 0.5), atol=1e-9)
    np.testing.assert_allclose(hsi_labels["agree_mean"], a.mean(axis=1), atol=1e-9)
    re = rescore(hsi_labels)
    np.testing.assert_allclose(re["agree_mean"], hsi_labels["agree_mean"], atol=1e-9)
    multi = hsi_labels["n_classifications"] >= 2
    assert multi.sum() == 1462
    assert round(float(hsi_labels.loc[multi, "agree_mean"].mean()), 3) == 0.860  # README figure


@pytest.mark.shared
def test_real_labels_round_trip_through_events(hsi_labels):
    """Rebuild one event per vote from the mean scores and aggregate them again."""
    keys = category_keys(hsi_labels)
    n = hsi_labels["n_classifications"].to_numpy()
    m = hsi_labels[[f"mean_{k}" for k in keys]].to_numpy()
    ticks = np.rint(m * n[:, None]).astype(int)
    np.testing.assert_allclose(ticks / n[:, None], m, atol=1e-9)  # every mean is k/n
    rows = []
    for name, ni, ti in zip(hsi_labels["name"], n, ticks):
        for v in range(ni):
            rows.append([name, *(v < ti).astype(int)])
    ev = pd.DataFrame(rows, columns=["image", *keys])
    assert len(ev) == n.sum()
    s = aggregate_events(ev, keys)
    assert list(s["name"]) == list(hsi_labels["name"])
    np.testing.assert_array_equal(s["n_classifications"], n)
    cols = [f"mean_{k}" for k in keys] + [f"agree_{k}" for k in keys] + ["agree_mean"]
    np.testing.assert_allclose(s[cols].to_numpy(), hsi_labels[cols].to_numpy(), atol=1e-9)
    kept = filter_by_agreement(s, 0.40)
    assert len(kept) == int((hsi_labels["agree_mean"] >= 0.40).sum())
    assert 0 < len(s) - len(kept) < len(s)


@pytest.mark.shared
def test_real_labels_balanced_set_evens_out_categories(hsi_labels):
    rep = training_set(hsi_labels, "repeat", max_weight=4)
    bal = training_set(hsi_labels, "balanced", max_weight=4)
    r, b = rep.targets.sum(axis=0), bal.targets.sum(axis=0)
    assert r.max() / r.min() > 3          # dimers/bad-blurry far more frequent than atoms
    assert b.max() / b.min() < r.max() / r.min() / 2
    soft = training_set(hsi_labels, "soft")
    assert soft.targets.shape == (int((hsi_labels["agree_mean"] >= 0.40).sum()), 6)
    assert soft.targets.min() >= 0 and soft.targets.max() <= 1
