"""The crowd-labelling web service: a FastAPI app with server-rendered Jinja2 pages and a JSON API.

>>> from scopenet.label import create_app
>>> app = create_app("sqlite:///labels.db", upload_dir="label-uploads")      # doctest: +SKIP
>>> # uvicorn.run(app, host="127.0.0.1", port=8000)

Pages: ``/login``, ``/signup?token=...`` (invitations), ``/`` (projects), ``/projects/{id}/tutorial``,
``/projects/{id}/classify`` (keys 1-9 toggle categories, Enter submits, S skips), ``/admin`` and
``/admin/projects/{id}?page=N`` (upload, export, delete, tutorial examples; paginated image list;
admins only).

API: ``GET /api/csrf``, ``POST /api/login``, ``POST /api/logout``, ``GET /api/projects``,
``GET /api/projects/{id}/next``, ``POST /api/projects/{id}/classifications``, ``GET /api/me/classifications``,
``GET /api/projects/{id}/export`` (admins).

Security: passwords are bcrypt hashes; the session cookie carries a random token signed with
itsdangerous (HttpOnly, SameSite=Lax) and the database keeps its hash with an expiry; only admins
export, upload or delete (403 otherwise); annotators only ever see their own answers; uploads are
size-limited and stored under generated names; a request body over the limit gets 413, with or
without a declared length.

CSRF: every state-changing request carries a per-session token, ``HMAC(secret, session token)``
(before log-in: of a random pre-session cookie), see :class:`~scopenet.label.security.CsrfTokens`.

* HTML forms send it in the hidden field ``csrf_token`` that every form of the pages holds;
* the JSON API takes it in the header ``X-CSRF-Token``: ``GET /api/csrf`` returns the token of
  the current (pre-)session, and ``POST /api/login`` returns the new session's token as
  ``csrf_token``. A cross-site page can neither read the token nor set a custom header.

A POST whose token is missing or wrong is refused with 403 and changes nothing (pages that need a
log-in check the log-in first: 401 or a redirect to ``/login`` for anonymous requests).

Log-in throttle: failed log-ins are counted per account and per client address in a sliding
window (:class:`~scopenet.label.security.LoginThrottle`; default 5 per account, 20 per address,
15 minutes); a locked account or address gets 429 with ``Retry-After``, even with the right
password. Behind a reverse proxy run uvicorn with ``--proxy-headers`` so that the client address
is the real one.
"""
from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..errors import InputError
from . import service as svc
from .db import (Classification, Image, Project, User, make_engine, retry_locked, session_factory,
                 write_session)
from .security import DEFAULT_ROUNDS, CookieSigner, CsrfTokens, LoginThrottle, new_token, verify_password

HERE = Path(__file__).parent
COOKIE = "scopenet_label_session"
#: random value binding the anti-CSRF token of forms shown before log-in
PRE_COOKIE = "scopenet_label_pre"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
CSRF_REFUSED = "the request's anti-forgery token is missing or stale: reload the page and try again"
DEFAULT_MAX_UPLOAD = 64 * 1024 * 1024
#: images per page of the admin image list (``?page=N&per_page=M``, at most MAX_PER_PAGE)
DEFAULT_PER_PAGE, MAX_PER_PAGE = 50, 500


@dataclass(frozen=True)
class Principal:
    """The logged-in user of a request (a plain value, detached from any DB session)."""

    id: int
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class LoginRequired(Exception):
    pass


class BodyTooLarge(Exception):
    pass


