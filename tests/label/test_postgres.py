"""The service on PostgreSQL: a throw-away cluster (initdb + pg_ctl, unix socket only) when the
server binaries and the psycopg driver are installed; skipped with the reason otherwise."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start a PostgreSQL server")
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            pytest.skip(f"the PostgreSQL server tool {tool} is not installed")
    # not under pytest's tmp folder: the postgres user must be able to reach the socket folder
    d = Path(tempfile.mkdtemp(prefix="scopenet-pg-"))
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
    data, port = d / "data", "54391"
    subprocess.run(_as_postgres(["initdb", "-D", str(data), "-A", "trust", "-U", "scopenet"]), check=True,
                   capture_output=True)
    subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-w", "-l", str(d / "log"), "-o",
                                 f"-k {d} -p {port} -c listen_addresses=''", "start"]), check=True,
                   capture_output=True)
    try:
        yield f"postgresql+psycopg://scopenet@/postgres?host={d}&port={port}"
    finally:
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def test_service_on_postgresql(pg_url, tmp_path):
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from scopenet.label import create_app
    from scopenet.label import service as svc
    from scopenet.label.db import Classification, Image, write_session

    app = create_app(pg_url, secret_key="k", upload_dir=tmp_path)
    with write_session(app.state.Session) as s:
        svc.create_user(s, "alice", "alice-pass", rounds=4)
        p = svc.create_project(s, "P")
        for j in range(3):
            s.add(Image(project_id=p.id, original_name=f"i{j}", png_name=f"{j:032x}.png"))
    c = TestClient(app)
    r = c.post("/api/login", json={"username": "alice", "password": "alice-pass"},
               headers={"X-CSRF-Token": c.get("/api/csrf").json()["csrf_token"]})
    assert r.status_code == 200
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    seen = []
    for _ in range(3):
        iid = c.get("/api/projects/1/next").json()["image_id"]
        seen.append(iid)
        assert c.post("/api/projects/1/classifications", json={"image_id": iid, "categories": ["Dimers"]}).status_code == 201
    assert sorted(seen) == [1, 2, 3] and c.get("/api/projects/1/next").json()["image_id"] is None
    assert c.post("/api/projects/1/classifications", json={"image_id": 1, "categories": []}).status_code == 409
    with app.state.Session() as s:
        assert s.scalar(select(func.count(Classification.id))) == 3
        scores = svc.aggregate_project(s, svc.project_by_name(s, "P"))
    assert scores["mean_dimers"].tolist() == [1.0, 1.0, 1.0]
    app.state.engine.dispose()
