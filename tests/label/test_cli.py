"""`scopenet label ...` commands."""
from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from scopenet.cli.main import app

from .test_zooniverse import SUBJECTS, write_export

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, ["label", *map(str, args)], input=input)


def test_accounts_import_export_aggregate(tmp_path):
    db = f"sqlite:///{tmp_path / 'l.db'}"
    r = run("create-admin", "root", "--db", db, input="root-password\nroot-password\n")
    assert r.exit_code == 0 and "administrator 'root' created" in r.output
    r = run("create-admin", "root", "--db", db, "--password", "another-pass")
    assert r.exit_code == 1 and "taken" in r.output
    r = run("invite", "--db", db, "--base-url", "http://lab:9000/")
    assert r.exit_code == 0 and r.output.startswith("http://lab:9000/signup?token=")

    export = write_export(tmp_path / "zoo.csv")
    r = run("import-zooniverse", export, "--project", "HSi", "--db", db, "--workflow-id", "3512")
    assert r.exit_code == 0, r.output
    assert "7 classifications read: 6 imported, 1 duplicates" in r.output

    out = tmp_path / "events.csv"
    r = run("export", "--project", "HSi", "--db", db, "-o", out)
    assert r.exit_code == 0 and len(pd.read_csv(out)) == 6
    r = run("export", "--project", "HSi", "--db", db, "-o", out)
    assert r.exit_code == 1 and "exists" in r.output  # never overwritten without --overwrite
    r = run("export", "--project", "nope", "--db", db, "-o", tmp_path / "x.csv")
    assert r.exit_code == 1 and "no project named 'nope'" in r.output

    scores = tmp_path / "scores.csv"
    r = run("export", "--project", "HSi", "--db", db, "-o", scores, "--kind", "scores")
    sc = pd.read_csv(scores).set_index("name")
    assert sc.loc[SUBJECTS["101"], "n_classifications"] == 3
    assert sc.loc[SUBJECTS["101"], "mean_rows"] == pytest.approx(1 / 3)

    # aggregate the exported events file, the Zooniverse file, and the project: same scores
    a1, a2, a3 = tmp_path / "a1.csv", tmp_path / "a2.json", tmp_path / "a3.csv"
    r = run("aggregate", out, "-o", a1, "--min-agreement", "0")
    assert r.exit_code == 0 and "3 images" in r.output, r.output
    r = run("aggregate", export, "--zooniverse", "-o", a2, "--min-agreement", "0")
    assert r.exit_code == 0, r.output
    r = run("aggregate", "--project", "HSi", "--db", db, "-o", a3, "--min-agreement", "0")
    assert r.exit_code == 0, r.output
    t1, t3 = pd.read_csv(a1).set_index("name"), pd.read_csv(a3).set_index("name")
    cols = [c for c in t1.columns if c.startswith(("mean_", "agree_"))]
    pd.testing.assert_frame_equal(t1.loc[t3.index, cols], t3[cols])
    t2 = pd.read_json(a2)  # a Zooniverse file aggregates by subject file name, all workflows
    assert len(t2) == 3
    # mean agreements: 101 -> 0.78, 102 -> 0.83 (a 50/50 split on Bad/Blurry), 103 -> 1
    r = run("aggregate", out, "-o", tmp_path / "f.csv", "--min-agreement", "0.9")
    assert "1 kept" in r.output and pd.read_csv(tmp_path / "f.csv")["name"].tolist() == [SUBJECTS["103"]]


def test_create_project_and_errors(tmp_path):
    db = f"sqlite:///{tmp_path / 'l.db'}"
    r = run("create-project", "tips", "--db", db, "--categories", "Good,Bad", "--single-label")
    assert r.exit_code == 0 and "Good, Bad" in r.output
    r = run("create-project", "tips", "--db", db)
    assert r.exit_code == 1 and "exists already" in r.output
    r = run("aggregate", "-o", tmp_path / "x.csv")
    assert r.exit_code == 1 and "EVENTS" in r.output
    r = run("aggregate", tmp_path / "absent.csv", "-o", tmp_path / "x.csv")
    assert r.exit_code == 1 and "no such file" in r.output
    r = run("export", "--project", "tips", "--db", db, "-o", tmp_path / "x.txt")
    assert r.exit_code == 1 and ".csv or .json" in r.output


def test_serve_on_a_busy_port_is_one_line_naming_the_port(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run("serve", "--port", port, "--db", f"sqlite:///{tmp_path / 'l.db'}", "--upload-dir", tmp_path / "up")
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0], r.output
    assert "startup complete" not in r.output.lower()
    assert not (tmp_path / "up").exists() and not (tmp_path / "l.db").exists()  # nothing was built


def test_serve_hands_its_bound_socket_to_uvicorn_without_proxy_headers(tmp_path, monkeypatch):
    import uvicorn

    from ._server import free_port

    seen = {}

    def fake_run(self, sockets=None):
        seen["config"], seen["ports"] = self.config, [s.getsockname()[1] for s in sockets]

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    port = free_port()
    r = run("serve", "--port", port, "--db", f"sqlite:///{tmp_path / 'l.db'}", "--upload-dir", tmp_path / "up",
            "--trusted-proxy", "10.0.0.0/8", "--max-megapixels", "8", "--render-timeout", "5")
    assert r.exit_code == 0, r.output
    assert f"http://127.0.0.1:{port}/" in r.output
    config = seen["config"]
    assert config.proxy_headers is False  # uvicorn would trust X-Forwarded-For from 127.0.0.1
    assert seen["ports"] == [port]
    label = config.app.state.label
    assert [str(n) for n in label.trusted_proxies] == ["10.0.0.0/8"]
    assert label.render.max_pixels == 8_000_000 and label.render.timeout == 5


@pytest.mark.timeout(120)
def test_served_app_ignores_x_forwarded_for_from_loopback(tmp_path):
    import subprocess
    import sys

    import httpx

    from ._server import free_port, wait_until_up

    db = f"sqlite:///{tmp_path / 'l.db'}"
    assert run("create-admin", "root", "--db", db, "--password", "root-password").exit_code == 0
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", "from scopenet.cli.main import app; app()", "label", "serve",
                               "--port", str(port), "--db", db, "--upload-dir", str(tmp_path / "up")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server)
        with httpx.Client(base_url=base, timeout=30) as c:
            pre = c.get("/api/csrf").json()["csrf_token"]
            statuses = [c.post("/api/login", json={"username": "root", "password": "wrong-password"},
                               headers={"X-CSRF-Token": pre, "X-Forwarded-For": f"203.0.113.{i}"}).status_code
                        for i in range(6)]
        assert statuses == [401] * 5 + [429]  # one client address (127.0.0.1) whatever the header says
    finally:
        server.terminate()
        server.wait(timeout=20)
