"""SPM tip-state classification: six H:Si(100) categories (Gordon & Landon) and DeepSPM's good/bad tip.

>>> import scopenet as sn
>>> sn.classify(images)                                  # doctest: +SKIP
>>> clf = sn.TipClassifier.pretrained("good-bad")        # doctest: +SKIP
"""
from .config import ClassifierConfig
from .data import CATEGORIES, CATEGORY_TITLES, LabelledSet, load_gordon_hsi, session_folds
from .model import PRETRAINED, TipClassifier, classify

__all__ = ["CATEGORIES", "CATEGORY_TITLES", "ClassifierConfig", "LabelledSet", "PRETRAINED", "TipClassifier",
           "classify", "load_gordon_hsi", "session_folds"]
