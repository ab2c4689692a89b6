"""Zooniverse classification exports: parsing, import into a project, and the round trip to scores."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from scopenet.errors import InputError, ReadError
from scopenet.training.crowd.aggregate import aggregate_events
from scopenet.label.zooniverse import import_zooniverse, read_zooniverse_export

COLUMNS = ["classification_id", "user_name", "user_id", "user_ip", "workflow_id", "workflow_name",
           "workflow_version", "created_at", "gold_standard", "expert", "metadata", "annotations",
           "subject_data", "subject_ids"]
SUBJECTS = {"101": "default_2014Mar05-184833_STM-STM_Spectroscopy--12_1.png",
            "102": "default_2014Mar05-184833_STM-STM_Spectroscopy--12_2.png",
            "103": "default_2014Mar05-184833_STM-STM_Spectroscopy--13_1.png"}
#: (classification_id, user, subject, answers, workflow) in export order
VOTES = [
    (5001, "ogordon", "101", ["Dimers", "Rows"], 3512),
    (5002, "nlandon", "101", ["Dimers"], 3512),
    (5003, "volunteer7", "101", ["**Dimers**", "Bad/Blurry"], 3512),
    (5004, "ogordon", "102", ["Bad/Blurry"], 3512),
    (5005, "not-logged-in-3f2a9c", "102", [], 3512),
    (5006, "nlandon", "103", ["Individual Atoms", "Tip Change"], 3512),
    (5007, "ogordon", "101", ["Bad/Blurry"], 3512),           # second go at the same subject: ignored
    (5008, "volunteer7", "103", ["Rows"], 9999),               # another workflow
]
#: expected per subject: n and mean per category (asym, atoms, dimers, rows, tip, bad), workflow 3512
EXPECTED = {"101": (3, [0, 0, 1, 1 / 3, 0, 1 / 3]),
            "102": (2, [0, 0, 0, 0, 0, 0.5]),
            "103": (1, [0, 1, 0, 0, 1, 0])}


def write_export(path: Path, votes=VOTES) -> Path:
    """A small export in the layout Zooniverse e-mails (annotations and subject_data as JSON)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for i, (cid, user, sid, answers, wf) in enumerate(votes):
            anon = user.startswith("not-logged-in")
            meta = {"source": "api", "session": f"{cid:x}", "viewport": {"width": 1280, "height": 800},
                    "started_at": f"2017-07-21T14:0{i}:01.000Z", "finished_at": f"2017-07-21T14:0{i}:09.000Z",
                    "user_language": "en", "subject_dimensions": [{"clientWidth": 512, "naturalWidth": 512}]}
            ann = [{"task": "T0", "task_label": "Select all that apply (see the tutorial)", "value": answers}]
            sdata = {sid: {"retired": None, "Filename": SUBJECTS[sid]}}
            w.writerow([cid, user, "" if anon else str(1000 + len(user)), "3f2a9c1b", wf, "Tip states", "12.4",
                        f"2017-07-21 14:0{i}:09 UTC", "", "", json.dumps(meta), json.dumps(ann),
                        json.dumps(sdata), sid])
    return path


def test_read_export_parses_answers_and_subjects(tmp_path):
    ev = read_zooniverse_export(write_export(tmp_path / "z.csv"), workflow_id=3512)
    assert len(ev) == 6  # 7 rows of the workflow, one repeat dropped
    assert set(ev["image"]) == set(SUBJECTS.values())
    r = ev.set_index("classification_id").loc["5003"]
    assert (r["dimers"], r["bad_blurry"], r["rows"]) == (1, 1, 0)
    assert str(ev["created_at"].iloc[0]) == "2017-07-21 14:00:09"
    assert ev.loc[ev["classification_id"] == "5005", ["asymmetries", "dimers", "bad_blurry"]].sum().sum() == 0
    s = aggregate_events(ev, image_col="subject_id").set_index("name")
    for sid, (n, means) in EXPECTED.items():
        assert s.loc[sid, "n_classifications"] == n
        np.testing.assert_allclose(s.loc[sid, [c for c in s.columns if c.startswith("mean_")]].to_numpy(float),
                                   means, atol=1e-12)


