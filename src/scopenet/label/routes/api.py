"""The JSON API (log-in and log-out are in :mod:`.auth`): projects, the next image, classifications,
one's own answers, and the admins' export."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ...errors import InputError
from .. import service as svc
from ..db import Classification, Image, User, retry_locked, write_session
from ..deps import LOGGED_IN_API, Principal, admin_user, ctx, current_user, get_project
from .admin import export_response
from .pages import project_rows

router = APIRouter(prefix="/api")


class ClassificationIn(BaseModel):
    image_id: int
    #: ticked category names/keys, or {category: bool}
    categories: list[str] | dict[str, bool]


@router.get("/projects")
def api_projects(request: Request, user: Principal = Depends(current_user)):
    with ctx(request).Session() as s:
        return project_rows(s, user)


@router.get("/projects/{pid}/next")
def api_next(request: Request, pid: int, user: Principal = Depends(current_user)):
    with ctx(request).Session() as s:
        p = get_project(s, pid)
        u = s.get(User, user.id)
        img = svc.next_image(s, u, p)
        done, total = svc.progress(s, u, p)
    return {"image_id": img.id if img else None, "image_url": f"/images/{img.id}.png" if img else None,
            "done": done, "total": total}


@router.post("/projects/{pid}/classifications", status_code=201, dependencies=LOGGED_IN_API)
def api_classify(request: Request, pid: int, body: ClassificationIn, user: Principal = Depends(current_user)):
    def work() -> int:
        with write_session(ctx(request).Session) as s:
            p = get_project(s, pid)
            img = s.get(Image, body.image_id)
            if img is None or img.project_id != p.id:
                raise HTTPException(404, "no such image in this project")
            return svc.record_classification(s, s.get(User, user.id), img, body.categories).id
    try:
        cid = retry_locked(work)
    except (IntegrityError, svc.AlreadyAnswered):
        return JSONResponse({"detail": "you have classified or skipped this image already"}, status_code=409)
    except InputError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    return {"id": cid}


@router.get("/me/classifications")
def api_my_classifications(request: Request, project_id: int | None = None,
                           user: Principal = Depends(current_user)):
    """The caller's own classification events (never anybody else's)."""
    with ctx(request).Session() as s:
        q = (select(Classification, Image).join(Image).where(Classification.user_id == user.id)
             .order_by(Classification.id))
        if project_id is not None:
            q = q.where(Image.project_id == project_id)
        return [{"id": c.id, "image_id": i.id, "image": i.original_name, "answers": c.answers,
                 "created_at": c.created_at.isoformat() + "Z"} for c, i in s.execute(q).all()]


@router.get("/projects/{pid}/export")
def api_export(request: Request, pid: int, kind: str = "events", fmt: str = "json",
               min_agreement: float | None = None, user: Principal = Depends(admin_user)):
    return export_response(request, pid, kind, fmt, min_agreement)
