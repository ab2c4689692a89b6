"""Crowd labels as training data: the default categories, aggregation of many volunteers' answers into
per-image scores and training sets (:mod:`.aggregate`), and reading Zooniverse classification exports
(:mod:`.zooniverse`). Used by the classifier's training and by the labelling service (``scopenet.label``).
"""
from __future__ import annotations

import re

__all__ = ["DEFAULT_CATEGORIES", "slug"]

DEFAULT_CATEGORIES: tuple[str, ...] = ("Asymmetries", "Individual Atoms", "Dimers", "Rows",
                                       "Tip Change", "Bad/Blurry")


def slug(category: str) -> str:
    """Column-safe key of a category name: ``"Bad/Blurry"`` -> ``"bad_blurry"``."""
    s = re.sub(r"[^a-z0-9]+", "_", category.strip().lower()).strip("_")
    return s or "category"
