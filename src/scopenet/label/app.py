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

Log-in throttle: failed log-ins are counted in the database per (account, client address) and
per client address, with exponential back-off (:class:`~scopenet.label.security.LoginThrottle`;
default: 5 failures of one account from one address or 20 from one address lock that pair or
address for 15 minutes, each further failure doubles the lock); a locked pair or address gets 429
with ``Retry-After``, even with the right password. Nobody can lock an account out from elsewhere.
An unknown user name fails as slowly as a wrong password. ``X-Forwarded-For`` names the client
only when the peer is one of ``trusted_proxies`` (default none: every request carrying the header
counts as one address, even when uvicorn's own ``--proxy-headers`` rewrote the peer from it; see
:func:`~scopenet.label.deps.client_address`).

Uploads: files are read and rendered in worker processes (:class:`~scopenet.label.worker.RenderPool`)
with a time limit, a memory limit and a pixel limit checked from the header before decoding; a
file over a limit is refused by name and the server stays responsive. No database transaction is
open meanwhile; the rows are then written in one short transaction. At start-up, batch folders and
stored files that a crash left without database rows are removed
(:func:`~scopenet.label.service.remove_orphans`). CSV exports quote cells that spreadsheets would
run as formulas.

Code: this module wires the routers of :mod:`scopenet.label.routes` (``auth``: log-in/out and
sign-up for pages and API; ``pages``; ``admin``; ``api``), the middleware and the shared state
(:class:`~scopenet.label.deps.LabelContext` in ``app.state.label``).
"""
from __future__ import annotations

import contextlib
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from . import service as svc
from .db import SqlThrottleStore, make_engine, session_factory
from .deps import HERE, LabelContext, LoginRequired, is_api, page, parse_proxies
from .middleware import BodyTooLarge, LimitBody
from .routes import admin_router, api_router, auth_router, pages_router
from .security import DEFAULT_ROUNDS, CookieSigner, CsrfTokens, LoginThrottle, hash_password, new_token
from .worker import DEFAULT_MAX_PIXELS, DEFAULT_RENDER_MEMORY, DEFAULT_RENDER_TIMEOUT, RenderPool

DEFAULT_MAX_UPLOAD = 64 * 1024 * 1024


def _hold_upload_dir(upload_dir: Path):
    """Hold a shared lock on ``upload_dir/.serving`` for this process's life; also say whether this
    server is the only one on the folder (it could take the lock exclusively first).

    Returns ``(alone, file object)``; keep the file object alive. Without ``fcntl`` (Windows) every
    server counts as not alone, so only old leftovers are removed.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False, None
    f = open(upload_dir / ".serving", "a+")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone = True
    except OSError:
        alone = False
    fcntl.flock(f, fcntl.LOCK_SH)  # from now on: one of the servers of this folder
    return alone, f


def create_app(database_url: str = "sqlite:///labels.db", secret_key: str | None = None,
               upload_dir: str | os.PathLike | None = None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
               max_request_bytes: int | None = None, session_ttl: timedelta = timedelta(hours=8),
               secure_cookies: bool = False, bcrypt_rounds: int = DEFAULT_ROUNDS,
               login_throttle: LoginThrottle | None = None, trusted_proxies: Sequence[str] = (),
               max_pixels: int | None = DEFAULT_MAX_PIXELS, render_timeout: float = DEFAULT_RENDER_TIMEOUT,
               render_memory: int | None = DEFAULT_RENDER_MEMORY, render_workers: int = 2,
               renderer: Callable | None = None, db_busy_timeout: float = 30.0,
               orphan_grace: float = 3600.0) -> FastAPI:
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
        Work factor for new password hashes (and for the dummy hash unknown users are checked against).
    login_throttle : LoginThrottle, optional
        The log-in throttle's policy; default ``LoginThrottle()`` (5 failures per account and
        address, 20 per address, 15 minutes, doubling). Its counters are kept in the database
        unless it was given a store of its own.
    trusted_proxies : sequence of str
        Addresses or networks of reverse proxies whose ``X-Forwarded-For`` header names the client
        (default none: the header is ignored).
    max_pixels : int, optional
        Pixel limit of an uploaded image, checked from its header before decoding (64 Mpx; None: none).
    render_timeout : float
        Seconds one uploaded file may take to read and render (30).
    render_memory : int, optional
        Bytes of memory a render worker may use for one file (4 GiB; None: no limit).
    render_workers : int
        Files rendered at the same time (worker processes).
    renderer : callable, optional
        ``renderer(path) -> (png, width, height)``, raising a :class:`~scopenet.errors.ScopenetError`
        to refuse; default a :class:`~scopenet.label.worker.RenderPool` with the limits above.
    db_busy_timeout : float
        Seconds an SQLite statement waits for a lock before "database is locked" (then retried).
    orphan_grace : float
        At start-up, every leftover of a crashed upload is removed when no other server holds the upload
        folder; when one does (it may be uploading), only leftovers older than this many seconds.
    """
    if secret_key is None:
        secret_key = os.environ.get("SCOPENET_LABEL_SECRET")
    if not secret_key:
        secret_key = secrets.token_urlsafe(32)
    upload_dir = Path(upload_dir if upload_dir is not None else "label-uploads")
    upload_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url, busy_timeout=db_busy_timeout)
    Session = session_factory(engine)
    # the first server on this folder cleans every leftover of a crash; one that joins a running
    # server (which may be uploading now) only those older than the grace period
    alone, folder_lock = _hold_upload_dir(upload_dir)
    with Session() as s:
        svc.remove_orphans(s, upload_dir, older_than=0.0 if alone else orphan_grace)
    throttle = login_throttle if login_throttle is not None else LoginThrottle()
    if not throttle.has_own_store:
        throttle = throttle.with_store(SqlThrottleStore(Session))
    own_pool = renderer is None
    if renderer is None:
        renderer = RenderPool(workers=render_workers, timeout=render_timeout, memory_limit=render_memory,
                              max_pixels=max_pixels)
    label = LabelContext(
        Session=Session, upload_dir=upload_dir, signer=CookieSigner(secret_key), csrf=CsrfTokens(secret_key),
        throttle=throttle, templates=Jinja2Templates(directory=str(HERE / "templates")),
        max_upload_bytes=max_upload_bytes, session_ttl=session_ttl, secure_cookies=secure_cookies,
        bcrypt_rounds=bcrypt_rounds, dummy_hash=hash_password(new_token(), bcrypt_rounds), render=renderer,
        trusted_proxies=parse_proxies(trusted_proxies))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        if own_pool:
            renderer.close()

    app = FastAPI(title="scopenet label", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.label = label
    app.state.upload_dir_lock = folder_lock  # held while the app lives (see _hold_upload_dir)
    # kept for scripts and tests
    app.state.engine, app.state.Session, app.state.upload_dir = engine, Session, upload_dir
    app.state.max_upload_bytes, app.state.login_throttle, app.state.renderer = max_upload_bytes, throttle, renderer
    app.add_middleware(LimitBody, limit=max_request_bytes or max(50 * max_upload_bytes, 1 << 20))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in (auth_router, pages_router, admin_router, api_router):
        app.include_router(router)

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

    return app
