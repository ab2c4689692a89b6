"""Import Zooniverse classification exports, so existing projects come in unchanged.

A Zooniverse project's "classification export" is a CSV with one row per classification and the
columns ``classification_id, user_name, user_id, user_ip, workflow_id, workflow_name,
workflow_version, created_at, gold_standard, expert, metadata, annotations, subject_data,
subject_ids``. ``annotations`` holds JSON, a list of tasks::

    [{"task": "T0", "task_label": "Tick all that apply", "value": ["Dimers", "Rows"]}]

``value`` is a list of answer labels (multiple-choice question), one label (single choice), or
answer indices. ``subject_data`` holds JSON keyed by subject id with the subject's metadata,
usually including its file name: ``{"1234": {"retired": null, "Filename": "scan_001.png"}}``.

:func:`read_zooniverse_export` turns such a file into one row per classification event with a 0/1
column per category (ready for :func:`~scopenet.training.crowd.aggregate.aggregate_events`);
:func:`import_zooniverse` stores the events in a project of the labelling service.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ...errors import InputError, ReadError
from . import DEFAULT_CATEGORIES, slug

REQUIRED_COLUMNS = ("classification_id", "user_name", "annotations", "subject_ids")
_NAME_KEYS = ("filename", "file_name", "image", "image_name", "name", "file", "subject_name")


def _clean_label(label: str) -> str:
    return re.sub(r"[*_`#>]+", " ", str(label)).strip()


def _match(label: Any, categories: Sequence[str]) -> str | None:
    """The category an answer (label text or index) stands for, or None."""
    if isinstance(label, bool):
        return None
    if isinstance(label, int):
        return categories[label] if 0 <= label < len(categories) else None
    if isinstance(label, dict):
        for k in ("label", "value", "choice"):
            if k in label:
                return _match(label[k], categories)
        return None
    key = slug(_clean_label(label))
    keys = [slug(c) for c in categories]
    if key in keys:
        return categories[keys.index(key)]
    prefixed = [c for c, k in zip(categories, keys) if key.startswith(k + "_")]
    return prefixed[0] if len(prefixed) == 1 else None


def _task_value(annotations: list, task: str | None):
    for a in annotations:
        if not isinstance(a, dict):
            continue
        if task is None or a.get("task") == task:
            return a.get("value"), True
    return None, False


def _subject_name(subject_data: str | float, sid: str) -> str:
    if not isinstance(subject_data, str) or not subject_data.strip():
        return sid
    try:
        data = json.loads(subject_data)
    except json.JSONDecodeError:
        return sid
    meta = data.get(sid) if isinstance(data, dict) else None
    if meta is None and isinstance(data, dict) and len(data) == 1:
        meta = next(iter(data.values()))
    if isinstance(meta, dict):
        norm = {k.lstrip("!#/ ").strip().lower(): v for k, v in meta.items()}
        for k in _NAME_KEYS:
            if norm.get(k):
                return str(norm[k])
    return sid


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        ts = pd.Timestamp(value.replace(" UTC", "+00:00"))
    except ValueError:
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def read_zooniverse_export(path: str | Path, categories: Sequence[str] = DEFAULT_CATEGORIES, task: str | None = "T0",
                           workflow_id: int | str | None = None, ignore_unknown: bool = False,
                           drop_duplicates: bool = True) -> pd.DataFrame:
    """Classification events of a Zooniverse export CSV.

    Parameters
    ----------
    path : path
        The export (``<project>-classifications.csv``).
    categories : sequence of str
        The category names, in the order of the question's answers (answer index ``i`` is
        ``categories[i]``); answer labels are matched by name, case and punctuation ignored.
    task : str or None
        The task key of the question (``"T0"``); None takes the first task of each row.
    workflow_id : int or str, optional
        Keep only this workflow's rows.
    ignore_unknown : bool
        Drop answers that match no category instead of raising.
    drop_duplicates : bool
        Keep only the first classification of a subject by the same volunteer (as the service's
        unique (user, image) rule does).

    Returns
    -------
    DataFrame
        One row per classification: ``classification_id``, ``user``, ``subject_id``, ``image`` (the
        subject's file name from ``subject_data``, else its id), ``created_at`` (naive UTC datetime or
        None), ``workflow_id``, and one 0/1 column per category key.

    Raises
    ------
    ReadError
        If the file is missing, not CSV, lacks a required column, or a row has invalid JSON.
    InputError
        For an answer that matches no category (unless ``ignore_unknown``).
    """
    path = Path(path)
    if not path.is_file():
        raise ReadError(path, "no such file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise ReadError(path, f"not a CSV file ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise ReadError(path, f"not a Zooniverse classification export: missing column(s) {', '.join(missing)}")
    if workflow_id is not None and "workflow_id" in raw.columns:
        raw = raw[raw["workflow_id"].astype(str) == str(workflow_id)]
    categories = list(categories)
    keys = [slug(c) for c in categories]
    recs = []
    for row in raw.itertuples(index=False):
        cid = str(row.classification_id)
        try:
            annotations = json.loads(row.annotations) if row.annotations else []
        except json.JSONDecodeError as exc:
            raise ReadError(path, f"classification {cid}: the annotations column is not JSON ({exc})") from exc
        if isinstance(annotations, dict):
            annotations = [annotations]
        value, found = _task_value(annotations, task)
        if not found:
            raise ReadError(path, f"classification {cid} has no task {task!r}")
        answers = value if isinstance(value, list) else ([] if value is None else [value])
        ticked = set()
        for a in answers:
            cat = _match(a, categories)
            if cat is None:
                if ignore_unknown:
                    continue
                raise InputError(f"{path}: classification {cid}: the answer {a!r} matches none of the "
                                 f"categories {categories}")
            ticked.add(cat)
        sid = str(row.subject_ids).split(";")[0].strip()
        rec = {"classification_id": cid, "user": str(row.user_name) or f"anonymous-{cid}", "subject_id": sid,
               "image": _subject_name(getattr(row, "subject_data", ""), sid),
               "created_at": _parse_time(getattr(row, "created_at", "")),
               "workflow_id": getattr(row, "workflow_id", "")}
        rec.update({k: int(c in ticked) for c, k in zip(categories, keys)})
        recs.append(rec)
    cols = ["classification_id", "user", "subject_id", "image", "created_at", "workflow_id", *keys]
    ev = pd.DataFrame(recs, columns=cols)
    if drop_duplicates:
        ev = ev.drop_duplicates(["user", "subject_id"], keep="first").reset_index(drop=True)
    return ev
