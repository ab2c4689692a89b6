"""Security of the labelling app: anti-CSRF tokens, the log-in throttle, body limits without a
declared length; and the admin's tutorial-example marking and paginated image list."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from .conftest import PASSWORDS, csrf, login, npy_bytes, page_csrf, scan

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def client_for():
    from fastapi.testclient import TestClient

    def make(app, user: str | None = None):
        c = TestClient(app)
        if user:
            login(c, user)
        return c

    return make


def counts(app) -> dict:
    from scopenet.label.db import Classification, Image, Invitation, Project, Skip

    with app.state.Session() as s:
        return {t.__name__: s.scalar(select(func.count(t.id))) for t in (Classification, Image, Invitation,
                                                                         Project, Skip)}


def example_ids(html: str) -> dict[str, list[int]]:
    """{category: [image ids]} shown on the tutorial page."""
    out = {}
    for sec in re.findall(r'<section class="card example".*?</section>', html, flags=re.S):
        cat = re.search(r"</kbd> ([^<]+)</h2>", sec).group(1)
        out[cat] = [int(i) for i in re.findall(r'src="/images/(\d+)\.png"', sec)]
    return out


# ----------------------------------------------------------------------------------------- CSRF


def test_cross_site_form_posts_without_the_token_are_refused(make_app, client_for):
    app = make_app(n_images=3)
    admin = client_for(app, "admin")
    alice = client_for(app, "alice")
    before = counts(app)
    # what a cross-site form can send: the victim's cookie rides along, the token cannot
    forged = [
        (admin, "/admin/projects", {"name": "evil"}),
        (admin, "/admin/invitations", {"role": "admin"}),
        (admin, "/admin/projects/1/delete", {}),
        (admin, "/admin/images/1/delete", {}),
        (admin, "/admin/images/1/example", {"example_for": "Dimers"}),
        (alice, "/projects/1/classify", {"image_id": 1, "categories": ["Dimers"]}),
        (alice, "/projects/1/classify", {"image_id": 2, "action": "skip"}),
    ]
    for client, path, form in forged:
        for token in (None, "", "forged-token", csrf(alice) if client is admin else csrf(admin)):
            data = form if token is None else {**form, "csrf_token": token}
            r = client.post(path, data=data, follow_redirects=False)
            assert r.status_code == 403, (path, token, r.status_code)
            assert "anti-forgery token" in r.text
    r = admin.post("/admin/projects/1/upload", data={"csrf_token": "forged"},
                   files=[("files", ("x.npy", npy_bytes(scan(9))))])
    assert r.status_code == 403
    assert counts(app) == before
    with app.state.Session() as s:
        from scopenet.label.db import Image

        assert s.get(Image, 1).example_for is None
    # the logout form is protected too: without the token the session lives on
    assert alice.post("/logout", follow_redirects=False).status_code == 403
    assert alice.get("/", follow_redirects=False).status_code == 200
    # with the page's token the same posts work
    assert alice.post("/projects/1/classify", data={"image_id": 1, "categories": ["Dimers"], "csrf_token": csrf(alice)},
                      follow_redirects=False).status_code == 303
    assert counts(app)["Classification"] == 1


def test_login_form_needs_the_pre_session_token(make_app, client_for):
    app = make_app(n_images=0)
    c = client_for(app)
    creds = {"username": "alice", "password": PASSWORDS["alice"]}
    r = c.post("/login", data=creds, follow_redirects=False)  # login CSRF: refused
    assert r.status_code == 403 and "scopenet_label_session" not in r.cookies
    token = page_csrf(c, "/login")  # sets the pre-session cookie
    assert "scopenet_label_pre" in c.cookies
    other = client_for(app)
    other_token = page_csrf(other, "/login")
    assert other_token != token  # bound to each visitor's own pre-session
    assert c.post("/login", data={**creds, "csrf_token": other_token}).status_code == 403
    r = c.post("/login", data={**creds, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and "scopenet_label_session" in r.cookies
    # after log-in the forms carry the session's token, different from the pre-session's
    session_token = page_csrf(c, "/")
    assert session_token != token
    assert c.post("/logout", data={"csrf_token": token}).status_code == 403
    assert c.post("/logout", data={"csrf_token": session_token}, follow_redirects=False).status_code == 303


def test_tokens_are_per_session(make_app, client_for):
    app = make_app(n_images=2)
    a1 = client_for(app, "alice")
    a2 = client_for(app, "alice")  # the same user, a second session
    assert csrf(a1) != csrf(a2)
    old = csrf(a1)
    r = a1.post("/projects/1/classify", data={"image_id": 1, "categories": [], "csrf_token": csrf(a2)})
    assert r.status_code == 403
    login(a1, "alice")  # a new session: the old token dies with the old one
    assert csrf(a1) != old
    r = a1.post("/projects/1/classify", data={"image_id": 1, "categories": [], "csrf_token": old})
    assert r.status_code == 403 and counts(app)["Classification"] == 0


def test_api_needs_the_token_header(make_app, client_for):
    app = make_app(n_images=2)
    c = client_for(app)
    creds = {"username": "bob", "password": PASSWORDS["bob"]}
    assert c.post("/api/login", json=creds).status_code == 403  # no header
    pre = c.get("/api/csrf").json()["csrf_token"]
    assert c.post("/api/login", json=creds, headers={"X-CSRF-Token": "x"}).status_code == 403
    r = c.post("/api/login", json=creds, headers={"X-CSRF-Token": pre})
    assert r.status_code == 200 and r.json()["username"] == "bob"
    token = r.json()["csrf_token"]
    assert token != pre and c.get("/api/csrf").json()["csrf_token"] == token
    body = {"image_id": 1, "categories": ["Rows"]}
    assert c.post("/api/projects/1/classifications", json=body).status_code == 403
    assert c.post("/api/projects/1/classifications", json=body, headers={"X-CSRF-Token": pre}).status_code == 403
    assert counts(app)["Classification"] == 0
    assert c.post("/api/projects/1/classifications", json=body, headers={"X-CSRF-Token": token}).status_code == 201
    assert c.post("/api/logout").status_code == 403
    assert c.get("/api/projects").status_code == 200
    assert c.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert c.get("/api/projects").status_code == 401
    # anonymous API writes still answer 401 (log in first), not 403
    assert client_for(app).post("/api/projects/1/classifications", json=body).status_code == 401


# ---------------------------------------------------------------------------------- log-in throttle


def test_throttle_per_account_and_address_with_backoff():
    from scopenet.label.security import LoginThrottle

    clock = FakeClock()
    t = LoginThrottle(per_account=3, per_address=50, window=60, max_lock=1000, clock=clock)
    for _ in range(3):
        t.failure("Alice", "10.0.0.1")
        clock.t += 1
    # locked at t=1002 for the window (60 s); names are compared stripped and case-folded
    assert t.retry_after("alice ", "10.0.0.1") == pytest.approx(59)
    assert t.retry_after("alice", "10.0.0.2") == 0  # nobody locks the account out from elsewhere
    assert t.retry_after("bob", "10.0.0.1") == 0
    clock.t = 1062.0
    assert t.retry_after("alice", "10.0.0.1") == 0
    # the failures are remembered after the lock: each further failure doubles it
    t.failure("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == pytest.approx(120)
    clock.t += 120
    t.failure("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == pytest.approx(240)
    for _ in range(5):
        clock.t += t.retry_after("alice", "10.0.0.1") + 1  # 480, 960, then 1000 s
        t.failure("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == pytest.approx(1000)  # max_lock
    t.success("alice", "10.0.0.1")  # a successful log-in clears the pair
    t.failure("alice", "10.0.0.1")
    assert t.retry_after("alice", "10.0.0.1") == 0
    # forgotten a window after the last failure and the last lock
    t.failure("bob", "10.0.0.3")
    t.failure("bob", "10.0.0.3")
    clock.t += 61
    t.failure("bob", "10.0.0.3")
    assert t.retry_after("bob", "10.0.0.3") == 0
    # per address: failures spread over many names lock the address for every name
    t2 = LoginThrottle(per_account=3, per_address=5, window=60, clock=clock)
    for i in range(5):
        t2.failure(f"user{i}", "10.6.6.6")
    assert t2.retry_after("somebody", "10.6.6.6") == pytest.approx(60)
    assert t2.retry_after("somebody", "10.6.6.7") == 0
    with pytest.raises(ValueError):
        LoginThrottle(per_account=0)


def test_throttle_memory_is_bounded():
    from scopenet.label.security import LoginThrottle

    clock = FakeClock()
    t = LoginThrottle(per_account=3, per_address=3, window=60, max_keys=100, clock=clock)
    for i in range(1000):
        t.failure(f"user{i}", f"10.0.{i // 256}.{i % 256}")
        assert len(t) <= 100
    for _ in range(50):
        t.failure("alice", "10.9.9.9")
    assert t.retry_after("alice", "10.9.9.9") > 0
    clock.t += 10**6  # expired keys are dropped when failures are counted
    t.failure("carol", "10.9.9.8")
    assert len(t) == 2 and t.retry_after("alice", "10.9.9.9") == 0


def test_login_lockout_per_account_and_address(make_app, client_for):
    from scopenet.label.security import LoginThrottle

    clock = FakeClock()
    app = make_app(n_images=0, login_throttle=LoginThrottle(per_account=3, per_address=5, window=60, clock=clock))
    c = client_for(app)

    def form_login(user, password):
        return c.post("/login", data={"username": user, "password": password, "csrf_token": page_csrf(c)},
                      follow_redirects=False)

    for _ in range(3):
        assert form_login("alice", "wrong-password").status_code == 401
    r = form_login("alice", PASSWORDS["alice"])  # locked: even the right password is refused
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 60
    assert "Too many failed log-ins" in r.text and "scopenet_label_session" not in r.cookies
    api = c.post("/api/login", json={"username": "alice", "password": PASSWORDS["alice"]},
                 headers={"X-CSRF-Token": c.get("/api/csrf").json()["csrf_token"]})
    assert api.status_code == 429 and "Retry-After" in api.headers
    # bob is not locked yet; two failures for bob make five from this address: all names locked
    assert form_login("bob", PASSWORDS["bob"]).status_code == 303
    c.cookies.clear()
    for _ in range(2):
        assert form_login("bob", "wrong-password").status_code == 401
    assert form_login("bob", PASSWORDS["bob"]).status_code == 429
    assert form_login("admin", PASSWORDS["admin"]).status_code == 429
    clock.t += 61  # the window has passed
    assert form_login("alice", PASSWORDS["alice"]).status_code == 303


# ------------------------------------------------------------------------- 413 without a length


def test_chunked_body_over_the_limit_gets_413(make_app, client_for):
    app = make_app(n_images=0, max_upload_bytes=50_000, max_request_bytes=20_000)
    admin = client_for(app, "admin")
    url = "/admin/projects/1/upload"

    def chunked_upload(arrays):
        files = [("files", (f"c{i}.npy", npy_bytes(a))) for i, a in enumerate(arrays)]
        req = admin.build_request("POST", url, data={"csrf_token": csrf(admin)}, files=files)
        body = req.read()

        def chunks():
            for k in range(0, len(body), 4096):
                yield body[k:k + 4096]

        return admin.post(url, content=chunks(), headers={"Content-Type": req.headers["Content-Type"]}), len(body)

    r, n = chunked_upload([scan(1, 16)])
    assert n < 20_000 and r.status_code == 200 and "Stored 1 image(s)" in r.text
    r, n = chunked_upload([scan(2, 64)] * 2)  # no Content-Length, ~33 kB
    assert n > 20_000
    assert r.status_code == 413 and "larger than 20,000 bytes" in r.json()["detail"]
    assert counts(app)["Image"] == 1
    r = admin.post("/api/projects/1/classifications", content=iter([b'{"image_id": 1, ', b" " * 30_000, b"}"]),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413


# ---------------------------------------------------------------------------- tutorial examples


def test_admin_marks_and_unmarks_tutorial_examples(make_app, client_for):
    app = make_app(n_images=3)
    admin, alice = client_for(app, "admin"), client_for(app, "alice")
    assert all(v == [] for v in example_ids(alice.get("/projects/1/tutorial").text).values())
    assert alice.get("/api/projects/1/next").json()["total"] == 3
    r = admin.post("/admin/images/2/example", data={"example_for": "Rows", "csrf_token": csrf(admin),
                                                   "return_page": 1}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/projects/1?page=1"
    admin.post("/admin/images/3/example", data={"example_for": "Rows", "csrf_token": csrf(admin)})
    shown = example_ids(alice.get("/projects/1/tutorial").text)
    assert shown["Rows"] == [2, 3] and shown["Dimers"] == []
    assert alice.get("/api/projects/1/next").json()["total"] == 1  # examples leave the queue
    page = admin.get("/admin/projects/1").text
    assert re.search(r'id="image-2".*?<option selected>Rows</option>', page, flags=re.S)
    # move one to another category, unmark the other
    admin.post("/admin/images/2/example", data={"example_for": "Dimers", "csrf_token": csrf(admin)})
    admin.post("/admin/images/3/example", data={"example_for": "", "csrf_token": csrf(admin)})
    shown = example_ids(alice.get("/projects/1/tutorial").text)
    assert shown["Rows"] == [] and shown["Dimers"] == [2]
    assert alice.get("/api/projects/1/next").json()["total"] == 2
    r = admin.post("/admin/images/1/example", data={"example_for": "Sparkles", "csrf_token": csrf(admin)})
    assert r.status_code == 400 and "Sparkles" in r.text
    assert admin.post("/admin/images/99/example", data={"example_for": "", "csrf_token": csrf(admin)}).status_code == 404


def test_an_image_without_pixels_cannot_be_an_example(make_app):
    from scopenet.errors import InputError
    from scopenet.label import service as svc
    from scopenet.label.db import Image, write_session

    app = make_app(n_images=0)
    with write_session(app.state.Session) as s:
        p = svc.project_by_name(s, "HSi")
        img = Image(project_id=p.id, original_name="zooniverse-subject.png")
        s.add(img)
        s.flush()
        with pytest.raises(InputError, match="no pixels"):
            svc.set_example(s, img, "Dimers")


# --------------------------------------------------------------------------------- pagination


def test_admin_image_list_is_paginated(make_app, client_for):
    from scopenet.label import service as svc
    from scopenet.label.db import Image, write_session

    app = make_app(n_images=0)
    with write_session(app.state.Session) as s:
        p = svc.project_by_name(s, "HSi")
        for j in range(12):  # rows without pixels are enough for the list
            s.add(Image(project_id=p.id, original_name=f"img{j:02d}.sxm"))
    admin = client_for(app, "admin")

    def listed(html):
        return [int(i) for i in re.findall(r'<tr id="image-(\d+)">', html)]

    r = admin.get("/admin/projects/1?per_page=5")
    assert listed(r.text) == [1, 2, 3, 4, 5]
    assert "Images (12)" in r.text and "Page 1 of 3" in r.text and 'id="page-prev-top"' not in r.text
    nxt = re.search(r'id="page-next-top" href="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    r = admin.get(nxt)
    assert listed(r.text) == [6, 7, 8, 9, 10] and "Page 2 of 3" in r.text and 'id="page-prev-top"' in r.text
    r = admin.get("/admin/projects/1?per_page=5&page=3")
    assert listed(r.text) == [11, 12] and 'id="page-next-top"' not in r.text and "images 11–12" in r.text
    assert listed(admin.get("/admin/projects/1?per_page=5&page=99").text) == [11, 12]  # clamped to the last
    r = admin.get("/admin/projects/1")  # default 50 per page: one page, no pager
    assert listed(r.text) == list(range(1, 13)) and "Page 1 of" not in r.text
    assert admin.get("/admin/projects/1?per_page=0").status_code == 422
    assert admin.get("/admin/projects/1?per_page=100000").status_code == 422
    assert admin.get("/admin/projects/1?page=0").status_code == 422
    # deleting from page 2 comes back to page 2
    r = admin.post("/admin/images/7/delete", data={"csrf_token": csrf(admin), "return_page": 2, "per_page": 5},
                   follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/projects/1?page=2&per_page=5"
    assert listed(admin.get(r.headers["location"]).text) == [6, 8, 9, 10, 11]
