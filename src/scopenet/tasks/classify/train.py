"""Training entry point: ``scopenet train classify --config run.yaml [--resume]``.

The run configuration's ``extra`` block holds::

    extra:
      labels: export.csv        # labelling-service export (events or scores) or a Zooniverse export
      images: images/           # folder holding the labelled image files (by the names in the export)
      method: soft              # soft | repeat | balanced (scopenet.label.aggregate.training_set)
      min_agreement: 0.4        # drop images below this mean agreement (null keeps all)
      init: null                # fine-tune from a saved or shipped model (e.g. hsi-six); its network is used
      classify: {size: 64, epochs: 20, ...}   # ClassifierConfig fields

The export is turned into per-image scores (mean score, agreement, count) with
:mod:`scopenet.label.aggregate`, then into a training set; the model is written to
``<run_dir>/model.safetensors`` + ``model.json`` with a resumable checkpoint beside it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import InputError, ReadError
from .config import ClassifierConfig


def default_config():
    """Default run configuration for ``scopenet train init classify``."""
    from ...training.config import RunConfig

    return RunConfig(task="classify", name="classify-run", model={"name": "tipnet", "config": {}},
                     extra={"labels": "export.csv", "images": "images", "method": "soft", "min_agreement": 0.4,
                            "init": None,
                            "classify": ClassifierConfig().model_dump()})


def scores_from_export(path: str | Path, categories=None) -> pd.DataFrame:
    """Per-image score table from an export CSV.

    Accepts a score table (``mean_<key>`` columns, e.g. the service's "scores" export or
    ``gordon-hsi/labels.csv``), the service's "events" export (one 0/1 column per category), or a
    Zooniverse classification export (an ``annotations`` column of JSON).
    """
    from ...label.aggregate import aggregate_events, rescore

    path = Path(path)
    try:
        head = pd.read_csv(path, nrows=5)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ReadError(path, f"not a readable CSV export ({exc})") from exc
    if any(c.startswith("mean_") for c in head.columns):
        scores = pd.read_csv(path)
        if "name" not in scores.columns:
            raise ReadError(path, "score table has no 'name' column")
        if "n_classifications" not in scores.columns:
            scores["n_classifications"] = 1
        return rescore(scores) if "agree_mean" not in scores.columns else scores
    if "annotations" in head.columns:
        from ...label.zooniverse import read_zooniverse_export

        kw = {} if categories is None else {"categories": categories}
        events = read_zooniverse_export(path, **kw)
    else:
        events = pd.read_csv(path)
    if "image" not in events.columns:
        raise ReadError(path, "not an export: expected 'mean_*' columns, an 'annotations' column or an 'image' column")
    meta = {"event_id", "image_id", "image", "sha256", "user", "created_at", "external_id", "classification_id",
            "subject_id", "workflow_id"}
    cats = categories or [c for c in events.columns if c not in meta]
    try:
        return aggregate_events(events, cats, image_col="image")
    except InputError as exc:
        raise ReadError(path, str(exc)) from exc


def load_images(folder: str | Path, names) -> list[np.ndarray]:
    """Read the images ``names`` from ``folder`` (any format scopenet reads); first frame of stacks."""
    from ... import io as sio

    folder = Path(folder)
    out = []
    for n in names:
        p = folder / str(n)
        if not p.is_file():
            raise ReadError(p, "image named in the export not found")
        a = np.asarray(sio.read(p).data, dtype=np.float64)
        while a.ndim > 2:
            a = a[0]
        out.append(a)
    return out


def fit_from_export(labels: str | Path, images: str | Path, config: ClassifierConfig | None = None,
                    method: str = "soft", min_agreement: float | None = 0.4, **fit_kw):
    """Train a :class:`TipClassifier` from an export and its image folder; returns ``(classifier, score table)``."""
    from ...label.aggregate import training_set
    from .model import TipClassifier

    scores = scores_from_export(labels)
    ts = training_set(scores, method=method, min_agreement=min_agreement)
    cfg = (config or ClassifierConfig()).model_copy(update={"categories": list(ts.categories)})
    uniq = list(dict.fromkeys(ts.names.tolist()))
    arrays = dict(zip(uniq, load_images(images, uniq)))
    clf = TipClassifier(cfg)
    from .preprocess import prepare

    X = prepare([arrays[n] for n in uniq], cfg.size, cfg.flatten)
    row = {n: i for i, n in enumerate(uniq)}
    Xs = X[[row[n] for n in ts.names]]
    clf.fit(Xs, ts.targets, sample_weight=ts.weights, inputs_prepared=True, **fit_kw)
    clf.card_["training_data"] = f"{Path(labels).name}: {len(uniq)} images, {len(ts)} samples ({method})"
    return clf, scores


def main(config, resume: bool = False, labels: str | Path | None = None, init: str | Path | None = None) -> Any:
    """Train from a :class:`~scopenet.training.config.RunConfig` (see the module docstring).

    ``labels`` overrides ``config.extra["labels"]`` (``scopenet train classify --labels export.csv``);
    ``init`` overrides ``config.extra["init"]`` (``--init hsi-six``: fine-tune that model; its network
    and input settings replace those of ``extra.classify``).
    """
    extra = dict(config.extra or {})
    labels = labels or extra.get("labels")
    if not labels:
        raise InputError("no labels: give --labels export.csv or extra.labels in the run configuration")
    images = extra.get("images") or Path(labels).parent
    cfg = ClassifierConfig.model_validate(extra.get("classify", {}))
    init = init or extra.get("init")
    src = None
    if init:
        from .model import NETWORK_KEYS, TipClassifier

        src = TipClassifier.pretrained(str(init))  # its network and input settings replace the configuration's
        cfg = cfg.model_copy(update={k: getattr(src.config, k) for k in (*NETWORK_KEYS, "size", "flatten")})
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.to_yaml(run_dir / "run.yaml", overwrite=True)
    t = time.time()
    clf, scores = fit_from_export(labels, images, cfg, method=extra.get("method", "soft"),
                                  min_agreement=extra.get("min_agreement", 0.4),
                                  checkpoint=run_dir / "last.ckpt", resume=resume, progress=True, init=src)
    clf.card_["training_time_s"] = round(time.time() - t, 1)
    clf.save(run_dir / "model", overwrite=True)
    from types import SimpleNamespace

    return SimpleNamespace(run_dir=run_dir, model=run_dir / "model", classifier=clf)
