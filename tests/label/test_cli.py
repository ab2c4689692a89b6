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
