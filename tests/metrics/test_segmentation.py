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
