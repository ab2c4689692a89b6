"""Functional tests of the labelling web app through Starlette's TestClient."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, update

from .conftest import PASSWORDS, add_images, csrf, login, npy_bytes, page_csrf, scan

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client_for(make_app):
    from fastapi.testclient import TestClient

    def make(app, user: str | None = None):
        c = TestClient(app)
        if user:
            login(c, user)
        return c

    return make


def image_id_on_page(html: str) -> int | None:
    m = re.search(r'name="image_id" value="(\d+)"', html)
    return int(m.group(1)) if m else None


def test_login_required_everywhere(make_app, client_for):
    app = make_app(n_images=1)
    c = client_for(app)
    for path in ["/", "/projects/1/classify", "/projects/1/tutorial", "/admin", "/admin/projects/1/export",
                 "/images/1.png"]:
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    assert c.get("/api/projects").status_code == 401
    assert c.post("/api/projects/1/classifications", json={"image_id": 1, "categories": []}).status_code == 401
    # a forged cookie is no session either
    c.cookies.set("scopenet_label_session", "not-signed")
    assert c.get("/", follow_redirects=False).status_code == 303


def test_passwords_are_bcrypt_hashes(make_app, client_for):
    from scopenet.label.db import User
    from scopenet.label.security import verify_password

    app = make_app(n_images=0)
    with app.state.Session() as s:
        u = s.scalar(select(User).where(User.username == "alice"))
    assert u.password_hash.startswith("$2b$") and PASSWORDS["alice"] not in u.password_hash
    assert verify_password(PASSWORDS["alice"], u.password_hash)
    assert not verify_password("alice-pass-2", u.password_hash)
    c = client_for(app)
    r = c.post("/login", data={"username": "alice", "password": "wrong-password", "csrf_token": page_csrf(c)},
               follow_redirects=False)
    assert r.status_code == 401 and "wrong password" in r.text
    assert "scopenet_label_session" not in r.cookies


def test_admin_only_export_upload_delete(make_app, client_for):
    app = make_app(n_images=2)
    alice = client_for(app, "alice")
    assert alice.get("/admin").status_code == 403
    assert alice.get("/admin/projects/1/export?kind=events").status_code == 403
    assert alice.get("/admin/projects/1/export?kind=scores&fmt=json").status_code == 403
    assert alice.get("/api/projects/1/export").status_code == 403
    tok = {"csrf_token": csrf(alice)}  # a valid token: refused for not being an admin
    assert alice.post("/admin/projects/1/delete", data=tok).status_code == 403
    assert alice.post("/admin/images/1/delete", data=tok).status_code == 403
    assert alice.post("/admin/images/1/example", data={**tok, "example_for": "Dimers"}).status_code == 403
    r = alice.post("/admin/projects/1/upload", data=tok, files=[("files", ("a.npy", npy_bytes(scan(1))))])
    assert r.status_code == 403 and "only administrators" in r.text
    assert alice.post("/admin/invitations", data={"role": "admin", **tok}).status_code == 403
    with app.state.Session() as s:
        from scopenet.label.db import Image, Project

        assert s.scalar(select(func.count(Image.id))) == 2 and s.get(Project, 1) is not None
    admin = client_for(app, "admin")
    r = admin.get("/admin/projects/1/export?kind=events&fmt=csv")
    assert r.status_code == 200 and r.text.startswith("event_id,image_id,image,sha256,user,created_at")
    png = app.state.upload_dir / "png"
    assert len(list(png.iterdir())) == 2
    tok = {"csrf_token": csrf(admin)}
    assert admin.post("/admin/images/1/delete", data=tok, follow_redirects=False).status_code == 303
    assert len(list(png.iterdir())) == 1
    assert admin.post("/admin/projects/1/delete", data=tok, follow_redirects=False).status_code == 303
    assert list(png.iterdir()) == [] and list((app.state.upload_dir / "originals").iterdir()) == []
    assert admin.get("/admin/projects/1").status_code == 404


def test_annotator_sees_every_image_once_in_random_order(make_app, client_for):
    app = make_app(n_images=8)
    alice = client_for(app, "alice")
    seen = []
    for k in range(8):
        r = alice.get("/projects/1/classify")
        assert f"Image {k + 1} of 8" in r.text
        iid = image_id_on_page(r.text)
        assert iid is not None
        seen.append(iid)
        form = {"image_id": iid, "categories": ["Dimers", "Rows"]} if k % 3 else {"image_id": iid, "action": "skip"}
        form["csrf_token"] = csrf(alice)
        assert alice.post("/projects/1/classify", data=form, follow_redirects=False).status_code == 303
        # a double submit of the same image changes nothing
        alice.post("/projects/1/classify", data={"image_id": iid, "categories": ["Tip Change"],
                                                 "csrf_token": csrf(alice)})
    assert sorted(seen) == list(range(1, 9))
    r = alice.get("/projects/1/classify")
    assert image_id_on_page(r.text) is None and "All done" in r.text and "8 of 8" in r.text
    assert alice.get("/api/projects/1/next").json() == {"image_id": None, "image_url": None, "done": 8, "total": 8}
    mine = alice.get("/api/me/classifications").json()
    assert len(mine) == 5 and all(m["answers"]["Dimers"] and not m["answers"]["Tip Change"] for m in mine)
    # bob gets the images independently, and the order differs between annotators (8! orders)
    bob = client_for(app, "bob")
    bob_seen = []
    for _ in range(8):
        nxt = bob.get("/api/projects/1/next").json()
        bob_seen.append(nxt["image_id"])
        assert bob.post("/api/projects/1/classifications",
                        json={"image_id": nxt["image_id"], "categories": {"Bad/Blurry": True}}).status_code == 201
    assert sorted(bob_seen) == sorted(seen)
    assert bob.get("/api/projects/1/next").json()["image_id"] is None
    assert seen != bob_seen  # random order: the same order twice has probability 1/8! = 2.5e-5


def test_annotators_cannot_read_each_others_answers(make_app, client_for):
    app = make_app(n_images=3)
    alice, bob = client_for(app, "alice"), client_for(app, "bob")
    assert bob.post("/api/projects/1/classifications", json={"image_id": 2, "categories": ["Rows"]}).status_code == 201
    assert alice.get("/api/me/classifications").json() == []
    assert alice.get("/api/me/classifications?project_id=1").json() == []
    assert [m["image_id"] for m in bob.get("/api/me/classifications").json()] == [2]
    # pages an annotator sees never carry other users' names or answers
    for path in ["/", "/projects/1/classify", "/projects/1/tutorial"]:
        assert "bob" not in alice.get(path).text
    # duplicate via the API: 409, still one event
    assert bob.post("/api/projects/1/classifications", json={"image_id": 2, "categories": []}).status_code == 409
    assert bob.post("/api/projects/1/classifications", json={"image_id": 99, "categories": []}).status_code == 404
    r = bob.post("/api/projects/1/classifications", json={"image_id": 1, "categories": ["Sparkles"]})
    assert r.status_code == 422 and "Sparkles" in r.json()["detail"]


def test_session_expiry(make_app, client_for):
    from scopenet.label.db import LoginSession

    app = make_app(n_images=0)
    alice = client_for(app, "alice")
    assert alice.get("/", follow_redirects=False).status_code == 200
    with app.state.Session() as s:
        from scopenet.label.db import utcnow

        s.execute(update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    r = alice.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with app.state.Session() as s:
        assert s.scalar(select(func.count(LoginSession.id))) == 0  # the expired row is gone
    # a short lifetime from create_app expires the same way; logout ends a session at once
    login(alice, "alice")
    assert alice.post("/logout", data={"csrf_token": csrf(alice)}, follow_redirects=False).status_code == 303
    assert alice.get("/", follow_redirects=False).status_code == 303


def test_short_session_ttl(make_app, client_for):
    app = make_app(n_images=0, session_ttl=timedelta(seconds=-1))
    c = client_for(app, "alice")
    assert c.get("/", follow_redirects=False).status_code == 303


def corrupt_files():
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray((scan(3) * 40 + 128).clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return [
        ("files", ("good_scan.npy", npy_bytes(scan(1)))),
        ("files", ("../../x.png", buf.getvalue())),
        ("files", ("corrupt.sxm", b":NANONIS_VERSION:\n2\n:SCANIT_TYPE:\ngarbage" + bytes(300))),
        ("files", ("truncated.npy", npy_bytes(scan(2))[:90])),
    ]


def test_mixed_upload_refuses_corrupt_files_and_neutralises_names(make_app, client_for, tmp_path):
    from scopenet.label.db import Image

    app = make_app(n_images=0)
    admin = client_for(app, "admin")
    r = admin.post("/admin/projects/1/upload", data={"csrf_token": csrf(admin)}, files=corrupt_files())
    assert r.status_code == 200
    assert "Stored 2 image(s)" in r.text
    refused = re.findall(r'<li class="refused">([^<]*)</li>', r.text)
    assert len(refused) == 2
    assert refused[0].startswith("corrupt.sxm: ") and refused[1].startswith("truncated.npy: ")
    with app.state.Session() as s:
        imgs = s.scalars(select(Image).order_by(Image.id)).all()
    assert [i.original_name for i in imgs] == ["good_scan.npy", "x.png"]
    for i in imgs:
        assert re.fullmatch(r"[0-9a-f]{32}\.png", i.png_name)
        assert re.fullmatch(r"[0-9a-f]{32}\.(npy|png)", i.stored_name)
        assert len(i.sha256) == 64
    up = app.state.upload_dir
    # every stored file (the servers' lock file .serving aside)
    stored = sorted(p.relative_to(up).as_posix() for p in up.rglob("*") if p.is_file() and p.name != ".serving")
    assert len(stored) == 4 and all(re.fullmatch(r"(originals|png)/[0-9a-f]{32}\.\w+", p) for p in stored)
    assert not (tmp_path / "x.png").exists() and not (up.parent / "x.png").exists()
    assert not list(up.glob("tmp-*"))  # the batch folder is cleaned up
    # the same file again is refused as a duplicate
    r = admin.post("/admin/projects/1/upload", data={"csrf_token": csrf(admin)},
                   files=[("files", ("again.npy", npy_bytes(scan(1))))])
    assert r.status_code == 400 and "again.npy: the same file is in this project already" in r.text
    # annotators get the rendered PNG
    alice = client_for(app, "alice")
    r = alice.get(f"/images/{imgs[0].id}.png")
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"


def test_upload_size_limits(make_app, client_for):
    app = make_app(n_images=0, max_upload_bytes=3000, max_request_bytes=20000)
    admin = client_for(app, "admin")
    small, big = npy_bytes(scan(1, 16)), npy_bytes(scan(2, 32))
    assert len(small) < 3000 < len(big)
    tok = {"csrf_token": csrf(admin)}
    r = admin.post("/admin/projects/1/upload", data=tok,
                   files=[("files", ("small.npy", small)), ("files", ("big.npy", big))])
    assert "Stored 1 image(s)" in r.text and "big.npy: larger than the upload limit of 3,000 bytes" in r.text
    r = admin.post("/admin/projects/1/upload", data=tok, files=[("files", (f"f{i}.npy", big)) for i in range(6)])
    assert r.status_code == 413


@pytest.mark.shared
def test_upload_real_spm_files(make_app, client_for):
    from tests.conftest import shared_path

    fx = shared_path("fixtures")
    app = make_app(n_images=0)
    admin = client_for(app, "admin")
    names = ["sxm/Si_7x7_012.sxm", "matrix/2014Mar01-093225--7_100.Z_mtrx", "matrix/2014Mar01-093225_0001.mtrx",
             "matrix/no_index/2015Mar25-095231--29_3.Z_mtrx"]
    files = [("files", (n.split("/")[-1], (fx / n).read_bytes())) for n in names]
    r = admin.post("/admin/projects/1/upload", data={"csrf_token": csrf(admin)}, files=files)
    assert "Stored 2 image(s)" in r.text, r.text
    refused = re.findall(r'<li class="refused">([^<]*)</li>', r.text)
    assert len(refused) == 1 and refused[0].startswith("2015Mar25-095231--29_3.Z_mtrx: ")


def test_invitation_sign_up(make_app, client_for):
    app = make_app(n_images=0)
    admin = client_for(app, "admin")
    r = admin.post("/admin/invitations", data={"role": "annotator", "csrf_token": csrf(admin)})
    url = re.search(r'<code id="invite-url">([^<]+)</code>', r.text).group(1)
    token = url.split("token=")[1]
    new = client_for(app)
    assert new.get(f"/signup?token={token}").status_code == 200
    assert new.get("/signup?token=forged").status_code == 404
    form = {"token": token, "username": "carol", "password": "carol-pass", "password2": "carol-pass"}
    assert new.post("/signup", data=form).status_code == 403  # no anti-CSRF token: refused, nothing made
    r = new.post("/signup", data={**form, "csrf_token": page_csrf(new, f"/signup?token={token}")},
                 follow_redirects=False)
    assert r.status_code == 303
    assert new.get("/", follow_redirects=False).status_code == 200
    assert new.get("/admin").status_code == 403  # invited as annotator
    other = client_for(app)
    again = other.post("/signup", data={"token": token, "username": "dave", "password": "dave-pass1",
                                        "password2": "dave-pass1", "csrf_token": page_csrf(other)})
    assert again.status_code == 400 and "used or expired" in again.text


def test_tutorial_examples_and_single_label_projects(make_app, client_for):
    from scopenet.label import service as svc
    from scopenet.label.db import write_session

    app = make_app(n_images=2)
    ex = add_images(app, "HSi", 2, example_for="Dimers", seed=100)
    alice = client_for(app, "alice")
    r = alice.get("/projects/1/tutorial")
    assert "Look for dimer rows." in r.text and "Ignore step edges." in r.text
    assert all(f"/images/{i}.png" in r.text for i in ex)
    assert alice.get("/api/projects/1/next").json()["total"] == 2  # examples are not in the queue
    with write_session(app.state.Session) as s:
        svc.create_project(s, "good-bad", ["Good tip", "Bad tip"], multi_label=False)
    add_images(app, "good-bad", 1, seed=200)
    r = alice.get("/projects/2/classify")
    assert r.text.count('type="radio"') == 2 and 'type="checkbox"' not in r.text
    iid = image_id_on_page(r.text)
    both = alice.post("/api/projects/2/classifications", json={"image_id": iid, "categories": ["Good tip", "Bad tip"]})
    assert both.status_code == 422
    assert alice.post("/api/projects/2/classifications",
                      json={"image_id": iid, "categories": ["good_tip"]}).status_code == 201
    # an image of project 2 cannot be classified through project 1
    assert alice.post("/api/projects/1/classifications", json={"image_id": iid, "categories": []}).status_code == 404


def test_export_scores_match_events(make_app, client_for):
    import pandas as pd

    app = make_app(n_images=2)
    for user, cats in [("alice", ["Dimers"]), ("bob", ["Dimers", "Bad/Blurry"]), ("admin", [])]:
        c = client_for(app, user)
        for iid in (1, 2):
            assert c.post("/api/projects/1/classifications", json={"image_id": iid, "categories": cats}).status_code == 201
    admin = client_for(app, "admin")
    ev = pd.read_csv(io.StringIO(admin.get("/admin/projects/1/export?kind=events").text))
    assert len(ev) == 6 and set(ev["user"]) == {"alice", "bob", "admin"}
    sc = pd.read_csv(io.StringIO(admin.get("/admin/projects/1/export?kind=scores").text))
    assert sc["n_classifications"].tolist() == [3, 3]
    np.testing.assert_allclose(sc["mean_dimers"], 2 / 3)
    np.testing.assert_allclose(sc["mean_bad_blurry"], 1 / 3)
    np.testing.assert_allclose(sc["agree_dimers"], 1 / 3)
    js = admin.get("/admin/projects/1/export?kind=scores&fmt=json&min_agreement=0.9").json()
    assert js == []  # mean agreement (1/3 + 1/3 + 4) / 6 = 0.78 < 0.9
    assert len(admin.get("/api/projects/1/export?kind=scores&min_agreement=0.4").json()) == 2
