"""The tutorial's built-in definitions and examples, and the field of view on the classify page.

Runs the real server (uvicorn, loopback) and talks to it over HTTP as a browser would.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from .conftest import PASSWORDS, npy_bytes, scan

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SLUGS = ("asymmetries", "individual_atoms", "dimers", "rows", "tip_change", "bad_blurry")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def tif_bytes(tmp_path, px_nm: float = 0.05, n: int = 64) -> bytes:
    """A calibrated STM scan (n x n pixels of px_nm) as TIFF bytes."""
    import scopenet as sn
    from scopenet.image.micrograph import Axis, Micrograph

    img = Micrograph(scan(3, n) * 1e-10, axes=[Axis("y", n, px_nm, unit="nm"), Axis("x", n, px_nm, unit="nm")],
                     signal="height", signal_unit="m", modality="STM")
    p = tmp_path / "cal.tif"
    sn.write(img, p, overwrite=True)
    return p.read_bytes()


def log_in(client, user: str) -> None:
    tok = CSRF.search(client.get("/login").text).group(1)
    r = client.post("/login", data={"username": user, "password": PASSWORDS[user], "csrf_token": tok})
    assert r.status_code in (200, 303), r.text


def test_shipped_examples_are_small_pngs_of_every_default_category():
    from PIL import Image

    from scopenet.label.db import DEFAULT_CATEGORIES, slug
    from scopenet.label.tutorial import STATIC, builtin_entry

    manifest = json.loads((STATIC / "tutorial-examples.json").read_text())["examples"]
    assert sorted(manifest) == sorted(SLUGS) == sorted(slug(c) for c in DEFAULT_CATEGORIES)
    for cat in DEFAULT_CATEGORIES:
        e = builtin_entry(cat)
        f = STATIC / f"tutorial-{slug(cat)}.png"
        assert e["image"] == f"/static/{f.name}" and e["definition"]
        assert "field of view 6 nm x 6 nm" in e["caption"]
        assert f.stat().st_size < 16_000
        with Image.open(f) as im:
            assert im.mode == "L" and im.size == (96, 96)
        # the simulator labelled the chosen example with its category
        assert manifest[slug(cat)]["labels"][slug(cat)] >= 0.9
    assert builtin_entry("bad_blurry") == builtin_entry("Bad/Blurry")
    assert builtin_entry("Good tip") is None


def test_render_writes_the_field_of_view_into_the_png(tmp_path):
    from scopenet.label.render import png_field_of_view, render_file

    (tmp_path / "c.tif").write_bytes(tif_bytes(tmp_path, 0.05, 64))
    png, w, h = render_file(tmp_path / "c.tif")
    (tmp_path / "c.png").write_bytes(png)
    assert (w, h) == (64, 64) and png_field_of_view(tmp_path / "c.png") == "3.2 nm x 3.2 nm"
    np.save(tmp_path / "u.npy", scan(1))
    png, _, _ = render_file(tmp_path / "u.npy")
    (tmp_path / "u.png").write_bytes(png)
    assert png_field_of_view(tmp_path / "u.png") is None
    assert png_field_of_view(tmp_path / "missing.png") is None


def test_tutorial_and_classify_pages_on_the_real_server(tmp_path):
    import httpx

    from scopenet.label.db import DEFAULT_CATEGORIES

    from ._server import running_server, seed_database

    url = f"sqlite:///{tmp_path / 'l.db'}"
    seed_database(url, PASSWORDS, {"Other": ["Good", "Bad"]})
    with running_server(url, tmp_path / "up") as base, \
            httpx.Client(base_url=base, timeout=60, follow_redirects=True) as admin, \
            httpx.Client(base_url=base, timeout=60, follow_redirects=True) as alice:
        log_in(admin, "admin")
        tok = CSRF.search(admin.get("/admin/projects/1").text).group(1)
        r = admin.post("/admin/projects/1/upload", data={"csrf_token": tok},
                       files=[("files", ("cal.tif", tif_bytes(tmp_path))),
                              ("files", ("plain.npy", npy_bytes(scan(2))))])
        assert r.status_code == 200 and "Stored 2 image(s)" in r.text, r.text

        log_in(alice, "alice")
        page = alice.get("/projects/1/tutorial")
        assert page.status_code == 200
        sections = re.findall(r'<section class="card example" id="example-\d+" data-category="([^"]+)">(.*?)</section>',
                              page.text, re.S)
        assert [c for c, _ in sections] == list(DEFAULT_CATEGORIES)
        for (cat, body), key in zip(sections, SLUGS):
            assert f'src="/static/tutorial-{key}.png"' in body, cat
            assert 'class="definition"' in body and "field of view 6 nm x 6 nm" in body
            img = alice.get(f"/static/tutorial-{key}.png")
            assert img.status_code == 200 and img.headers["content-type"] == "image/png"
            assert img.content.startswith(b"\x89PNG") and len(img.content) < 16_000
        assert "Step edges" in page.text or "step edges" in page.text
        # a project with its own categories has no built-in definitions
        other = alice.get("/projects/2/tutorial").text
        assert "/static/tutorial-" not in other and "No example images for this category yet." in other

        seen = {}
        for _ in range(2):
            html = alice.get("/projects/1/classify").text
            iid = int(re.search(r'name="image_id" value="(\d+)"', html).group(1))
            seen[iid] = re.search(r'<figcaption id="fov">(.*?)</figcaption>', html).group(1)
            tok = CSRF.search(html).group(1)
            alice.post("/projects/1/classify", data={"csrf_token": tok, "image_id": iid, "action": "skip"})
        assert sorted(seen.values()) == ["Field of view 3.2 nm x 3.2 nm · 64 x 64 px",
                                         "Field of view unknown (uncalibrated) · 32 x 32 px"]
