"""Browser test: Playwright drives Debian's chromium through log-in, the tutorial, classifying
with the keyboard, the admin export and marking a tutorial example. Every form carries its
anti-CSRF token, so a form that lost it fails here. Any failing step fails the test."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest

from .conftest import PASSWORDS, npy_bytes, scan
from ._server import running_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]


def seed(url: str, upload_dir: Path) -> None:
    from scopenet.label import service as svc
    from scopenet.label.db import make_engine, session_factory, write_session

    engine = make_engine(url)
    with write_session(session_factory(engine)) as s:
        for name, pw in PASSWORDS.items():
            svc.create_user(s, name, pw, role="admin" if name == "admin" else "annotator", rounds=4)
        p = svc.create_project(s, "H:Si(100) tip states",
                               tutorial="Tick every feature the tip resolves.\n\nIgnore step edges and defects.")
        files = [(f"scan_{i}.npy", io.BytesIO(npy_bytes(scan(i, 96)))) for i in range(4)]
        assert not svc.ingest_uploads(s, p, files, upload_dir, 10**7).refused
        ex = [("example_dimers.npy", io.BytesIO(npy_bytes(scan(50, 96))))]
        assert not svc.ingest_uploads(s, p, ex, upload_dir, 10**7, example_for="Dimers").refused
    engine.dispose()


def test_login_tutorial_classify_with_keys_and_export(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium: apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("SCOPENET_SCREENSHOT_DIR", tmp_path))
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    seed(url, tmp_path / "up")
    with running_server(url, tmp_path / "up") as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            ctx = browser.new_context(base_url=base, accept_downloads=True, viewport={"width": 1200, "height": 860})
            ctx.set_default_timeout(15000)
            page = ctx.new_page()
            js_errors: list[str] = []
            page.on("pageerror", lambda e: js_errors.append(str(e)))

            # log in (the first page redirects to the login form)
            page.goto("/")
            expect(page).to_have_url(f"{base}/login?next=/")
            page.fill("#username", "alice")
            page.fill("#password", "wrong-password")
            page.click("#login-button")
            expect(page.locator(".error")).to_contain_text("wrong password")
            page.fill("#username", "alice")
            page.fill("#password", PASSWORDS["alice"])
            page.click("#login-button")
            expect(page.locator("h2")).to_have_text("H:Si(100) tip states")
            expect(page.locator("main")).to_contain_text("0 of 4 done")

            # tutorial with an example image per category
            page.click("text=Tutorial")
            expect(page.locator("main")).to_contain_text("Ignore step edges and defects.")
            expect(page.locator("section.example h2")).to_have_count(6)
            example = page.locator("#example-3 img[src^='/images/']")   # the one the admin marked
            expect(example).to_have_count(1)
            expect(page.locator("#example-3 img[src='/static/tutorial-dimers.png']")).to_have_count(1)  # built in
            # wait for the image to load (a loaded CI box is slow), then check it decoded at its size
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=example.element_handle(),
                                   timeout=10_000)
            assert page.evaluate("img => img.naturalWidth", example.element_handle()) == 96

            # classify with the keyboard: 1-6 toggle, Enter submits, S skips
            page.click("#start")
            expect(page.locator("#progress")).to_have_text("Image 1 of 4")
            page.wait_for_function("(() => { const i = document.getElementById('scan');"
                                   " return i.complete && i.naturalWidth > 0; })()", timeout=10_000)
            assert page.evaluate("document.getElementById('scan').naturalWidth") == 96
            boxes = [page.locator(f"#cat-{i}") for i in range(1, 7)]
            for key in "1334":
                page.keyboard.press(key)
            assert [b.is_checked() for b in boxes] == [True, False, False, True, False, False]
            page.screenshot(path=str(shots / "classify-page.png"), full_page=True)
            page.keyboard.press("Enter")
            expect(page.locator("#progress")).to_have_text("Image 2 of 4")
            page.keyboard.press("s")
            expect(page.locator("#progress")).to_have_text("Image 3 of 4")
            page.keyboard.press("6")
            page.keyboard.press("Enter")
            expect(page.locator("#progress")).to_have_text("Image 4 of 4")
            page.keyboard.press("2")
            page.keyboard.press("3")
            page.keyboard.press("Enter")
            expect(page.locator("#done")).to_contain_text("All done")
            expect(page.locator("#progress")).to_have_text("4 of 4")
            assert page.locator("text=Admin").count() == 0  # annotators get no admin link
            page.click("#logout")
            expect(page).to_have_url(f"{base}/login")

            # the admin exports the events
            page.fill("#username", "admin")
            page.fill("#password", PASSWORDS["admin"])
            page.click("#login-button")
            page.click("text=Manage")
            with page.expect_download() as dl:
                page.click("#export-events-csv")
            path = tmp_path / "events.csv"
            dl.value.save_as(path)

            # the admin makes an uploaded image a tutorial example of "Rows" (4th category)
            row = page.locator("#image-1")
            row.locator("select[name=example_for]").select_option("Rows")
            row.locator("text=Set").click()
            expect(page.locator("#image-1 select[name=example_for]")).to_have_value("Rows")
            page.goto("/projects/1/tutorial")
            expect(page.locator("#example-4 img[src^='/images/']")).to_have_count(1)
            expect(page.locator("#example-3 img[src^='/images/']")).to_have_count(1)
            assert not js_errors, js_errors
        finally:
            browser.close()
    ev = pd.read_csv(path)
    assert ev["user"].tolist() == ["alice"] * 3
    keys = ["asymmetries", "individual_atoms", "dimers", "rows", "tip_change", "bad_blurry"]
    assert ev[keys].to_numpy().tolist() == [[1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1], [0, 1, 1, 0, 0, 0]]
