"""Log-in, log-out and sign-up, for the pages (forms) and the JSON API alike.

There is one log-in path, :func:`log_in`, and one log-out path, :func:`log_out`; the routes only
differ in what they answer (a page or a redirect; JSON). Log-in throttle: failed log-ins are
counted per (account, client address) and per client address, with exponential back-off, in the
database (:class:`~scopenet.label.security.LoginThrottle`); a locked pair or address gets 429 with
``Retry-After``, even with the right password. An unknown user name costs the same bcrypt work as a
wrong password. The client address is the peer's; ``X-Forwarded-For`` names the client only when
it comes from a proxy configured as trusted (``create_app(trusted_proxies=...)``; see
:func:`~scopenet.label.deps.client_address`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from ...errors import InputError
from .. import service as svc
from ..db import User, retry_locked, write_session
from ..deps import COOKIE, api_csrf, client_address, csrf_token_for, ctx, form_csrf, page, set_pre_cookie
from ..security import verify_password

router = APIRouter()


class LoginIn(BaseModel):
    username: str
    password: str


@dataclass(frozen=True)
class LoginOutcome:
    """What a log-in attempt gave: the user and the new session token, or the seconds to wait."""

    user_id: int | None = None
    username: str = ""
    role: str = ""
    token: str | None = None
    wait: float = 0.0

    @property
    def ok(self) -> bool:
        return self.token is not None

    def locked_message(self) -> str:
        return (f"Too many failed log-ins from this address; "
                f"try again in {max(1, math.ceil(self.wait / 60))} minute(s).")


def safe_next(nxt: str | None) -> str:
    return nxt if nxt and nxt.startswith("/") and not nxt.startswith("//") else "/"


def open_session(request: Request, user_id: int) -> str:
    """Start a login session for the user (retried while the database is busy); returns its token."""
    c = ctx(request)

    def work() -> str:
        with write_session(c.Session) as s:
            return svc.start_session(s, s.get(User, user_id), c.session_ttl)

    return retry_locked(work)


def put_session_cookie(request: Request, resp: Response, token: str) -> None:
    c = ctx(request)
    resp.set_cookie(COOKIE, c.signer.dumps(token), max_age=max(0, int(c.session_ttl.total_seconds())),
                    httponly=True, samesite="lax", secure=c.secure_cookies, path="/")


def log_in(request: Request, username: str, password: str) -> LoginOutcome:
    """The log-in path of pages and API: throttle, password check, new session."""
    c = ctx(request)
    username, addr = (username or "").strip(), client_address(request)
    wait = retry_locked(lambda: c.throttle.retry_after(username, addr))
    if wait > 0:
        return LoginOutcome(wait=wait)
    with c.Session() as s:
        u = svc.user_by_name(s, username)
        found = None if u is None else (u.id, u.username, u.role, u.password_hash)
    # unknown users and accounts without a password are checked against a dummy hash: same time
    hashed = found[3] if found is not None and found[3] else c.dummy_hash
    ok = verify_password(password, hashed) and found is not None and bool(found[3])
    if not ok:
        retry_locked(lambda: c.throttle.failure(username, addr))
        return LoginOutcome()
    retry_locked(lambda: c.throttle.success(username, addr))
    return LoginOutcome(found[0], found[1], found[2], open_session(request, found[0]))


def log_out(request: Request, resp: Response) -> Response:
    """The log-out path of pages and API: end the session (retried while the database is busy)."""
    c = ctx(request)
    token = c.signer.loads(request.cookies.get(COOKIE))

    def work() -> None:
        with write_session(c.Session) as s:
            svc.end_session(s, token)

    if token:
        retry_locked(work)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# ---------------------------------------------------------------------------------------- pages


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/"):
    return page(request, "login.html", None, next=safe_next(next), error=None)


@router.post("/login", dependencies=[Depends(form_csrf)])
def login(request: Request, username: str = Form(...), password: str = Form(...), next: str = Form("/")):
    out = log_in(request, username, password)
    if out.wait > 0:
        resp = page(request, "login.html", None, status_code=429, next=safe_next(next), error=out.locked_message())
        resp.headers["Retry-After"] = str(math.ceil(out.wait))
        return resp
    if not out.ok:
        return page(request, "login.html", None, status_code=401, next=safe_next(next),
                    error="Unknown user name or wrong password.")
    resp = RedirectResponse(safe_next(next), status_code=303)
    put_session_cookie(request, resp, out.token)
    return resp


@router.post("/logout", dependencies=[Depends(form_csrf)])
def logout(request: Request):
    return log_out(request, RedirectResponse("/login", status_code=303))


@router.get("/signup", response_class=HTMLResponse)
def signup_form(request: Request, token: str = ""):
    with ctx(request).Session() as s:
        inv = svc.valid_invitation(s, token)
    if inv is None:
        return page(request, "error.html", None, status_code=404, status=404,
                    detail="This invitation is unknown, used or expired.")
    return page(request, "signup.html", None, token=token, error=None, role=inv.role)


@router.post("/signup", dependencies=[Depends(form_csrf)])
def signup(request: Request, token: str = Form(...), username: str = Form(...),
           password: str = Form(...), password2: str = Form(...)):
    c = ctx(request)
    error = None
    if password != password2:
        error = "The two passwords differ."
    else:
        try:
            with write_session(c.Session) as s:
                user_id = svc.accept_invitation(s, token, username, password, rounds=c.bcrypt_rounds).id
        except InputError as exc:
            error = str(exc)
    if error:
        return page(request, "signup.html", None, status_code=400, token=token, error=error, role="")
    resp = RedirectResponse("/", status_code=303)
    put_session_cookie(request, resp, open_session(request, user_id))
    return resp


# ------------------------------------------------------------------------------------------ API


@router.get("/api/csrf")
def api_csrf_token(request: Request):
    """The anti-CSRF token of the current session (or of a new pre-session, whose cookie is set)."""
    token, pre = csrf_token_for(request)
    resp = JSONResponse({"csrf_token": token})
    set_pre_cookie(request, resp, pre)
    return resp


@router.post("/api/login", dependencies=[Depends(api_csrf)])
def api_login(request: Request, body: LoginIn):
    out = log_in(request, body.username, body.password)
    if out.wait > 0:
        return JSONResponse({"detail": out.locked_message()}, status_code=429,
                            headers={"Retry-After": str(math.ceil(out.wait))})
    if not out.ok:
        return JSONResponse({"detail": "unknown user name or wrong password"}, status_code=401)
    resp = JSONResponse({"username": out.username, "role": out.role,
                         "csrf_token": ctx(request).csrf.token("session:" + out.token)})
    put_session_cookie(request, resp, out.token)
    return resp


@router.post("/api/logout", dependencies=[Depends(api_csrf)])
def api_logout(request: Request):
    return log_out(request, JSONResponse({"ok": True}))
