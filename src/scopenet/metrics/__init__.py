"""scopenet.metrics: image, classification, segmentation and atom-position metrics.

>>> import numpy as np
>>> import scopenet.metrics as sm
>>> round(sm.psnr(np.zeros((8, 8)), np.full((8, 8), 0.1), data_range=1.0), 3)
20.0

Image metrics follow :mod:`skimage.metrics` (``(reference, test)`` argument order); classification
metrics wrap scikit-learn; atom positions are matched with the Hungarian algorithm.
"""
from __future__ import annotations

from .atoms import AtomMatch, match_atoms
from .classification import (ClassScores, ReliabilityCurve, confusion_matrix,
                             expected_calibration_error, f1_optimal_thresholds, multilabel_confusion_matrix,
                             multilabel_precision_recall_f1, precision_recall_f1, reliability_curve,
                             roc_auc)
from .image import (ErrorProfile, error_vs_distance_to_path, error_vs_edge_distance,
                    error_vs_position, mae_map, mse, psnr, psnr_torch, rms, ssim, ssim_torch)
from .segmentation import (RandError, SplitMerge, adapted_rand_error, dice, dice_per_class, iou,
                           iou_per_class, split_merge_vi)

__all__ = [
    # image
    "mse", "rms", "psnr", "ssim", "mae_map", "error_vs_position", "error_vs_edge_distance",
    "error_vs_distance_to_path", "ErrorProfile", "psnr_torch", "ssim_torch",
    # classification
    "confusion_matrix", "precision_recall_f1", "ClassScores", "roc_auc",
    "multilabel_confusion_matrix", "multilabel_precision_recall_f1", "f1_optimal_thresholds", "reliability_curve",
    "ReliabilityCurve", "expected_calibration_error",
    # segmentation
    "iou", "dice", "iou_per_class", "dice_per_class", "adapted_rand_error", "RandError",
    "split_merge_vi", "SplitMerge",
    # atoms
    "match_atoms", "AtomMatch",
]
