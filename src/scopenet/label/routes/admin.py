"""Administration pages: users and invitations, projects, uploads, tutorial examples, deletion and
export (admins only).

Uploads are read and rendered by the app's renderer (worker processes with a time, memory and
pixel limit: :class:`~scopenet.label.worker.RenderPool`) while no transaction is open; the rows
are then written in one short transaction (:func:`~scopenet.label.service.upload_files`).
"""
from __future__ import annotations

import math

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from ...errors import InputError
from .. import service as svc
from ..db import Classification, Image, Project, User, write_session
from ..deps import (DEFAULT_PER_PAGE, LOGGED_IN_FORM, MAX_PER_PAGE, Principal, admin_user, ctx, get_project,
                    page)

router = APIRouter()


def admin_context(s) -> dict:
    users = s.scalars(select(User).order_by(User.username)).all()
    counts = dict(s.execute(select(Classification.user_id, func.count(Classification.id))
                            .group_by(Classification.user_id)).all())
    projects = []
    for p in s.scalars(select(Project).order_by(Project.name)):
        n_img = s.scalar(select(func.count(Image.id)).where(Image.project_id == p.id))
        n_ev = s.scalar(select(func.count(Classification.id)).join(Image)
                        .where(Image.project_id == p.id))
        projects.append({"id": p.id, "name": p.name, "images": n_img, "events": n_ev})
    return {"users": [{"name": u.username, "role": u.role, "origin": u.origin,
                       "events": counts.get(u.id, 0)} for u in users], "projects": projects}


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, user: Principal = Depends(admin_user)):
    with ctx(request).Session() as s:
        return page(request, "admin.html", user, invite_url=None, error=None, **admin_context(s))


@router.post("/admin/invitations", response_class=HTMLResponse, dependencies=LOGGED_IN_FORM)
def admin_invite(request: Request, role: str = Form("annotator"), user: Principal = Depends(admin_user)):
    Session = ctx(request).Session
    try:
        with write_session(Session) as s:
            token = svc.create_invitation(s, role, s.get(User, user.id))
        url, error = f"{str(request.base_url).rstrip('/')}/signup?token={token}", None
    except InputError as exc:
        url, error = None, str(exc)
    with Session() as s:
        return page(request, "admin.html", user, invite_url=url, error=error, **admin_context(s))


@router.post("/admin/projects", dependencies=LOGGED_IN_FORM)
def admin_create_project(request: Request, name: str = Form(...), categories: str = Form(""),
                         multi_label: str = Form("multi"), tutorial: str = Form(""),
                         user: Principal = Depends(admin_user)):
    Session = ctx(request).Session
    try:
        with write_session(Session) as s:
            p = svc.create_project(s, name, categories or None, multi_label == "multi", tutorial)
            pid = p.id
    except InputError as exc:
        with Session() as s:
            return page(request, "admin.html", user, status_code=400, invite_url=None, error=str(exc),
                        **admin_context(s))
    return RedirectResponse(f"/admin/projects/{pid}", status_code=303)


def project_admin_page(request: Request, user: Principal, pid: int, messages=(), refused=(),
                       status_code: int = 200, page_no: int = 1, per_page: int = DEFAULT_PER_PAGE):
    c = ctx(request)
    with c.Session() as s:
        p = get_project(s, pid)
        n_images = s.scalar(select(func.count(Image.id)).where(Image.project_id == p.id)) or 0
        n_pages = max(1, math.ceil(n_images / per_page))
        page_no = min(max(1, page_no), n_pages)
        rows = s.scalars(select(Image).where(Image.project_id == p.id).order_by(Image.id)
                         .limit(per_page).offset((page_no - 1) * per_page)).all()
        ids = [i.id for i in rows]
        counts = dict(s.execute(select(Classification.image_id, func.count(Classification.id))
                                .where(Classification.image_id.in_(ids))
                                .group_by(Classification.image_id)).all()) if ids else {}
        images = [{"id": i.id, "name": i.original_name, "example_for": i.example_for,
                   "has_png": bool(i.png_name), "events": counts.get(i.id, 0), "size": (i.width, i.height)}
                  for i in rows]
        pager = {"page": page_no, "pages": n_pages, "per_page": per_page, "total": n_images,
                 "first": (page_no - 1) * per_page + 1 if images else 0,
                 "last": (page_no - 1) * per_page + len(images)}
        return page(request, "admin_project.html", user, status_code=status_code, project=p, images=images,
                    pager=pager, messages=list(messages), refused=list(refused), max_upload=c.max_upload_bytes)


