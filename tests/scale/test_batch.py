"""Batch processing on Dask's distributed scheduler (a LocalCluster of 2 worker processes on loopback)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import scopenet as sn
from scopenet.errors import InputError
from scopenet.scale import find_inputs, run_batch
from scopenet.tasks.denoise import Denoiser

from ..cli._run import scopenet

pytestmark = pytest.mark.slow  # starts worker processes (about 5 s a run)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Five small images in a folder tree, one file that is not an image, and a tiny saved denoiser."""
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(0)
    for i in range(5):
        sub = "sub/" if i % 2 else ""
        (root / "in" / sub).mkdir(parents=True, exist_ok=True)
        sn.write(sn.Micrograph(rng.poisson(20, (64, 72)).astype(np.float32)), root / "in" / f"{sub}img{i}.tif")
    (root / "in" / "bad.tif").write_bytes(b"not a tiff")
    (root / "in" / "notes.txt").write_text("not an image format: ignored")
    import torch

    torch.manual_seed(0)
    Denoiser(arch_config={"widths": [8, 16]}).save(root / "tiny")
    return root


def test_find_inputs_walks_folders_and_keeps_relative_names(tree):
    found = find_inputs(tree / "in")
    assert [r.as_posix() for _, r in found] == ["bad.tif", "img0.tif", "img2.tif", "img4.tif", "sub/img1.tif",
                                                 "sub/img3.tif"]
    with pytest.raises(InputError, match="no such"):
        find_inputs(tree / "missing")


def test_batch_equals_each_file_alone_records_failures_and_resumes(tree):
    out = tree / "out"
    rep = run_batch("denoise", tree / "in", out, model=str(tree / "tiny"), n_workers=2)
    assert (rep.total, rep.done, rep.failed, rep.skipped) == (6, 5, 1, 0)
    assert "bad.tif" in rep.failures and "not a TIFF" in rep.failures["bad.tif"]
    est = Denoiser.load(tree / "tiny")
    for rel in ("img0", "sub/img3"):
        got = sn.read(out / f"{rel}-denoised.tif")
        ref = est.predict(sn.read(tree / "in" / f"{rel}.tif"))
        np.testing.assert_allclose(got.data, ref.data, atol=1e-6)
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert files["sub/img1.tif"] == {"state": "done", "output": "sub/img1-denoised.tif"}
    assert files["bad.tif"]["state"] == "failed"
    # a run killed after some files: its manifest lacks them (and a half-written output may be there)
    del files["img2.tif"]
    (out / "manifest.json").write_text(json.dumps({"task": "denoise", "files": files}))
    (out / "img2-denoised.tif").write_bytes(b"half written")
    again = run_batch("denoise", tree / "in", out, model=str(tree / "tiny"), n_workers=2)
    assert (again.done, again.skipped, again.failed) == (1, 4, 1)  # only what is missing (and the bad file)
    assert sorted(p.name for p in out.rglob("*-denoised.tif")) == sorted(
        f"img{i}-denoised.tif" for i in range(5))  # exactly one output per input
    np.testing.assert_allclose(sn.read(out / "img2-denoised.tif").data,
                               est.predict(sn.read(tree / "in" / "img2.tif")).data, atol=1e-6)


def test_batch_refuses_an_unknown_task(tree):
    with pytest.raises(InputError, match="denoise"):
        run_batch("atoms", tree / "in", tree / "o2")


def test_batch_cli_names_failures_and_exits_1(tree):
    r = scopenet("batch", "denoise", tree / "in", "-o", tree / "cli-out", "--model", tree / "tiny", "--workers", "2")
    assert r.returncode == 1, r.output
    assert "5 done" in r.stdout and "failed: bad.tif" in r.stderr and "Traceback" not in r.output
    assert (tree / "cli-out" / "sub" / "img3-denoised.tif").is_file()
