"""What the routers of the labelling app share: its settings and services (:class:`LabelContext`,
kept in ``app.state.label``), the logged-in user, the anti-CSRF checks and page rendering.

Every dependency reads the context from the request's app, so that the routers are plain module-level
:class:`fastapi.APIRouter` objects and one process may serve several apps.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from fastapi import Depends, Form, Header, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from . import service as svc
from .db import Project, is_locked_error
from .security import CookieSigner, CsrfTokens, LoginThrottle, new_token

HERE = Path(__file__).parent
COOKIE = "scopenet_label_session"
#: random value binding the anti-CSRF token of forms shown before log-in
PRE_COOKIE = "scopenet_label_pre"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
CSRF_REFUSED = "the request's anti-forgery token is missing or stale: reload the page and try again"
#: images per page of the admin image list (``?page=N&per_page=M``, at most MAX_PER_PAGE)
DEFAULT_PER_PAGE, MAX_PER_PAGE = 50, 500


@dataclass
class LabelContext:
    """Settings and services of one labelling app (``app.state.label``)."""

    Session: sessionmaker[Session]
    upload_dir: Path
    signer: CookieSigner
    csrf: CsrfTokens
    throttle: LoginThrottle
    templates: Jinja2Templates
    max_upload_bytes: int
    session_ttl: timedelta
    secure_cookies: bool
    bcrypt_rounds: int
    #: bcrypt hash of a random password, checked for unknown users so that they fail as slowly as known ones
    dummy_hash: str
    #: ``render(path) -> (png, width, height)`` for uploads (a :class:`~scopenet.label.worker.RenderPool`)
    render: Callable
    #: proxies (addresses or networks) whose ``X-Forwarded-For`` names the client; none by default
    trusted_proxies: tuple = field(default_factory=tuple)


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


def ctx(request: Request) -> LabelContext:
    return request.app.state.label


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def parse_proxies(proxies) -> tuple:
    """Addresses/networks from strings (``"127.0.0.1"``, ``"10.0.0.0/8"``)."""
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in (proxies or ()) if p and p.strip())


def _ip(text: str):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


#: the one address of every request that carries ``X-Forwarded-For`` while no proxy is trusted
FORWARDED = "forwarded"


def client_address(request: Request) -> str | None:
    """The client's address for the log-in throttle.

    * With trusted proxies configured: the peer, or, when the peer is one of them, the right-most
      address of ``X-Forwarded-For`` that is not itself a trusted proxy.
    * Without (the default): the peer, except that every request carrying ``X-Forwarded-For``
      counts as one address, :data:`FORWARDED`. A server that rewrote the peer from the header
      itself (uvicorn's ``--proxy-headers``, on by default for 127.0.0.1) cannot hand a client a
      fresh address per request that way; behind a proxy that is not configured every request
      comes from the proxy anyway.
    """
    peer = request.client.host if request.client else None
    proxies = ctx(request).trusted_proxies
    if not proxies:
        return FORWARDED if "x-forwarded-for" in request.headers else peer
    if peer is None:
        return peer

    def trusted(addr: str | None) -> bool:
        ip = _ip(addr or "")
        return ip is not None and any(ip in net for net in proxies)

    if not trusted(peer):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop if _ip(hop) is not None else peer
    return peer


def csrf_binding(request: Request) -> str | None:
    """What the request's anti-CSRF token is bound to: the session token, else the pre-session cookie."""
    token = ctx(request).signer.loads(request.cookies.get(COOKIE))
    if token:
        return "session:" + token
    pre = request.cookies.get(PRE_COOKIE)
    return "pre:" + pre if pre and len(pre) <= 100 else None


def form_csrf(request: Request, csrf_token: str = Form("")) -> None:
    """Dependency of every state-changing form POST: 403 without the right token."""
    if not ctx(request).csrf.check(csrf_binding(request), csrf_token):
        raise HTTPException(403, CSRF_REFUSED)


def api_csrf(request: Request, x_csrf_token: str | None = Header(None)) -> None:
    """Dependency of every state-changing API POST: the token in the ``X-CSRF-Token`` header."""
    if not ctx(request).csrf.check(csrf_binding(request), x_csrf_token):
        raise HTTPException(403, CSRF_REFUSED)


def csrf_token_for(request: Request) -> tuple[str, str | None]:
    """(the anti-CSRF token of the request's (pre-)session, the new pre-session value to set or None)."""
    binding, pre = csrf_binding(request), None
    if binding is None:  # first visit: start a pre-session so that the log-in form has a token
        pre = new_token()
        binding = "pre:" + pre
    return ctx(request).csrf.token(binding), pre


def set_pre_cookie(request: Request, resp, pre: str | None) -> None:
    if pre is not None:
        resp.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="lax", secure=ctx(request).secure_cookies,
                        path="/")


def page(request: Request, name: str, user: Principal | None = None, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """Render a Jinja2 page with the user and the anti-CSRF token of its forms."""
    token, pre = csrf_token_for(request)
    resp = ctx(request).templates.TemplateResponse(request, name, {"user": user, CSRF_FIELD: token, **context},
                                                   status_code=status_code)
    set_pre_cookie(request, resp, pre)
    return resp


def optional_user(request: Request) -> Principal | None:
    c = ctx(request)
    token = c.signer.loads(request.cookies.get(COOKIE))
    if token is None:
        return None
    with c.Session() as s:
        u = svc.session_user(s, token)
        found = None if u is None else Principal(u.id, u.username, u.role)
        if s.deleted:  # an expired session was found: remove it (later, if the database is busy now)
            try:
                s.commit()
            except Exception as exc:
                if not is_locked_error(exc):
                    raise
                s.rollback()
        return found


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
