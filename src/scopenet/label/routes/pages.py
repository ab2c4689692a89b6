"""Annotator pages: the project list, tutorials, the classification page and the rendered images."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ...errors import InputError
from .. import service as svc
from ..db import Image, Project, User, retry_locked, write_session
from ..deps import LOGGED_IN_FORM, Principal, ctx, current_user, get_project, page
from ..render import png_field_of_view
from ..tutorial import RULES, builtin_entries

router = APIRouter()


def project_rows(s, user: Principal) -> list[dict]:
    """Every project with the user's progress (the project list and ``GET /api/projects``)."""
    out = []
    u = s.get(User, user.id)
    for p in s.scalars(select(Project).order_by(Project.name)):
        done, total = svc.progress(s, u, p)
        out.append({"id": p.id, "name": p.name, "done": done, "total": total,
                    "categories": p.categories, "multi_label": p.multi_label})
    return out


@router.get("/", response_class=HTMLResponse)
def projects_page(request: Request, user: Principal = Depends(current_user)):
    with ctx(request).Session() as s:
        rows = project_rows(s, user)
    return page(request, "projects.html", user, projects=rows)


@router.get("/projects/{pid}/tutorial", response_class=HTMLResponse)
def tutorial(request: Request, pid: int, user: Principal = Depends(current_user)):
    with ctx(request).Session() as s:
        p = get_project(s, pid)
        examples = {c: [] for c in p.categories}
        for img in s.scalars(select(Image).where(Image.project_id == p.id, Image.example_for.is_not(None),
                                                 Image.png_name.is_not(None)).order_by(Image.id)):
            examples.setdefault(img.example_for, []).append(img.id)
        paragraphs = [t.strip() for t in p.tutorial.split("\n\n") if t.strip()]
        builtin = builtin_entries(p.categories)
        return page(request, "tutorial.html", user, project=p, examples=examples, paragraphs=paragraphs,
                    builtin=builtin, rules=RULES)


@router.get("/projects/{pid}/classify", response_class=HTMLResponse)
def classify_page(request: Request, pid: int, user: Principal = Depends(current_user)):
    with ctx(request).Session() as s:
        p = get_project(s, pid)
        u = s.get(User, user.id)
        img = svc.next_image(s, u, p)
        done, total = svc.progress(s, u, p)
        fov = png_field_of_view(ctx(request).upload_dir / "png" / img.png_name) if img and img.png_name else None
        return page(request, "classify.html", user, project=p, image=img, done=done, total=total,
                    position=min(done + 1, total), fov=fov)


@router.post("/projects/{pid}/classify", dependencies=LOGGED_IN_FORM)
def classify_submit(request: Request, pid: int, image_id: int = Form(...), categories: list[str] = Form([]),
                    action: str = Form("submit"), user: Principal = Depends(current_user)):
    def work():
        with write_session(ctx(request).Session) as s:
            p = get_project(s, pid)
            img = s.get(Image, image_id)
            if img is None or img.project_id != p.id:
                raise HTTPException(404, "no such image in this project")
            u = s.get(User, user.id)
            if action == "skip":
                svc.record_skip(s, u, img)
            else:
                svc.record_classification(s, u, img, categories)
    try:
        retry_locked(work)
    except (IntegrityError, svc.AlreadyAnswered):
        pass  # answered or skipped already (double submit): the first action stands
    except InputError as exc:
        raise HTTPException(400, str(exc)) from exc
    return RedirectResponse(f"/projects/{pid}/classify", status_code=303)


@router.get("/images/{image_id}.png")
def image_png(request: Request, image_id: int, user: Principal = Depends(current_user)):
    c = ctx(request)
    with c.Session() as s:
        img = s.get(Image, image_id)
        if img is None or not img.png_name:
            raise HTTPException(404, "no such image")
        path = c.upload_dir / "png" / img.png_name
    if not path.is_file():
        raise HTTPException(404, "the image file is missing")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
