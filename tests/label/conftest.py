"""Fixtures of the labelling-service tests: an app on a temporary SQLite file with three users."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

PASSWORDS = {"admin": "admin-pass-1", "alice": "alice-pass-1", "bob": "bob-pass-12"}


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def scan(seed: int, n: int = 32) -> np.ndarray:
    """A small synthetic STM-like image: a lattice plus per-line offsets."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n]
    return (np.cos(x * 0.9) * np.cos(y * 0.9) + 0.3 * r.standard_normal((n, n))
            + r.standard_normal((n, 1)) * 2.0).astype(np.float32)


def add_images(app, project_name: str, n: int, example_for: str | None = None, seed: int = 0) -> list[int]:
    """Upload ``n`` generated .npy scans into a project through the service layer."""
    from scopenet.label import service as svc
    from scopenet.label.db import write_session

    with write_session(app.state.Session) as s:
        p = svc.project_by_name(s, project_name)
        files = [(f"scan_{seed + i:04d}.npy", io.BytesIO(npy_bytes(scan(seed + i)))) for i in range(n)]
        res = svc.ingest_uploads(s, p, files, app.state.upload_dir, app.state.max_upload_bytes,
                                 example_for=example_for)
        assert not res.refused, res.refused
        return [img.id for img in res.stored]


@pytest.fixture
def make_app(tmp_path: Path):
    """Factory: an app on a file SQLite DB with users admin/alice/bob and project 'HSi'."""
    from scopenet.label import create_app
    from scopenet.label import service as svc
    from scopenet.label.db import write_session

    def make(n_images: int = 5, **kw):
        kw.setdefault("secret_key", "test-secret")
        kw.setdefault("upload_dir", tmp_path / "uploads")
        kw.setdefault("bcrypt_rounds", 4)
        app = create_app(f"sqlite:///{tmp_path / 'labels.db'}", **kw)
        with write_session(app.state.Session) as s:
            for name, pw in PASSWORDS.items():
                svc.create_user(s, name, pw, role="admin" if name == "admin" else "annotator", rounds=4)
            svc.create_project(s, "HSi", tutorial="Look for dimer rows.\n\nIgnore step edges.")
        if n_images:
            add_images(app, "HSi", n_images)
        return app

    return make


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def page_csrf(client, path: str = "/login") -> str:
    """The anti-CSRF token in the forms of a page (as a browser would see it)."""
    r = client.get(path)
    m = CSRF_RE.search(r.text)
    assert m, f"no csrf_token on {path} ({r.status_code})"
    return m.group(1)


def login(client, username: str, password: str | None = None) -> str:
    """Log in through the form; returns the session's CSRF token, also set as the client's
    ``X-CSRF-Token`` header so that its API calls carry it."""
    token = page_csrf(client, "/login")
    r = client.post("/login", data={"username": username, "password": password or PASSWORDS[username],
                                    "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    token = page_csrf(client, "/")
    client.headers["X-CSRF-Token"] = token
    return token


def csrf(client) -> str:
    """The CSRF token of a logged-in client (see :func:`login`)."""
    return client.headers["X-CSRF-Token"]
