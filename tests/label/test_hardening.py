"""Hardening of the labelling service (issue #19) and the router split: uploads rendered in worker
processes under time, memory and pixel limits outside the transaction; log-in on a busy database;
the per-(account, address) throttle in the database; orphans of crashed uploads; CSV formula
injection and NUL bytes in upload names."""
from __future__ import annotations

import io
import os
import re
import sqlite3
import statistics
import struct
import threading
import time
import uuid
import zlib

import pytest

from .conftest import PASSWORDS, add_images, csrf, login, npy_bytes, page_csrf, scan

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client_for():
    from fastapi.testclient import TestClient

    def make(app, user: str | None = None, address: str = "testclient"):
        c = TestClient(app, client=(address, 50000))
        if user:
            login(c, user)
        return c

    return make


def refused(html: str) -> list[str]:
    return re.findall(r'<li class="refused">([^<]*)</li>', html)


def png_declaring(width: int, height: int) -> bytes:
    """A valid greyscale PNG of zeros (small on disk, ``width * height`` bytes once decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(width + 1)
    idat = b"".join(z.compress(row * 100) for _ in range(height // 100)) + z.compress(row * (height % 100))
    idat += z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------- router split


def test_pages_and_api_share_one_log_in_and_one_log_out_path(make_app, client_for, monkeypatch):
    from scopenet.label.routes import auth

    calls = []
    real_in, real_out = auth.log_in, auth.log_out
    monkeypatch.setattr(auth, "log_in", lambda *a: calls.append("in") or real_in(*a))
    monkeypatch.setattr(auth, "log_out", lambda *a: calls.append("out") or real_out(*a))
    app = make_app(n_images=0)
    c = client_for(app)
    token = login(c, "alice")  # the form
    assert c.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    pre = c.get("/api/csrf").json()["csrf_token"]
    r = c.post("/api/login", json={"username": "bob", "password": PASSWORDS["bob"]}, headers={"X-CSRF-Token": pre})
    assert r.status_code == 200
    assert c.post("/api/logout", headers={"X-CSRF-Token": r.json()["csrf_token"]}).status_code == 200
    assert calls == ["in", "out", "in", "out"]
    # the four routers hold every route of the app
    from scopenet.label import routes

    by_router = {m: {r.path for r in getattr(routes, f"{m}_router").routes} for m in ("auth", "pages", "admin", "api")}
    assert {"/login", "/logout", "/signup", "/api/login", "/api/logout", "/api/csrf"} == by_router["auth"]
    assert {"/", "/projects/{pid}/classify", "/images/{image_id}.png"} <= by_router["pages"]
    assert {"/admin", "/admin/projects/{pid}/upload", "/admin/projects/{pid}/export"} <= by_router["admin"]
    assert {"/api/projects", "/api/projects/{pid}/classifications", "/api/me/classifications"} <= by_router["api"]
    for m in by_router:
        assert {r.endpoint.__module__ for r in getattr(routes, f"{m}_router").routes} == {f"scopenet.label.routes.{m}"}


# ------------------------------------------------------------------ a. uploads in worker processes


def test_render_pool_runs_in_another_process_under_time_and_memory_limits(tmp_path):
    from scopenet.label.worker import RenderPool, UploadRefused

    from . import _workers

    f = tmp_path / "x.npy"
    f.write_bytes(npy_bytes(scan(1)))
    pool = RenderPool(workers=1, timeout=3, memory_limit=256 << 20, func=_workers.pid_render)
    try:
        with pytest.raises(UploadRefused, match=r"read by process (\d+)") as info:
            pool.render(f)
        assert int(re.search(r"\d+", str(info.value)).group()) != os.getpid()
    finally:
        pool.close()
    pool = RenderPool(workers=1, timeout=3, memory_limit=256 << 20, func=_workers.hog_render)
    try:
        with pytest.raises(UploadRefused, match="more memory than the limit of 256 MiB"):
            pool.render(f)
        pool.func = None  # the same (capped) worker renders a normal file afterwards
        png, w, h = pool.render(f)
        assert png[:4] == b"\x89PNG" and (w, h) == (32, 32)
    finally:
        pool.close()
    pool = RenderPool(workers=1, timeout=1.5, func=_workers.slow_render)
    try:
        hang = tmp_path / "hang.npy"
        hang.write_bytes(npy_bytes(scan(2)))
        pool.render(f)  # start the worker first: start-up is not what is timed here
        t0 = time.monotonic()
        with pytest.raises(UploadRefused, match="longer than the time limit of 1.5 s"):
            pool.render(hang)
        assert time.monotonic() - t0 < 10
        assert pool.render(f)[1:] == (32, 32)  # a fresh worker replaced the killed one
        pool.func = _workers.crash_render
        with pytest.raises(UploadRefused, match="the reader crashed"):
            pool.render(f)
    finally:
        pool.close()


def test_a_real_decoder_over_the_memory_limit_is_refused(tmp_path):
    from scopenet.label.worker import RenderPool, UploadRefused

    f = tmp_path / "wide.png"
    f.write_bytes(png_declaring(6000, 5000))  # 30 Mpx: under the pixel limit, ~1 GB as float64 copies
    pool = RenderPool(workers=1, timeout=60, memory_limit=100 << 20)
    try:
        # the PNG reader words it in its own way
        with pytest.raises(UploadRefused, match="memory"):
            pool.render(f)
    finally:
        pool.close()


@pytest.mark.timeout(180)
def test_hanging_upload_is_refused_by_name_and_log_in_works_meanwhile(tmp_path):
    import httpx

    from ._server import running_server, seed_database

    url = f"sqlite:///{tmp_path / 'l.db'}"
    seed_database(url, PASSWORDS)
    kwargs = "renderer=RenderPool(workers=2, timeout=6, func=_workers.slow_render)"
    setup = "from scopenet.label.worker import RenderPool; from tests.label import _workers"
    with running_server(url, tmp_path / "up", app_kwargs=kwargs, setup=setup) as base:
        admin = httpx.Client(base_url=base, timeout=60)
        tok = re.search(r'name="csrf_token" value="([^"]+)"', admin.get("/login").text).group(1)
        admin.post("/login", data={"username": "admin", "password": PASSWORDS["admin"], "csrf_token": tok})
        tok = re.search(r'name="csrf_token" value="([^"]+)"', admin.get("/admin/projects/1").text).group(1)
        out = {}

        def upload():
            out["r"] = admin.post("/admin/projects/1/upload", data={"csrf_token": tok},
                                  files=[("files", ("hang.npy", npy_bytes(scan(1)))),
                                         ("files", ("fine.npy", npy_bytes(scan(2))))])

        t = threading.Thread(target=upload)
        t0 = time.monotonic()
        t.start()
        time.sleep(2.5)  # the upload is hanging in its worker now
        assert t.is_alive()
        with httpx.Client(base_url=base, timeout=60) as alice:
            pre = alice.get("/api/csrf").json()["csrf_token"]
            t1 = time.monotonic()
            r = alice.post("/api/login", json={"username": "alice", "password": PASSWORDS["alice"]},
                           headers={"X-CSRF-Token": pre})
            took = time.monotonic() - t1
            assert r.status_code == 200 and took < 3.0, (r.status_code, took)
            assert alice.get("/api/projects").status_code == 200
        assert t.is_alive()  # log-in did not wait for the upload
        t.join(60)
        r = out["r"]
        assert r.status_code == 200 and "Stored 1 image(s)" in r.text
        assert refused(r.text) == ["hang.npy: reading it took longer than the time limit of 6 s"]
        assert time.monotonic() - t0 < 30
        admin.close()


def test_no_transaction_is_open_while_files_render(make_app, client_for, monkeypatch):
    """While a file renders, another request can write to the (SQLite) database at once."""
    from scopenet.label import service as svc
    from scopenet.label.db import write_session

    app = make_app(n_images=0, db_busy_timeout=0.2)
    admin = client_for(app, "admin")
    wrote = []

    def render(path):
        t0 = time.monotonic()
        with write_session(app.state.Session) as s:  # a concurrent writer (same process, other connection)
            svc.create_invitation(s)
        wrote.append(time.monotonic() - t0)
        from scopenet.label.render import render_file

        return render_file(path)

    app.state.label.render = render
    r = admin.post("/admin/projects/1/upload", data={"csrf_token": csrf(admin)},
                   files=[("files", ("a.npy", npy_bytes(scan(1)))), ("files", ("b.npy", npy_bytes(scan(2))))])
    assert "Stored 2 image(s)" in r.text and len(wrote) == 2 and max(wrote) < 0.2


# --------------------------------------------------------------------------- c. pixel limit


def test_decompression_bomb_is_refused_from_its_header(make_app, client_for, tmp_path):
    from scopenet.label.worker import check_pixels, header_shapes

    bomb = png_declaring(12000, 12000)
    assert len(bomb) < 1_000_000  # 144 Mpx in well under a megabyte
    p = tmp_path / "bomb.png"
    p.write_bytes(bomb)
    t0 = time.monotonic()
    assert header_shapes(p) == [(12000, 12000)]
    with pytest.raises(Exception, match=r"12000 x 12000 pixels \(144 Mpx\), over the pixel limit of 64 Mpx"):
        check_pixels(p)
    assert time.monotonic() - t0 < 0.5
    app = make_app(n_images=0)
    admin = client_for(app, "admin")
    r = admin.post("/admin/projects/1/upload", data={"csrf_token": csrf(admin)},
                   files=[("files", ("bomb.png", bomb)), ("files", ("ok.npy", npy_bytes(scan(1))))])
    assert "Stored 1 image(s)" in r.text
    assert refused(r.text) == ["bomb.png: the image is 12000 x 12000 pixels (144 Mpx), over the pixel limit "
                               "of 64 Mpx"]
    # the limit is a setting; TIFF pages and .npy headers are checked too
    from scopenet.label.worker import RenderPool

    assert app.state.renderer.max_pixels == 64_000_000
    app.state.label.render = RenderPool(workers=1, max_pixels=30 * 30)
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, scan(3, 40), compression="zlib")
    r = admin.post("/admin/projects/1/upload", data={"csrf_token": csrf(admin)},
                   files=[("files", ("t.tif", buf.getvalue())), ("files", ("n.npy", npy_bytes(scan(4, 40)))),
                          ("files", ("s.npy", npy_bytes(scan(5, 16))))])
    assert "Stored 1 image(s)" in r.text
    assert sorted(refused(r.text)) == [f"{n}: the image is 40 x 40 pixels (0.0016 Mpx), over the pixel limit of "
                                       f"0.0009 Mpx" for n in ("n.npy", "t.tif")]


# ------------------------------------------------------------------------- b. busy database


def test_log_in_and_out_wait_for_a_busy_database_instead_of_failing(make_app, client_for, tmp_path):
    app = make_app(n_images=0, db_busy_timeout=0.05)
    c = client_for(app)

    def hold_lock(seconds: float, ready: threading.Event):
        con = sqlite3.connect(tmp_path / "labels.db", timeout=10, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        con.execute("COMMIT")
        con.close()

    def while_locked(fn, seconds=0.8):
        ready = threading.Event()
        t = threading.Thread(target=hold_lock, args=(seconds, ready))
        t.start()
        ready.wait(10)
        t0 = time.monotonic()
        try:
            return fn(), time.monotonic() - t0
        finally:
            t.join()

    token = page_csrf(c)
    r, took = while_locked(lambda: c.post("/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                                           "csrf_token": token}, follow_redirects=False))
    assert r.status_code == 303 and took > 0.5  # it waited for the lock instead of answering 500
    token = page_csrf(c, "/")
    r, _ = while_locked(lambda: c.post("/logout", data={"csrf_token": token}, follow_redirects=False))
    assert r.status_code == 303 and c.get("/", follow_redirects=False).status_code == 303
    pre = c.get("/api/csrf").json()["csrf_token"]
    r, _ = while_locked(lambda: c.post("/api/login", json={"username": "bob", "password": "wrong-password"},
                                       headers={"X-CSRF-Token": pre}))
    assert r.status_code == 401  # the failure was counted (a write) after the wait
    r, _ = while_locked(lambda: c.post("/api/login", json={"username": "bob", "password": PASSWORDS["bob"]},
                                       headers={"X-CSRF-Token": pre}))
    assert r.status_code == 200
    r, _ = while_locked(lambda: c.post("/api/logout", headers={"X-CSRF-Token": r.json()["csrf_token"]}))
    assert r.status_code == 200


# --------------------------------------------------------------------------------- d. lock-out


def form_login(c, user, password):
    return c.post("/login", data={"username": user, "password": password, "csrf_token": page_csrf(c)},
                  follow_redirects=False)


def test_wrong_passwords_lock_the_account_only_from_that_address(make_app, client_for, tmp_path):
    from sqlalchemy import func, select

    from scopenet.label import create_app
    from scopenet.label.db import LoginFailures

    app = make_app(n_images=0)
    attacker, admin = client_for(app, address="10.0.0.66"), client_for(app, address="10.0.0.1")
    for _ in range(5):
        assert form_login(attacker, "admin", "wrong-password").status_code == 401
    r = form_login(attacker, "admin", PASSWORDS["admin"])
    assert r.status_code == 429 and 890 <= int(r.headers["Retry-After"]) <= 900
    assert form_login(admin, "admin", PASSWORDS["admin"]).status_code == 303  # not locked from elsewhere
    assert form_login(attacker, "alice", PASSWORDS["alice"]).status_code == 303  # other accounts: fine
    # the counters are rows of the database: a restart keeps them
    with app.state.Session() as s:
        assert s.scalar(select(func.count()).select_from(LoginFailures)) == 2  # the pair and the address
    again = create_app(f"sqlite:///{tmp_path / 'labels.db'}", secret_key="test-secret",
                       upload_dir=tmp_path / "uploads", bcrypt_rounds=4)
    assert form_login(client_for(again, address="10.0.0.66"), "admin", PASSWORDS["admin"]).status_code == 429


def test_backoff_doubles_after_the_lock(make_app, client_for):
    from scopenet.label.security import LoginThrottle

    now = [1000.0]
    app = make_app(n_images=0, login_throttle=LoginThrottle(per_account=2, window=60, clock=lambda: now[0]))
    c = client_for(app, address="10.1.1.1")
    for _ in range(2):
        form_login(c, "bob", "wrong-password")
    assert int(form_login(c, "bob", PASSWORDS["bob"]).headers["Retry-After"]) == 60
    now[0] += 61
    assert form_login(c, "bob", "wrong-password").status_code == 401
    assert int(form_login(c, "bob", PASSWORDS["bob"]).headers["Retry-After"]) == 120
    now[0] += 121
    assert form_login(c, "bob", PASSWORDS["bob"]).status_code == 303


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(make_app, client_for):
    from scopenet.label.security import LoginThrottle

    def attempts(app):
        c = client_for(app, address="127.0.0.1")
        statuses = []
        for i in range(4):  # a new forwarded address each time
            r = c.post("/login", data={"username": "alice", "password": "wrong-password",
                                       "csrf_token": page_csrf(c)},
                       headers={"X-Forwarded-For": f"203.0.113.{i}"}, follow_redirects=False)
            statuses.append(r.status_code)
        return statuses

    throttle = LoginThrottle(per_account=2, per_address=20)
    app = make_app(n_images=0, login_throttle=throttle)
    assert attempts(app) == [401, 401, 429, 429]  # header ignored
    # a client without the header is not locked by those who send it
    assert form_login(client_for(app, address="127.0.0.1"), "alice", PASSWORDS["alice"]).status_code == 303


@pytest.mark.timeout(120)
def test_x_forwarded_for_rewritten_by_uvicorn_does_not_escape_the_throttle(tmp_path):
    """uvicorn run with its defaults trusts X-Forwarded-For from 127.0.0.1 and rewrites the client
    address before the app sees it; the app still counts all such requests as one address."""
    import httpx

    from scopenet.label import service as svc
    from scopenet.label.db import make_engine, session_factory, write_session

    from ._server import running_server

    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = make_engine(url)
    with write_session(session_factory(engine)) as s:
        svc.create_user(s, "alice", PASSWORDS["alice"], rounds=4)
    engine.dispose()
    with running_server(url, tmp_path / "up") as base, httpx.Client(base_url=base, timeout=30) as c:
        pre = c.get("/api/csrf").json()["csrf_token"]
        statuses = [c.post("/api/login", json={"username": "alice", "password": "wrong-password"},
                           headers={"X-CSRF-Token": pre, "X-Forwarded-For": f"203.0.113.{i}"}).status_code
                    for i in range(6)]
        assert statuses == [401] * 5 + [429]
        r = c.post("/api/login", json={"username": "alice", "password": PASSWORDS["alice"]},
                   headers={"X-CSRF-Token": pre})
        assert r.status_code == 200  # from loopback without the header: a different address


def test_x_forwarded_for_from_a_configured_proxy(make_app, client_for):
    from scopenet.label.security import LoginThrottle

    app = make_app(n_images=0, login_throttle=LoginThrottle(per_account=2, per_address=20),
                   trusted_proxies=["127.0.0.0/8"])
    proxy, direct = client_for(app, address="127.0.0.1"), client_for(app, address="198.51.100.7")
    for i in range(4):
        r = proxy.post("/login", data={"username": "alice", "password": "wrong-password",
                                       "csrf_token": page_csrf(proxy)},
                       headers={"X-Forwarded-For": f"198.51.100.9, 203.0.113.{i}"}, follow_redirects=False)
        assert r.status_code == 401  # each forwarded client is counted on its own
    # a client that is not a trusted proxy cannot pick its address with the header
    for _ in range(2):
        direct.post("/login", data={"username": "alice", "password": "wrong-password",
                                    "csrf_token": page_csrf(direct)},
                    headers={"X-Forwarded-For": f"10.9.9.{_}"}, follow_redirects=False)
    assert form_login(direct, "alice", PASSWORDS["alice"]).status_code == 429


def test_unknown_users_fail_as_slowly_as_wrong_passwords(make_app, client_for):
    from scopenet.label import service as svc
    from scopenet.label.db import write_session
    from scopenet.label.security import LoginThrottle

    app = make_app(n_images=0, bcrypt_rounds=9, login_throttle=LoginThrottle(per_account=1000, per_address=1000))
    with write_session(app.state.Session) as s:
        svc.create_user(s, "carol", "carol-pass-1", rounds=9)
    c = client_for(app)

    def median_time(user):
        times = []
        for _ in range(7):
            token = page_csrf(c)
            t0 = time.perf_counter()
            r = c.post("/login", data={"username": user, "password": "wrong-password", "csrf_token": token},
                       follow_redirects=False)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 401
        return statistics.median(times)

    known, unknown = median_time("carol"), median_time("nobody-here")
    assert known > 0.01  # bcrypt with 2^9 rounds
    assert unknown > 0.6 * known, (known, unknown)


# ---------------------------------------------------------------------------------- e. orphans


def test_start_up_removes_what_a_crashed_upload_left(make_app, tmp_path):
    from scopenet.label import create_app
    from scopenet.label.db import Image

    app = make_app(n_images=2)
    up = app.state.upload_dir
    with app.state.Session() as s:
        kept = {n for i in s.query(Image).all() for n in ("originals/" + i.stored_name, "png/" + i.png_name)}
    old = time.time() - 7200
    orphans = [up / f"tmp-{uuid.uuid4().hex}" / "scan.npy", up / "originals" / f"{uuid.uuid4().hex}.sxm",
               up / "png" / f"{uuid.uuid4().hex}.png"]
    for p in orphans:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"left over")
        os.utime(p, (old, old))
        os.utime(p.parent, (old, old))
    fresh = up / "png" / f"{uuid.uuid4().hex}.png"  # maybe another process's upload in progress
    fresh.write_bytes(b"new")
    foreign = up / "originals" / "README.txt"  # not a name the service makes: left alone
    foreign.write_bytes(b"mine")
    os.utime(foreign, (old, old))

    def files():  # the servers' lock file (.serving) is not an upload
        return {p.relative_to(up).as_posix() for p in up.rglob("*") if p.is_file() and p.name != ".serving"}

    create_app(f"sqlite:///{tmp_path / 'labels.db'}", secret_key="x", upload_dir=up, bcrypt_rounds=4)
    assert files() == kept | {fresh.relative_to(up).as_posix(), "originals/README.txt"}
    assert not list(up.glob("tmp-*"))
    create_app(f"sqlite:///{tmp_path / 'labels.db'}", secret_key="x", upload_dir=up, bcrypt_rounds=4,
               orphan_grace=0)
    assert files() == kept | {"originals/README.txt"}


def test_the_only_server_on_a_folder_removes_even_fresh_leftovers_of_a_crash(tmp_path):
    """kill -9 during an upload, then a restart: no other server holds the folder, so every leftover goes
    at once (the probe counted orphans right after the restart)."""
    from scopenet.label import create_app

    up = tmp_path / "up"
    fresh = [up / f"tmp-{uuid.uuid4().hex}" / "scan.npy", up / "originals" / f"{uuid.uuid4().hex}.sxm",
             up / "png" / f"{uuid.uuid4().hex}.png"]
    for p in fresh:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"left over a second ago")
    app = create_app(f"sqlite:///{tmp_path / 'labels.db'}", secret_key="x", upload_dir=up, bcrypt_rounds=4)
    assert not any(p.exists() for p in fresh) and not list(up.glob("tmp-*"))
    # while it runs, a second server on the folder keeps leftovers younger than the grace period
    again = up / "png" / f"{uuid.uuid4().hex}.png"
    again.write_bytes(b"maybe the first server's upload in progress")
    create_app(f"sqlite:///{tmp_path / 'labels.db'}", secret_key="x", upload_dir=up, bcrypt_rounds=4)
    assert again.exists() and app.state.upload_dir_lock is not None


# ----------------------------------------------------------------------------- f. CSV, names


def test_csv_exports_quote_formula_cells(make_app, client_for, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from scopenet.cli.main import app as cli
    from scopenet.label import service as svc
    from scopenet.label.db import write_session

    app = make_app(n_images=0)
    with write_session(app.state.Session) as s:
        for name in ("@evil", "+cmd", "-minus"):
            svc.create_user(s, name, "evil-pass-1", rounds=4)
        p = svc.project_by_name(s, "HSi")
        files = [("=HYPERLINK(\"x\").npy", io.BytesIO(npy_bytes(scan(1)))),
                 ("plain.npy", io.BytesIO(npy_bytes(scan(2))))]
        svc.ingest_uploads(s, p, files, app.state.upload_dir, 10**6)
    for name in ("@evil", "+cmd", "-minus"):
        c = client_for(app)
        login(c, name, "evil-pass-1")
        for iid in (1, 2):
            assert c.post("/api/projects/1/classifications", json={"image_id": iid, "categories": ["Rows"]}
                          ).status_code == 201
    admin = client_for(app, "admin")
    text = admin.get("/admin/projects/1/export?kind=events&fmt=csv").text
    ev = pd.read_csv(io.StringIO(text))
    assert set(ev["user"]) == {"'@evil", "'+cmd", "'-minus"}
    assert "'=HYPERLINK(\"x\").npy" in set(ev["image"])
    cells = [cell for line in text.splitlines()[1:] for cell in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", line)]
    assert not [c for c in cells if c.lstrip('"').startswith(("=", "+", "@"))]
    sc = pd.read_csv(io.StringIO(admin.get("/admin/projects/1/export?kind=scores&fmt=csv").text))
    assert "'=HYPERLINK(\"x\").npy" in set(sc["name"])
    js = admin.get("/admin/projects/1/export?kind=events&fmt=json").json()  # JSON is data, left as it is
    assert {e["user"] for e in js} == {"@evil", "+cmd", "-minus"}
    out = tmp_path / "ev.csv"
    r = CliRunner().invoke(cli, ["label", "export", "--project", "HSi", "--db", f"sqlite:///{tmp_path / 'labels.db'}",
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert set(pd.read_csv(out)["user"]) == {"'@evil", "'+cmd", "'-minus"}


def test_upload_names_with_nul_bytes_are_refused(make_app, client_for):
    from scopenet.label import service as svc
    from scopenet.label.db import Image, write_session

    app = make_app(n_images=0)
    with write_session(app.state.Session) as s:
        p = svc.project_by_name(s, "HSi")
        res = svc.ingest_uploads(s, p, [("evil\x00.png.npy", io.BytesIO(npy_bytes(scan(1)))),
                                        ("tab\there.npy", io.BytesIO(npy_bytes(scan(2)))),
                                        ("fine.npy", io.BytesIO(npy_bytes(scan(3))))],
                                 app.state.upload_dir, 10**6)
    assert [i.original_name for i in res.stored] == ["fine.npy"]
    assert res.messages() == ["evil\\x00.png.npy: the file name contains a NUL byte",
                              "tab\\x09here.npy: the file name contains control characters"]
    admin = client_for(app, "admin")
    r = admin.post("/admin/projects/1/upload", data={"csrf_token": csrf(admin)},
                   files=[("files", ("a\x00b.npy", npy_bytes(scan(4))))])
    with app.state.Session() as s:
        names = [i.original_name for i in s.query(Image).all()]
    assert not any("\x00" in n for n in names)
    assert r.status_code in (200, 400)
    if r.status_code == 400:  # the name reached the app whole: refused by name
        assert refused(r.text) == ["a\\x00b.npy: the file name contains a NUL byte"]


def test_the_service_layer_keeps_its_signature(make_app):
    app = make_app(n_images=0)
    assert len(add_images(app, "HSi", 2)) == 2
