"""Segmentation metrics: hand-computed IoU/Dice, Rand and VI against scikit-image."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error as sk_are

from scopenet.metrics import adapted_rand_error, dice, dice_per_class, iou, iou_per_class, split_merge_vi


def test_iou_dice_hand_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True          # 4 pixels
    b[1:3, 1:3] = True        # 4 pixels, overlap 1
    assert iou(a, b) == pytest.approx(1 / 7)
    assert dice(a, b) == pytest.approx(2 / 8)
    assert iou(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_per_class():
    t = np.array([0, 0, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 2])
    np.testing.assert_allclose(iou_per_class(t, p), [0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(dice_per_class(t, p, n_classes=4), [2 / 3, 0.8, 1.0, 1.0])


def test_rand_error_identical_and_relabelled():
    t = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    assert adapted_rand_error(t, t).error == pytest.approx(0.0)
    assert adapted_rand_error(t, 5 - t).error == pytest.approx(0.0)


def test_rand_error_agrees_with_skimage(rng):
    t = rng.integers(1, 5, size=(20, 20))
    p = rng.integers(1, 4, size=(20, 20))
    r = adapted_rand_error(t, p)
    np.testing.assert_allclose(tuple(r), sk_are(t, p))
    assert 0 < r.error < 1


def test_split_merge_directions():
    t = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    over = np.array([[1, 3, 2, 4], [1, 3, 2, 4]])   # each true region split in two
    under = np.ones_like(t)                          # everything merged
    s = split_merge_vi(t, over)
    assert s.split == pytest.approx(1.0) and s.merge == pytest.approx(0.0, abs=1e-12)
    m = split_merge_vi(t, under)
    assert m.merge == pytest.approx(1.0) and m.split == pytest.approx(0.0, abs=1e-12)
    assert s.total == pytest.approx(1.0)


def test_match_objects_counts_one_to_one_matches_above_the_iou_threshold():
    from scopenet.errors import InputError
    from scopenet.metrics.segmentation import match_objects

    t = np.zeros((10, 20), int)
    t[1:5, 1:5] = 1          # found exactly
    t[1:5, 10:14] = 2        # found shifted by one column: IoU 12/20 = 0.6
    t[6:9, 1:4] = 3          # missed
    p = np.zeros_like(t)
    p[1:5, 1:5] = 7
    p[1:5, 11:15] = 8
    p[7:9, 16:19] = 9        # a false positive
    m = match_objects(t, p)
    assert (m.tp, m.fp, m.fn) == (2, 1, 1)
    assert m.mean_iou == pytest.approx((1.0 + 0.6) / 2)
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3) and m.f1 == pytest.approx(2 / 3)
    assert match_objects(t, p, iou_threshold=0.7).tp == 1
    assert match_objects(np.zeros((3, 3)), np.zeros((3, 3))).f1 == 1.0
    with pytest.raises(InputError):
        match_objects(t, p, iou_threshold=0.3)
