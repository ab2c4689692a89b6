"""Classification metrics: hand-computed cases and scikit-learn agreement."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from scopenet.errors import InputError
from scopenet.metrics import (confusion_matrix, expected_calibration_error, f1_optimal_thresholds,
                              multilabel_confusion_matrix,
                              multilabel_precision_recall_f1, precision_recall_f1, reliability_curve,
                              roc_auc)


def test_confusion_matrix_keeps_absent_classes():
    cm = confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], n_classes=3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [0, 0, 0]])


def test_precision_recall_f1_hand_values():
    t = [0, 0, 0, 1, 1, 2]
    p = [0, 0, 1, 1, 2, 2]
    s = precision_recall_f1(t, p)
    np.testing.assert_allclose(s.precision, [1.0, 0.5, 0.5])
    np.testing.assert_allclose(s.recall, [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(s.f1, [0.8, 0.5, 2 / 3])
    np.testing.assert_array_equal(s.support, [3, 2, 1])
    # a class never predicted scores 0, without warnings turning into errors
    s2 = precision_recall_f1([0, 1], [0, 0], n_classes=2)
    np.testing.assert_allclose(s2.precision, [0.5, 0.0])


def test_roc_auc_binary_hand_value():
    # positives score 0.8, 0.4; negatives 0.5, 0.1 -> 3 of 4 pairs ordered: AUC 0.75
    assert roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.5, 0.1]) == pytest.approx(0.75)


def test_roc_auc_multilabel_macro_and_per_label(rng):
    t = (rng.random((50, 3)) > 0.5).astype(int)
    s = np.clip(t * 0.3 + rng.random((50, 3)), 0, 1)
    per = roc_auc(t, s, average=None)
    assert per.shape == (3,)
    assert roc_auc(t, s) == pytest.approx(per.mean())
    assert roc_auc(t, s) == pytest.approx(roc_auc_score(t, s, average="macro"))
    with pytest.raises(InputError, match="only one class"):
        roc_auc(np.ones((4, 1)), np.ones((4, 1)))


def test_multilabel_confusion_and_scores():
    t = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    prob = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.8], [0.1, 0.6]])
    mcm = multilabel_confusion_matrix(t, prob)
    # label 0: preds [1,0,1,0] -> TN 1, FP 1, FN 1, TP 1 ; label 1: preds [0,1,1,1] -> TN 1 FP 1 FN 0 TP 2
    np.testing.assert_array_equal(mcm, [[[1, 1], [1, 1]], [[1, 1], [0, 2]]])
    s = multilabel_precision_recall_f1(t, prob)
    np.testing.assert_allclose(s.precision, [0.5, 2 / 3])
    np.testing.assert_allclose(s.recall, [0.5, 1.0])


def test_reliability_and_ece_hand_values():
    prob = np.array([0.05, 0.15, 0.95, 0.85])
    soft = np.array([0.0, 0.35, 1.0, 0.6])
    curve = reliability_curve(soft, prob, n_bins=2)  # bins [0, .5), [.5, 1]
    np.testing.assert_allclose(curve.confidence, [0.1, 0.9])
    np.testing.assert_allclose(curve.frequency, [0.175, 0.8])
    np.testing.assert_array_equal(curve.count, [2, 2])
    assert expected_calibration_error(soft, prob, n_bins=2) == pytest.approx(0.5 * 0.075 + 0.5 * 0.1)


def test_ece_zero_for_calibrated_and_probability_one_in_last_bin(rng):
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(float)
    assert expected_calibration_error(y, p, n_bins=10) < 0.02
    assert expected_calibration_error([1.0, 0.0], [1.0, 0.0]) == 0.0
    with pytest.raises(InputError, match="\\[0, 1\\]"):
        expected_calibration_error([1.0], [1.5])


def test_f1_optimal_thresholds_pick_the_best_cut_per_label():
    y = np.array([[0, 1], [0, 1], [1, 1], [1, 1]])
    p = np.array([[0.1, 0.2], [0.4, 0.3], [0.35, 0.9], [0.8, 0.7]])
    thr = f1_optimal_thresholds(y, p)
    # label 0: cutting at 0.35 gives TP 2, FP 1 (F1 0.8) against 0.67 at 0.8 and 0.5 at 0.4; label 1 has one class
    np.testing.assert_allclose(thr, [0.35, 0.5])
    s = multilabel_precision_recall_f1(y[:, :1], p[:, :1], threshold=thr[:1])
    assert s.f1[0] == pytest.approx(0.8)
    with pytest.raises(InputError):
        f1_optimal_thresholds(y[:, 0], p[:, 0])