class _LimitBody:
    """ASGI middleware refusing request bodies over ``limit`` bytes with 413.

    A declared ``Content-Length`` over the limit is refused before the body is read. A body without
    one (``Transfer-Encoding: chunked``) is counted as it arrives; once past the limit the app's
    reading fails, whatever the app would answer then (a body-parsing 400, say) is dropped and
    413 is sent instead.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def _too_large(self) -> JSONResponse:
        return JSONResponse({"detail": f"request larger than {self.limit:,} bytes"}, status_code=413)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    return await self._too_large()(scope, receive, send)
        seen, exceeded, started = 0, False, False

        async def limited_receive():
            nonlocal seen, exceeded
            if exceeded:
                raise BodyTooLarge()
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise BodyTooLarge()
            return msg

        async def guarded_send(msg):
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a body cut short is replaced by 413 below
            started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._too_large()(scope, receive, send)


class LoginIn(BaseModel):
    username: str
    password: str


class ClassificationIn(BaseModel):
    image_id: int
    #: ticked category names/keys, or {category: bool}
    categories: list[str] | dict[str, bool]


def create_app(database_url: str = "sqlite:///labels.db", secret_key: str | None = None,
               upload_dir: str | os.PathLike | None = None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
               max_request_bytes: int | None = None, session_ttl: timedelta = timedelta(hours=8),
               secure_cookies: bool = False, bcrypt_rounds: int = DEFAULT_ROUNDS,
               login_throttle: LoginThrottle | None = None) -> FastAPI:
    """Build the labelling web app.

    Parameters
    ----------
    database_url : str
        SQLAlchemy URL: ``sqlite:///labels.db`` (default), ``postgresql://user:pw@host/db`` ...
        Tables are created when missing.
    secret_key : str, optional
        Key that signs session cookies; default ``$SCOPENET_LABEL_SECRET`` or a random key (then
        sessions end when the server restarts).
    upload_dir : path, optional
        Folder for uploaded originals and rendered PNGs; default ``./label-uploads``.
    max_upload_bytes : int
        Size limit of one uploaded file (64 MiB by default).
    max_request_bytes : int, optional
        Size limit of one request body; default 50 files' worth.
    session_ttl : timedelta
        How long a login lasts.
    secure_cookies : bool
        Send the session cookie over HTTPS only (set behind TLS).
    bcrypt_rounds : int
        Work factor for new password hashes.
    login_throttle : LoginThrottle, optional
        Counts failed log-ins and locks accounts and client addresses; default
        ``LoginThrottle()`` (5 failures per account, 20 per address, within 15 minutes).
    """
    if secret_key is None:
        secret_key = os.environ.get("SCOPENET_LABEL_SECRET")
    if not secret_key:
        secret_key = secrets.token_urlsafe(32)
    upload_dir = Path(upload_dir if upload_dir is not None else "label-uploads")
    upload_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url)
    Session = session_factory(engine)
    signer = CookieSigner(secret_key)
    csrf = CsrfTokens(secret_key)
    throttle = login_throttle if login_throttle is not None else LoginThrottle()
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    app = FastAPI(title="scopenet label", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.Session, app.state.upload_dir = engine, Session, upload_dir
    app.state.max_upload_bytes = max_upload_bytes
    app.state.login_throttle = throttle
    app.add_middleware(_LimitBody, limit=max_request_bytes or max(50 * max_upload_bytes, 1 << 20))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # ------------------------------------------------------------------------- helpers

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def csrf_binding(request: Request) -> str | None:
        """What the request's anti-CSRF token is bound to: the session token, else the pre-session cookie."""
        token = signer.loads(request.cookies.get(COOKIE))
        if token:
            return "session:" + token
        pre = request.cookies.get(PRE_COOKIE)
        return "pre:" + pre if pre and len(pre) <= 100 else None

    def form_csrf(request: Request, csrf_token: str = Form("")) -> None:
        """Dependency of every state-changing form POST: 403 without the right token."""
        if not csrf.check(csrf_binding(request), csrf_token):
            raise HTTPException(403, CSRF_REFUSED)

    def api_csrf(request: Request, x_csrf_token: str | None = Header(None)) -> None:
        """Dependency of every state-changing API POST: the token in the ``X-CSRF-Token`` header."""
        if not csrf.check(csrf_binding(request), x_csrf_token):
            raise HTTPException(403, CSRF_REFUSED)

    def page(request: Request, name: str, user: Principal | None = None, status_code: int = 200,
             **ctx: Any) -> HTMLResponse:
        binding, pre = csrf_binding(request), None
        if binding is None:  # first visit: start a pre-session so that the log-in form has a token
            pre = new_token()
            binding = "pre:" + pre
        resp = templates.TemplateResponse(request, name, {"user": user, CSRF_FIELD: csrf.token(binding), **ctx},
                                          status_code=status_code)
        if pre is not None:
            resp.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="lax", secure=secure_cookies, path="/")
        return resp

    def open_session(user: User) -> str:
        with write_session(Session) as s:
            return svc.start_session(s, s.get(User, user.id), session_ttl)

    def put_session_cookie(resp: Response, token: str) -> None:
        resp.set_cookie(COOKIE, signer.dumps(token), max_age=max(0, int(session_ttl.total_seconds())),
                        httponly=True, samesite="lax", secure=secure_cookies, path="/")

    def set_login_cookie(resp: Response, user: User) -> None:
        put_session_cookie(resp, open_session(user))

    def optional_user(request: Request) -> Principal | None:
        token = signer.loads(request.cookies.get(COOKIE))
        if token is None:
            return None
        with Session() as s:
            u = svc.session_user(s, token)
            if s.deleted:  # an expired session was found: remove it
                s.commit()
            return None if u is None else Principal(u.id, u.username, u.role)

    def current_user(user: Principal | None = Depends(optional_user)) -> Principal:
        if user is None:
            raise LoginRequired()
        return user

    def admin_user(user: Principal = Depends(current_user)) -> Principal:
        if not user.is_admin:
            raise HTTPException(403, "only administrators may do this")
        return user

    #: routes that need a login check it before the token (anonymous: 401 / to the log-in page)
    LOGGED_IN_FORM = [Depends(current_user), Depends(form_csrf)]
    LOGGED_IN_API = [Depends(current_user), Depends(api_csrf)]

    def get_project(s, pid: int) -> Project:
        p = s.get(Project, pid)
        if p is None:
            raise HTTPException(404, "no such project")
        return p

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired):
        if is_api(request):
            return JSONResponse({"detail": "log in first"}, status_code=401)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        if is_api(request) or exc.status_code == 413:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return page(request, "error.html", None, status_code=exc.status_code, status=exc.status_code,
                    detail=exc.detail)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge):  # pragma: no cover - chunked bodies
        return JSONResponse({"detail": "request too large"}, status_code=413)

    # ------------------------------------------------------------------------- log in/out

    def safe_next(nxt: str | None) -> str:
        return nxt if nxt and nxt.startswith("/") and not nxt.startswith("//") else "/"

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/"):
        return page(request, "login.html", None, next=safe_next(next), error=None)

    def client_address(request: Request) -> str | None:
        return request.client.host if request.client else None

    def check_login(request: Request, username: str, password: str) -> tuple[User | None, float]:
        """(the user, 0) for the right password; (None, 0) when wrong; (None, seconds) while locked."""
        username, addr = username.strip(), client_address(request)
        wait = throttle.retry_after(username, addr)
        if wait > 0:
            return None, wait
        with Session() as s:
            u = svc.user_by_name(s, username)
            ok = u is not None and verify_password(password, u.password_hash)
        if not ok:
            throttle.failure(username, addr)
            return None, 0.0
        throttle.success(username)
        return u, 0.0

    def locked_message(wait: float) -> str:
        return (f"Too many failed log-ins for this account or from this address; "
                f"try again in {max(1, math.ceil(wait / 60))} minute(s).")

    @app.post("/login", dependencies=[Depends(form_csrf)])
    def login(request: Request, username: str = Form(...), password: str = Form(...), next: str = Form("/")):
        u, wait = check_login(request, username, password)
        if wait > 0:
            resp = page(request, "login.html", None, status_code=429, next=safe_next(next),
                        error=locked_message(wait))
            resp.headers["Retry-After"] = str(math.ceil(wait))
            return resp
        if u is None:
            return page(request, "login.html", None, status_code=401, next=safe_next(next),
                        error="Unknown user name or wrong password.")
        resp = RedirectResponse(safe_next(next), status_code=303)
        set_login_cookie(resp, u)
        return resp

    @app.post("/logout", dependencies=[Depends(form_csrf)])
    def logout(request: Request):
        token = signer.loads(request.cookies.get(COOKIE))
        with write_session(Session) as s:
            svc.end_session(s, token)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    @app.get("/signup", response_class=HTMLResponse)
    def signup_form(request: Request, token: str = ""):
        with Session() as s:
            inv = svc.valid_invitation(s, token)
        if inv is None:
            return page(request, "error.html", None, status_code=404, status=404,
                        detail="This invitation is unknown, used or expired.")
        return page(request, "signup.html", None, token=token, error=None, role=inv.role)

    @app.post("/signup", dependencies=[Depends(form_csrf)])
    def signup(request: Request, token: str = Form(...), username: str = Form(...),
               password: str = Form(...), password2: str = Form(...)):
        error = None
        if password != password2:
            error = "The two passwords differ."
        else:
            try:
                with write_session(Session) as s:
                    user = svc.accept_invitation(s, token, username, password, rounds=bcrypt_rounds)
            except InputError as exc:
                error = str(exc)
        if error:
            return page(request, "signup.html", None, status_code=400, token=token, error=error, role="")
        resp = RedirectResponse("/", status_code=303)
        set_login_cookie(resp, user)
        return resp

    # ------------------------------------------------------------------------- annotator pages

    def project_rows(s, user: Principal) -> list[dict]:
        out = []
        u = s.get(User, user.id)
        for p in s.scalars(select(Project).order_by(Project.name)):
            done, total = svc.progress(s, u, p)
            out.append({"id": p.id, "name": p.name, "done": done, "total": total,
                        "categories": p.categories, "multi_label": p.multi_label})
        return out

    @app.get("/", response_class=HTMLResponse)
    def projects_page(request: Request, user: Principal = Depends(current_user)):
        with Session() as s:
            rows = project_rows(s, user)
        return page(request, "projects.html", user, projects=rows)

    @app.get("/projects/{pid}/tutorial", response_class=HTMLResponse)
    def tutorial(request: Request, pid: int, user: Principal = Depends(current_user)):
        with Session() as s:
            p = get_project(s, pid)
            examples = {c: [] for c in p.categories}
            for img in s.scalars(select(Image).where(Image.project_id == p.id, Image.example_for.is_not(None),
                                                     Image.png_name.is_not(None)).order_by(Image.id)):
                examples.setdefault(img.example_for, []).append(img.id)
            paragraphs = [t.strip() for t in p.tutorial.split("\n\n") if t.strip()]
            return page(request, "tutorial.html", user, project=p, examples=examples, paragraphs=paragraphs)

    @app.get("/projects/{pid}/classify", response_class=HTMLResponse)
    def classify_page(request: Request, pid: int, user: Principal = Depends(current_user)):
        with Session() as s:
            p = get_project(s, pid)
            u = s.get(User, user.id)
            img = svc.next_image(s, u, p)
            done, total = svc.progress(s, u, p)
            return page(request, "classify.html", user, project=p, image=img, done=done, total=total,
                        position=min(done + 1, total))

    @app.post("/projects/{pid}/classify", dependencies=LOGGED_IN_FORM)
    def classify_submit(pid: int, image_id: int = Form(...), categories: list[str] = Form([]),
                        action: str = Form("submit"), user: Principal = Depends(current_user)):
        def work():
            with write_session(Session) as s:
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

    @app.get("/images/{image_id}.png")
    def image_png(image_id: int, user: Principal = Depends(current_user)):
        with Session() as s:
            img = s.get(Image, image_id)
            if img is None or not img.png_name:
                raise HTTPException(404, "no such image")
            path = upload_dir / "png" / img.png_name
        if not path.is_file():
            raise HTTPException(404, "the image file is missing")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    # ------------------------------------------------------------------------- admin pages

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

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request, user: Principal = Depends(admin_user)):
        with Session() as s:
            return page(request, "admin.html", user, invite_url=None, error=None, **admin_context(s))

    @app.post("/admin/invitations", response_class=HTMLResponse, dependencies=LOGGED_IN_FORM)
    def admin_invite(request: Request, role: str = Form("annotator"), user: Principal = Depends(admin_user)):
        try:
            with write_session(Session) as s:
                token = svc.create_invitation(s, role, s.get(User, user.id))
            url, error = f"{str(request.base_url).rstrip('/')}/signup?token={token}", None
        except InputError as exc:
            url, error = None, str(exc)
        with Session() as s:
            return page(request, "admin.html", user, invite_url=url, error=error, **admin_context(s))

    @app.post("/admin/projects", dependencies=LOGGED_IN_FORM)
    def admin_create_project(request: Request, name: str = Form(...), categories: str = Form(""),
                             multi_label: str = Form("multi"), tutorial: str = Form(""),
                             user: Principal = Depends(admin_user)):
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
        with Session() as s:
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
                        pager=pager, messages=list(messages), refused=list(refused),
                        max_upload=app.state.max_upload_bytes)

    @app.get("/admin/projects/{pid}", response_class=HTMLResponse)
    def admin_project(request: Request, pid: int, page_no: int = Query(1, alias="page", ge=1),
                      per_page: int = Query(DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE),
                      user: Principal = Depends(admin_user)):
        return project_admin_page(request, user, pid, page_no=page_no, per_page=per_page)

    def back_to_list(pid: int, return_page: int, per_page: int) -> RedirectResponse:
        query = f"?page={max(1, return_page)}"
        if per_page != DEFAULT_PER_PAGE and 1 <= per_page <= MAX_PER_PAGE:
            query += f"&per_page={per_page}"
        return RedirectResponse(f"/admin/projects/{pid}{query}", status_code=303)

    @app.post("/admin/images/{image_id}/example", dependencies=LOGGED_IN_FORM)
    def admin_set_example(image_id: int, example_for: str = Form(""), return_page: int = Form(1),
                          per_page: int = Form(DEFAULT_PER_PAGE), user: Principal = Depends(admin_user)):
        """Mark an uploaded image as a tutorial example of a category (empty ``example_for``: unmark)."""
        with write_session(Session) as s:
            img = s.get(Image, image_id)
            if img is None:
                raise HTTPException(404, "no such image")
            pid = img.project_id
            try:
                svc.set_example(s, img, example_for or None)
            except InputError as exc:
                raise HTTPException(400, str(exc)) from exc
        return back_to_list(pid, return_page, per_page)

    @app.post("/admin/projects/{pid}/upload", response_class=HTMLResponse, dependencies=LOGGED_IN_FORM)
    def admin_upload(request: Request, pid: int, files: list[UploadFile] = File(...),
                     example_for: str = Form(""), user: Principal = Depends(admin_user)):
        try:
            with write_session(Session) as s:
                p = get_project(s, pid)
                res = svc.ingest_uploads(s, p, [(f.filename or "upload", f.file) for f in files], upload_dir,
                                         max_upload_bytes, example_for=example_for or None)
                stored = [i.original_name for i in res.stored]
        except InputError as exc:
            return project_admin_page(request, user, pid, refused=[str(exc)], status_code=400)
        msgs = [f"Stored {len(stored)} image(s)."] if stored else []
        return project_admin_page(request, user, pid, messages=msgs, refused=res.messages(),
                                  status_code=200 if stored or not res.refused else 400)

    @app.post("/admin/projects/{pid}/delete", dependencies=LOGGED_IN_FORM)
    def admin_delete_project(pid: int, user: Principal = Depends(admin_user)):
        with write_session(Session) as s:
            svc.delete_project(s, get_project(s, pid), upload_dir)
        return RedirectResponse("/admin", status_code=303)

    @app.post("/admin/images/{image_id}/delete", dependencies=LOGGED_IN_FORM)
    def admin_delete_image(image_id: int, return_page: int = Form(1), per_page: int = Form(DEFAULT_PER_PAGE),
                           user: Principal = Depends(admin_user)):
        with write_session(Session) as s:
            img = s.get(Image, image_id)
            if img is None:
                raise HTTPException(404, "no such image")
            pid = img.project_id
            svc.delete_image(s, img, upload_dir)
        return back_to_list(pid, return_page, per_page)

    def export_response(pid: int, kind: str, fmt: str, min_agreement: float | None) -> Response:
        if kind not in ("events", "scores") or fmt not in ("csv", "json"):
            raise HTTPException(400, "kind is events or scores; fmt is csv or json")
        with Session() as s:
            p = get_project(s, pid)
            df = svc.events_frame(s, p) if kind == "events" else svc.aggregate_project(s, p, min_agreement)
            name = f"project{p.id}-{kind}.{fmt}"
        if fmt == "csv":
            body, media = df.to_csv(index=False), "text/csv"
        else:
            body, media = df.to_json(orient="records", indent=1), "application/json"
        return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/admin/projects/{pid}/export")
    def admin_export(pid: int, kind: str = "events", fmt: str = "csv", min_agreement: float | None = None,
                     user: Principal = Depends(admin_user)):
        return export_response(pid, kind, fmt, min_agreement)

    # ------------------------------------------------------------------------- JSON API

    @app.get("/api/csrf")
    def api_csrf_token(request: Request):
        """The anti-CSRF token of the current session (or of a new pre-session, whose cookie is set)."""
        binding, pre = csrf_binding(request), None
        if binding is None:
            pre = new_token()
            binding = "pre:" + pre
        resp = JSONResponse({"csrf_token": csrf.token(binding)})
        if pre is not None:
            resp.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="lax", secure=secure_cookies, path="/")
        return resp

    @app.post("/api/login", dependencies=[Depends(api_csrf)])
    def api_login(request: Request, body: LoginIn):
        u, wait = check_login(request, body.username, body.password)
        if wait > 0:
            return JSONResponse({"detail": locked_message(wait)}, status_code=429,
                                headers={"Retry-After": str(math.ceil(wait))})
        if u is None:
            return JSONResponse({"detail": "unknown user name or wrong password"}, status_code=401)
        token = open_session(u)
        resp = JSONResponse({"username": u.username, "role": u.role, "csrf_token": csrf.token("session:" + token)})
        put_session_cookie(resp, token)
        return resp

    @app.post("/api/logout", dependencies=[Depends(api_csrf)])
    def api_logout(request: Request):
        token = signer.loads(request.cookies.get(COOKIE))
        with write_session(Session) as s:
            svc.end_session(s, token)
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(COOKIE, path="/")
        return resp

    @app.get("/api/projects")
    def api_projects(user: Principal = Depends(current_user)):
        with Session() as s:
            return project_rows(s, user)

    @app.get("/api/projects/{pid}/next")
    def api_next(pid: int, user: Principal = Depends(current_user)):
        with Session() as s:
            p = get_project(s, pid)
            u = s.get(User, user.id)
            img = svc.next_image(s, u, p)
            done, total = svc.progress(s, u, p)
        return {"image_id": img.id if img else None, "image_url": f"/images/{img.id}.png" if img else None,
                "done": done, "total": total}

    @app.post("/api/projects/{pid}/classifications", status_code=201, dependencies=LOGGED_IN_API)
    def api_classify(pid: int, body: ClassificationIn, user: Principal = Depends(current_user)):
        def work() -> int:
            with write_session(Session) as s:
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

    @app.get("/api/me/classifications")
    def api_my_classifications(project_id: int | None = None, user: Principal = Depends(current_user)):
        """The caller's own classification events (never anybody else's)."""
        with Session() as s:
            q = (select(Classification, Image).join(Image).where(Classification.user_id == user.id)
                 .order_by(Classification.id))
            if project_id is not None:
                q = q.where(Image.project_id == project_id)
            return [{"id": c.id, "image_id": i.id, "image": i.original_name, "answers": c.answers,
                     "created_at": c.created_at.isoformat() + "Z"} for c, i in s.execute(q).all()]

    @app.get("/api/projects/{pid}/export")
    def api_export(pid: int, kind: str = "events", fmt: str = "json", min_agreement: float | None = None,
                   user: Principal = Depends(admin_user)):
        return export_response(pid, kind, fmt, min_agreement)

    return app
