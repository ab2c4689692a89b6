"""``scopenet classify`` through the real command (issue #18): a bad file does not stop the rest, the
table goes to stdout without ``-o``, every output location is checked before any work, file names fold,
``--signal``, and ``scopenet simulate spm`` shards are read."""
from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

import scopenet as sn

from ..conftest import shared_path
from ._run import scopenet

SMALL = dict(size=16, channels=[4, 8, 8], dense=16, dropout=0.0, batch_size=16, line_aug_p=0.0, epochs=2)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch

    from scopenet.tasks.classify import TipClassifier

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("clf")
    x = np.random.default_rng(0).normal(size=(20, 16, 16)).astype(np.float32)
    clf = TipClassifier(categories=["bad_blurry", "rows"], **SMALL).fit(x, np.random.default_rng(1).random((20, 2)))
    clf.save(d / "m")
    return str(d / "m"), clf


@pytest.fixture
def arrays(tmp_path):
    x = np.random.default_rng(2).normal(size=(2, 16, 16)).astype(np.float32)
    paths = []
    for i in range(2):
        p = tmp_path / f"a{i}.npy"
        np.save(p, x[i])
        paths.append(p)
    return x, paths


def _one_line_error(r, named):
    assert r.returncode == 1 and "Traceback" not in r.output, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(named) in lines[0], r.stderr


def test_bad_file_does_not_stop_the_rest(tmp_path, model, arrays):
    stem, clf = model
    x, (a0, a1) = arrays
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not an image at all")
    out = tmp_path / "out.csv"
    r = scopenet("classify", a0, junk, a1, "--model", stem, "-o", out, "-q")
    assert r.returncode == 1, r.output
    assert "2 of 3 files done; failed: " in r.stderr and "junk.tif" in r.stderr
    df = pd.read_csv(out)
    assert list(df["file"]) == [str(a0), str(a1)]
    np.testing.assert_allclose(df[["bad_blurry", "rows"]].to_numpy(), clf.predict_proba(x), atol=1e-4)


def test_without_output_prints_the_table_and_reruns(tmp_path, model, arrays):
    stem, _ = model
    _, (a0, a1) = arrays
    for _ in range(2):  # a second identical run must not fail on anything the first left behind
        r = scopenet("classify", a0, a1, "--model", stem, "-q", cwd=tmp_path)
        assert r.returncode == 0, r.output
        assert "bad_blurry" in r.stdout and "a0.npy" in r.stdout.replace("\n", "")
        assert not (tmp_path / "classify.csv").exists()
    r = scopenet("classify", a0, a1, "--model", stem, "-o", "-", "-q")
    assert r.returncode == 0, r.output
    df = pd.read_csv(io.StringIO(r.stdout))
    assert list(df.columns) == ["file", "bad_blurry", "rows", "labels", "domain_score", "in_domain", "reason"]
    assert len(df) == 2


def test_unwritable_outputs_are_checked_before_any_work(tmp_path, model, arrays):
    stem, _ = model
    _, (a0, _) = arrays
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _one_line_error(scopenet("classify", a0, "--model", stem, "-o", blocker / "r.csv"), blocker)
    _one_line_error(scopenet("classify", a0, "--model", stem, "-o", "/proc/sn-r.csv"), "/proc")
    csv = tmp_path / "r.csv"
    for cams, named in ((blocker / "cams", blocker), ("/proc/sn-cams", "/proc")):
        _one_line_error(scopenet("classify", a0, "--model", stem, "-o", csv, "--cam", cams), named)
        assert not csv.exists()  # the CSV is not written when the CAM folder cannot be
    r = scopenet("classify", a0, "--model", stem, "-o", csv, "--cam", tmp_path / "cams", "-q")
    assert r.returncode == 0, r.output
    assert csv.exists() and len(list((tmp_path / "cams").glob("*.png"))) == 1
    r = scopenet("classify", a0, "--model", stem, "-o", csv, "-q")
    _one_line_error(r, "r.csv")
    assert "--overwrite" in r.stderr and "overwrite=True" not in r.stderr


def test_long_file_names_fold_instead_of_truncating(tmp_path, model):
    stem, _ = model
    d = tmp_path / ("a-rather-long-folder-name-for-one-session-of-scanning-" * 2)
    d.mkdir()
    names = [d / f"Si_7x7_{k}_scan_of_the_same_terrace_{k}.npy" for k in ("first", "second")]
    for p in names:
        np.save(p, np.random.default_rng(3).normal(size=(16, 16)).astype(np.float32))
    r = scopenet("classify", *names, "--model", stem, "-q", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.output
    # the file column of every table line, joined: exactly the two full paths
    cells = [m.group(1).strip() for m in re.finditer(r"^│([^│]*)│", r.stdout, re.M)]
    assert "".join(cells) == "".join(map(str, names)), r.stdout
    assert max(len(ln) for ln in r.stdout.splitlines()) <= 80


def test_signal_default_is_the_haadf_image(model):
    stem, clf = model
    emd = shared_path("fixtures", "em", "emd", "Test SI 16x16 ReducedData 215 kx.emd")
    imgs = sn.read_all(emd)
    r = scopenet("classify", emd, "--model", stem, "-o", "-")
    assert r.returncode == 0, r.output
    assert "#4 HAADF" in r.stderr
    got = pd.read_csv(io.StringIO(r.stdout))[["bad_blurry", "rows"]].to_numpy()
    np.testing.assert_allclose(got, clf.predict_proba(imgs[4].data[None].astype(np.float64)), atol=1e-4)
    r = scopenet("classify", emd, "--model", stem, "-o", "-", "--channel", "1", "-q")
    got = pd.read_csv(io.StringIO(r.stdout))[["bad_blurry", "rows"]].to_numpy()
    np.testing.assert_allclose(got, clf.predict_proba(imgs[1].data[None].astype(np.float64)), atol=1e-4)


def test_reads_simulated_spm_shards(tmp_path, model):
    pytest.importorskip("scopenet.simulate.spm.core", reason="simulate.spm not available yet")
    stem, clf = model
    out = tmp_path / "spm"
    r = scopenet("simulate", "spm", "--n", 3, "--size", 32, "-o", out, "-q")
    assert r.returncode == 0, r.output
    shard = next(out.glob("*.npz"))
    r = scopenet("classify", shard, "--model", stem, "-o", "-", "-q")
    assert r.returncode == 0, r.output
    df = pd.read_csv(io.StringIO(r.stdout))
    assert list(df["file"]) == [f"{shard}[{k}]" for k in range(3)]
    with np.load(shard) as z:
        want = clf.predict_proba(z["images"].astype(np.float64))
    np.testing.assert_allclose(df[["bad_blurry", "rows"]].to_numpy(), want, atol=1e-4)


def test_classify_labels_other_surfaces_unknown_and_says_which_surfaces_the_model_covers(tmp_path):
    from ..conftest import shared_path

    bruker = shared_path("fixtures", "bruker", "old_bruker.002")
    r = scopenet("classify", bruker, "-o", tmp_path / "c.csv")
    assert r.returncode == 0, r.output
    assert "labelled 'unknown'" in r.stdout and "H:Si(100)" in r.stdout
    import pandas as pd

    df = pd.read_csv(tmp_path / "c.csv")
    assert df["labels"][0] == "unknown" and not df["in_domain"][0] and "training domain" in df["reason"][0]
    off = scopenet("classify", bruker, "--no-domain-check", "-o", "-")
    assert off.returncode == 0 and "unknown" not in off.stdout
    assert "H:Si(100)" in scopenet("classify", "--help").stdout
