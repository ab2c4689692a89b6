"""Import a Zooniverse classification export into a labelling-service project (the reading itself is
:func:`scopenet.training.crowd.zooniverse.read_zooniverse_export`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..training.crowd import slug
from ..training.crowd.zooniverse import read_zooniverse_export


@dataclass
class ImportReport:
    """What :func:`import_zooniverse` did."""

    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    images_created: int = 0
    users_created: int = 0

    def __str__(self) -> str:
        return (f"{self.rows} classifications read: {self.imported} imported, {self.duplicates} duplicates "
                f"skipped; {self.images_created} new images, {self.users_created} new volunteers")


def import_zooniverse(s, project, path: str | Path, task: str | None = "T0", workflow_id: int | str | None = None,
                      ignore_unknown: bool = False) -> ImportReport:
    """Store a Zooniverse export's classifications as events of ``project``.

    Subjects become images (matched by subject id; their pixels can be uploaded later under the
    same file name); volunteers become accounts named ``zooniverse:<user_name>`` that cannot log
    in. A second classification of the same subject by the same volunteer, or a row imported
    before, is skipped and counted as a duplicate, so importing a newer export again only adds
    the new rows.

    Parameters
    ----------
    s : sqlalchemy.orm.Session
        Open session; the caller commits.
    project : Project
        Its categories give the answer order.
    """
    from sqlalchemy import select

    from .db import Classification, Image, User

    ev = read_zooniverse_export(path, project.categories, task=task, workflow_id=workflow_id,
                                ignore_unknown=ignore_unknown, drop_duplicates=False)
    rep = ImportReport(rows=len(ev))
    images = {img.external_id: img for img in s.scalars(select(Image).where(Image.project_id == project.id,
                                                                           Image.external_id.is_not(None)))}
    users: dict[str, User] = {}
    existing = set(s.execute(select(Classification.user_id, Classification.image_id).join(Image)
                             .where(Image.project_id == project.id)).all())
    for rec in ev.to_dict("records"):
        uname = ("zooniverse:" + rec["user"])[:80]
        user = users.get(uname)
        if user is None:
            user = s.scalar(select(User).where(User.username == uname))
            if user is None:
                user = User(username=uname, password_hash=None, role="annotator", origin="zooniverse")
                s.add(user)
                s.flush()
                rep.users_created += 1
            users[uname] = user
        img = images.get(rec["subject_id"])
        if img is None:
            img = Image(project_id=project.id, original_name=str(rec["image"])[:255], external_id=rec["subject_id"])
            s.add(img)
            s.flush()
            images[rec["subject_id"]] = img
            rep.images_created += 1
        if (user.id, img.id) in existing:
            rep.duplicates += 1
            continue
        answers = {c: bool(rec[slug(c)]) for c in project.categories}
        c = Classification(user_id=user.id, image_id=img.id, answers=answers, external_id=rec["classification_id"])
        if rec["created_at"] is not None and not pd.isna(rec["created_at"]):
            c.created_at = pd.Timestamp(rec["created_at"]).to_pydatetime()
        s.add(c)
        existing.add((user.id, img.id))
        rep.imported += 1
    s.flush()
    return rep
