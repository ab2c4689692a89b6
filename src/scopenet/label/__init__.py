"""scopenet.label: the crowd-labelling web service, score aggregation and Zooniverse import.

>>> from scopenet.label import create_app, aggregate_events, training_set      # doctest: +SKIP

* :func:`create_app` builds the FastAPI app (``scopenet label serve`` runs it);
* :mod:`~scopenet.training.crowd.aggregate` (re-exported here): mean scores, agreements
  ``2|x - 0.5|``, the 0.40 filter and training sets (soft labels, repeats, re-balancing);
* :mod:`~scopenet.label.zooniverse`: import Zooniverse classification exports.

The web layer needs fastapi, sqlalchemy, jinja2, itsdangerous, bcrypt and python-multipart;
the aggregation works with numpy and pandas alone.
"""
from __future__ import annotations

#: names of :mod:`.aggregate`, imported on first use (the upload workers import this package and
#: need neither pandas nor SQLAlchemy)
_AGGREGATE = ("MIN_AGREEMENT", "TrainingSet", "agreement", "aggregate_events", "category_keys", "class_weights",
              "filter_by_agreement", "pos_weight", "repeat_counts", "rescore", "training_set")

__all__ = ["MIN_AGREEMENT", "TrainingSet", "agreement", "aggregate_events", "category_keys", "class_weights",
           "filter_by_agreement", "pos_weight", "repeat_counts", "rescore", "training_set", "create_app",
           "DEFAULT_CATEGORIES", "read_zooniverse_export", "import_zooniverse", "aggregate_project"]


def __getattr__(name: str):
    if name in _AGGREGATE:
        from ..training.crowd import aggregate
        return getattr(aggregate, name)
    if name == "create_app":
        from .app import create_app
        return create_app
    if name == "DEFAULT_CATEGORIES":
        from .db import DEFAULT_CATEGORIES
        return DEFAULT_CATEGORIES
    if name in ("read_zooniverse_export", "import_zooniverse"):
        from . import zooniverse
        return getattr(zooniverse, name)
    if name == "aggregate_project":
        from .service import aggregate_project
        return aggregate_project
    raise AttributeError(f"module 'scopenet.label' has no attribute {name!r}")