@router.get("/admin/projects/{pid}", response_class=HTMLResponse)
def admin_project(request: Request, pid: int, page_no: int = Query(1, alias="page", ge=1),
                  per_page: int = Query(DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE),
                  user: Principal = Depends(admin_user)):
    return project_admin_page(request, user, pid, page_no=page_no, per_page=per_page)


def back_to_list(pid: int, return_page: int, per_page: int) -> RedirectResponse:
    query = f"?page={max(1, return_page)}"
    if per_page != DEFAULT_PER_PAGE and 1 <= per_page <= MAX_PER_PAGE:
        query += f"&per_page={per_page}"
    return RedirectResponse(f"/admin/projects/{pid}{query}", status_code=303)


@router.post("/admin/images/{image_id}/example", dependencies=LOGGED_IN_FORM)
def admin_set_example(request: Request, image_id: int, example_for: str = Form(""), return_page: int = Form(1),
                      per_page: int = Form(DEFAULT_PER_PAGE), user: Principal = Depends(admin_user)):
    """Mark an uploaded image as a tutorial example of a category (empty ``example_for``: unmark)."""
    with write_session(ctx(request).Session) as s:
        img = s.get(Image, image_id)
        if img is None:
            raise HTTPException(404, "no such image")
        pid = img.project_id
        try:
            svc.set_example(s, img, example_for or None)
        except InputError as exc:
            raise HTTPException(400, str(exc)) from exc
    return back_to_list(pid, return_page, per_page)


@router.post("/admin/projects/{pid}/upload", response_class=HTMLResponse, dependencies=LOGGED_IN_FORM)
def admin_upload(request: Request, pid: int, files: list[UploadFile] = File(...),
                 example_for: str = Form(""), user: Principal = Depends(admin_user)):
    c = ctx(request)
    try:
        res = svc.upload_files(c.Session, pid, [(f.filename or "upload", f.file) for f in files], c.upload_dir,
                               c.max_upload_bytes, example_for=example_for or None, render=c.render)
    except LookupError as exc:
        raise HTTPException(404, "no such project") from exc
    except InputError as exc:
        return project_admin_page(request, user, pid, refused=[str(exc)], status_code=400)
    stored = [i.original_name for i in res.stored]
    msgs = [f"Stored {len(stored)} image(s)."] if stored else []
    return project_admin_page(request, user, pid, messages=msgs, refused=res.messages(),
                              status_code=200 if stored or not res.refused else 400)


@router.post("/admin/projects/{pid}/delete", dependencies=LOGGED_IN_FORM)
def admin_delete_project(request: Request, pid: int, user: Principal = Depends(admin_user)):
    c = ctx(request)
    with write_session(c.Session) as s:
        svc.delete_project(s, get_project(s, pid), c.upload_dir)
    return RedirectResponse("/admin", status_code=303)


@router.post("/admin/images/{image_id}/delete", dependencies=LOGGED_IN_FORM)
def admin_delete_image(request: Request, image_id: int, return_page: int = Form(1),
                       per_page: int = Form(DEFAULT_PER_PAGE), user: Principal = Depends(admin_user)):
    c = ctx(request)
    with write_session(c.Session) as s:
        img = s.get(Image, image_id)
        if img is None:
            raise HTTPException(404, "no such image")
        pid = img.project_id
        svc.delete_image(s, img, c.upload_dir)
    return back_to_list(pid, return_page, per_page)


def export_response(request: Request, pid: int, kind: str, fmt: str, min_agreement: float | None) -> Response:
    """A project's events or scores as a CSV (cells that a spreadsheet would run as formulas are
    quoted: :func:`~scopenet.label.service.csv_safe`) or JSON download."""
    if kind not in ("events", "scores") or fmt not in ("csv", "json"):
        raise HTTPException(400, "kind is events or scores; fmt is csv or json")
    with ctx(request).Session() as s:
        p = get_project(s, pid)
        df = svc.events_frame(s, p) if kind == "events" else svc.aggregate_project(s, p, min_agreement)
        name = f"project{p.id}-{kind}.{fmt}"
    if fmt == "csv":
        body, media = svc.csv_safe(df).to_csv(index=False), "text/csv"
    else:
        body, media = df.to_json(orient="records", indent=1), "application/json"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/admin/projects/{pid}/export")
def admin_export(request: Request, pid: int, kind: str = "events", fmt: str = "csv",
                 min_agreement: float | None = None, user: Principal = Depends(admin_user)):
    return export_response(request, pid, kind, fmt, min_agreement)
