"""Load test on loopback: 50 concurrent annotators submit 5,000 classifications to a real uvicorn
server on a file SQLite database (WAL); afterwards the database holds exactly 5,000 events."""
from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from ._server import running_server

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

N_USERS, N_IMAGES = 50, 100          # 50 x 100 = 5,000 classifications
N_RETRIES = 2                        # per user: re-send answered images, expecting 409


def seed_database(url: str) -> None:
    from scopenet.label import service as svc
    from scopenet.label.db import Image, make_engine, session_factory, write_session

    engine = make_engine(url)
    with write_session(session_factory(engine)) as s:
        for i in range(N_USERS):
            svc.create_user(s, f"user{i:02d}", f"password-{i:02d}", rounds=4)
        p = svc.create_project(s, "load")
        for j in range(N_IMAGES):  # rows only: the load test needs no pixels
            s.add(Image(project_id=p.id, original_name=f"img{j:03d}.png", png_name=f"{j:032x}.png"))
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_50_annotators_5000_classifications(tmp_path):
    from sqlalchemy import func, select

    from scopenet.label.db import Classification, make_engine, session_factory

    url = f"sqlite:///{tmp_path / 'load.db'}"
    seed_database(url)
    with running_server(url, tmp_path / "up") as base:
        statuses: Counter = Counter()
        errors: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(N_USERS)

        def annotator(i: int) -> None:
            rng = random.Random(i)
            order = list(range(1, N_IMAGES + 1))
            rng.shuffle(order)
            local: Counter = Counter()
            try:
                with httpx.Client(base_url=base, timeout=60) as c:
                    pre = c.get("/api/csrf").json()["csrf_token"]  # anti-CSRF token of the pre-session
                    r = c.post("/api/login", json={"username": f"user{i:02d}", "password": f"password-{i:02d}"},
                               headers={"X-CSRF-Token": pre})
                    r.raise_for_status()
                    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]  # the session's token from now on
                    start.wait(timeout=60)
                    for k, iid in enumerate(order):
                        cats = [cat for cat in ("Dimers", "Rows", "Bad/Blurry") if rng.random() < 0.4]
                        r = c.post("/api/projects/1/classifications", json={"image_id": iid, "categories": cats})
                        local[r.status_code] += 1
                        if k % 25 == 0:
                            nxt = c.get("/api/projects/1/next").json()
                            assert nxt["done"] == k + 1 and nxt["total"] == N_IMAGES
                    for iid in order[:N_RETRIES]:  # a client re-sending: must not duplicate
                        r = c.post("/api/projects/1/classifications", json={"image_id": iid, "categories": []})
                        local[("retry", r.status_code)] += 1
                    assert c.get("/api/projects/1/next").json()["image_id"] is None
            except Exception as exc:  # reported below
                with lock:
                    errors.append(f"user{i:02d}: {type(exc).__name__}: {exc}")
            with lock:
                statuses.update(local)

        t0 = time.monotonic()
        threads = [threading.Thread(target=annotator, args=(i,)) for i in range(N_USERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=200)
        elapsed = time.monotonic() - t0
        assert not any(t.is_alive() for t in threads), "annotators still running after 200 s"
        assert not errors, errors[:5]
        assert statuses[201] == N_USERS * N_IMAGES, statuses
        assert statuses[("retry", 409)] == N_USERS * N_RETRIES, statuses
        print(f"\n{N_USERS * N_IMAGES} classifications from {N_USERS} annotators in {elapsed:.1f} s "
              f"({N_USERS * N_IMAGES / elapsed:.0f}/s)")

    engine = make_engine(url)
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count(Classification.id))) == N_USERS * N_IMAGES
        pairs = s.execute(select(Classification.user_id, Classification.image_id)).all()
        assert len(set(pairs)) == N_USERS * N_IMAGES
        per_user = Counter(u for u, _ in pairs)
        per_image = Counter(i for _, i in pairs)
        assert set(per_user.values()) == {N_IMAGES} and set(per_image.values()) == {N_USERS}
    engine.dispose()