def test_import_round_trip_to_scores(make_app, tmp_path):
    from scopenet.label import service as svc
    from scopenet.label.db import write_session

    app = make_app(n_images=0)
    export = write_export(tmp_path / "z.csv")
    with write_session(app.state.Session) as s:
        p = svc.project_by_name(s, "HSi")
        rep = import_zooniverse(s, p, export, workflow_id=3512)
    assert (rep.rows, rep.imported, rep.duplicates, rep.images_created, rep.users_created) == (7, 6, 1, 3, 4)
    with app.state.Session() as s:
        p = svc.project_by_name(s, "HSi")
        scores = svc.aggregate_project(s, p).set_index("name")
        ev = svc.events_frame(s, p)
    assert sorted(ev["user"].unique()) == ["zooniverse:nlandon", "zooniverse:not-logged-in-3f2a9c",
                                           "zooniverse:ogordon", "zooniverse:volunteer7"]
    for sid, (n, means) in EXPECTED.items():
        row = scores.loc[SUBJECTS[sid]]
        assert row["n_classifications"] == n
        np.testing.assert_allclose(row[[c for c in scores.columns if c.startswith("mean_")]].to_numpy(float),
                                   means, atol=1e-12)
        np.testing.assert_allclose(row["agree_mean"], np.mean(2 * np.abs(np.array(means) - 0.5)), atol=1e-12)
    # importing the same export again adds nothing
    with write_session(app.state.Session) as s:
        rep2 = import_zooniverse(s, svc.project_by_name(s, "HSi"), export, workflow_id=3512)
    assert (rep2.imported, rep2.duplicates, rep2.images_created, rep2.users_created) == (0, 7, 0, 0)
    # imported volunteers cannot log in
    from fastapi.testclient import TestClient

    c = TestClient(app)
    r = c.post("/api/login", json={"username": "zooniverse:ogordon", "password": ""},
               headers={"X-CSRF-Token": c.get("/api/csrf").json()["csrf_token"]})
    assert r.status_code == 401


def test_uploading_pixels_attaches_them_to_imported_subjects(make_app, tmp_path):
    from PIL import Image as PILImage

    from scopenet.label import service as svc
    from scopenet.label.db import write_session

    app = make_app(n_images=0)
    with write_session(app.state.Session) as s:
        p = svc.project_by_name(s, "HSi")
        import_zooniverse(s, p, write_export(tmp_path / "z.csv"), workflow_id=3512)
        buf = io.BytesIO()
        PILImage.fromarray((np.arange(64 * 64) % 251).reshape(64, 64).astype(np.uint8)).save(buf, format="PNG")
        buf.seek(0)
        res = svc.ingest_uploads(s, p, [(SUBJECTS["101"], buf)], app.state.upload_dir, 10**6)
        assert not res.refused
        assert res.stored[0].external_id == "101" and res.stored[0].png_name


def test_answer_indices_and_unknown_answers(tmp_path):
    votes = [(1, "a", "101", [2, 3], 1), (2, "b", "101", ["Sparkles"], 1)]
    path = write_export(tmp_path / "z.csv", votes)
    with pytest.raises(InputError, match="classification 2.*Sparkles"):
        read_zooniverse_export(path)
    ev = read_zooniverse_export(path, ignore_unknown=True)
    assert ev[["dimers", "rows"]].to_numpy().tolist() == [[1, 1], [0, 0]]


def test_not_an_export(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ReadError, match="missing column"):
        read_zooniverse_export(bad)
    with pytest.raises(ReadError, match="no such file"):
        read_zooniverse_export(tmp_path / "absent.csv")
    broken = tmp_path / "broken.csv"
    write_export(broken, VOTES[:1])
    broken.write_text(broken.read_text().replace('"value"', "value"))
    with pytest.raises(ReadError, match="not JSON"):
        read_zooniverse_export(broken)
