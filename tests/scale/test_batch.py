"""Batch processing on Dask's distributed scheduler (one LocalCluster of 2 worker processes on loopback,
shared by this module's tests; the CLI tests start their own)."""
from __future__ import annotations

import json
import logging
import os
import signal

import numpy as np
import pytest

import scopenet as sn
from scopenet.errors import InputError
from scopenet.scale import BATCH_TASKS, find_inputs, run_batch
from scopenet.tasks.denoise import Denoiser

pytestmark = pytest.mark.slow  # worker processes: seconds per run, tens of seconds on a loaded machine


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


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


def test_batch_equals_each_file_alone_records_failures_and_resumes(tree, client):
    out = tree / "out"
    rep = run_batch("denoise", tree / "in", out, model=str(tree / "tiny"), client=client)
    assert (rep.total, rep.done, rep.failed, rep.skipped) == (6, 5, 1, 0)
    assert "bad.tif" in rep.failures and "not a TIFF" in rep.failures["bad.tif"]
    assert "5 done" in rep.summary() and "failed: bad.tif" in rep.summary()
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
    again = run_batch("denoise", tree / "in", out, model=str(tree / "tiny"), client=client)
    assert (again.done, again.skipped, again.failed) == (1, 4, 1)  # only what is missing (and the bad file)
    assert sorted(p.name for p in out.rglob("*-denoised.tif")) == sorted(
        f"img{i}-denoised.tif" for i in range(5))  # exactly one output per input
    np.testing.assert_allclose(sn.read(out / "img2-denoised.tif").data,
                               est.predict(sn.read(tree / "in" / "img2.tif")).data, atol=1e-6)


def test_batch_refuses_an_unknown_task_and_tiling_where_impossible(tree):
    with pytest.raises(InputError, match="denoise"):
        run_batch("no-such-task", tree / "in", tree / "o2")
    with pytest.raises(InputError, match="block by block"):
        run_batch("classify", tree / "in", tree / "o2", tile=True)
    assert {"denoise", "superres", "inpaint", "classify"} <= set(BATCH_TASKS)


def test_huge_image_block_by_block_equals_the_in_memory_result(tmp_path, client):
    """1024 x 1000 px in 384 px blocks (not aligned with the 128 px network tiles): written to zarr, equal to
    the in-memory (tiled) result to 1e-5, calibration kept, NaN where the input is not finite."""
    import torch

    torch.manual_seed(1)
    Denoiser(arch_config={"widths": [8, 16]}, tile=128, overlap=32, max_direct_pixels=1, batch_size=4
             ).save(tmp_path / "tiny-tiled")
    rng = np.random.default_rng(2)
    a = (rng.poisson(30, (1024, 1000)) / 40).astype(np.float32)
    a[5, 7] = np.nan
    img = sn.Micrograph(a, axes=[sn.Axis("y", 1024, 0.1, unit="nm"), sn.Axis("x", 1000, 0.1, unit="nm")])
    sn.write(img, tmp_path / "in" / "big.tif")
    rep = run_batch("denoise", tmp_path / "in", tmp_path / "out", model=str(tmp_path / "tiny-tiled"),
                    client=client, tile=True, block=384, tiff=True)
    assert (rep.done, rep.failed, rep.tiled) == (1, 0, 1), rep.summary()
    import zarr

    assert zarr.open_array(store=str(tmp_path / "out" / "big-denoised.zarr"), mode="r").chunks == (384, 384)
    got = sn.read(tmp_path / "out" / "big-denoised.zarr", lazy=True)
    assert got.axes == img.axes
    assert [p["operation"] for p in got.provenance][-2:] == ["denoise", "read"]
    ref = Denoiser.load(tmp_path / "tiny-tiled").predict(sn.read(tmp_path / "in" / "big.tif"))
    np.testing.assert_allclose(np.asarray(got), ref.data, atol=1e-5)
    assert np.isnan(np.asarray(got)[5, 7])
    np.testing.assert_array_equal(sn.read(tmp_path / "out" / "big-denoised.tif").data, np.asarray(got))  # --tiff


def test_inpaint_and_classify_batches_equal_each_file_alone(tmp_path, client):
    from scopenet.tasks.classify.model import classify
    from scopenet.tasks.inpaint.model import Inpainter

    rng = np.random.default_rng(3)
    scans = tmp_path / "scans"
    scans.mkdir()
    full = [rng.random((64, 64)).astype(np.float32) for _ in range(3)]
    masks = [rng.random((64, 64)) < 0.3 for _ in range(3)]
    sn.write(sn.Micrograph(np.where(masks[0], full[0], np.nan)), scans / "s0.tif")  # mask = the finite pixels
    for i in (1, 2):
        sn.write(sn.Micrograph(np.where(masks[i], full[i], 0)), scans / f"s{i}.tif")
        sn.write(sn.Micrograph(masks[i].astype(np.float32)), scans / f"s{i}-mask.tif")
    rep = run_batch("inpaint", scans, tmp_path / "inp", model="default", client=client)
    assert (rep.total, rep.done, rep.failed) == (3, 3, 0), rep.summary()  # the masks are not inputs
    inp = Inpainter.pretrained("default")
    for i in range(3):
        ref = inp.predict(np.where(masks[i], full[i], 0).astype(np.float32), masks[i])
        np.testing.assert_allclose(sn.read(tmp_path / "inp" / f"s{i}-inpainted.tif").data, ref, atol=1e-5)

    rep = run_batch("classify", scans, tmp_path / "cls", model="good-bad", client=client)
    assert rep.done == 5, rep.summary()  # a table task: every image is an input
    rows = json.loads((tmp_path / "cls" / "classify.json").read_text())
    assert [r["file"] for r in rows] == ["s0.tif", "s1-mask.tif", "s1.tif", "s2-mask.tif", "s2.tif"]
    alone = classify(sn.read(scans / "s1.tif"), model="good-bad")
    assert rows[2]["labels"] == alone["labels"][0]
    assert rows[2]["good"] == pytest.approx(float(alone["good"][0]), abs=1e-6)
    csv = (tmp_path / "cls" / "classify.csv").read_text().splitlines()
    assert csv[0].startswith("file,") and len(csv) == 6


def test_atoms_exitwave_and_embed_batches_equal_each_file_alone(tmp_path, client):
    from scopenet.tasks.atoms.model import AtomFinder
    from scopenet.tasks.embed.model import Embedder
    from scopenet.tasks.exitwave.model import ExitWaveEstimator

    src = tmp_path / "in"
    src.mkdir()
    yy, xx = np.mgrid[:96, :96]
    lattice = sum(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0) for cy in range(6, 96, 12) for cx in range(6, 96, 12))
    rng = np.random.default_rng(5)
    imgs = [(100 * lattice + rng.poisson(5, lattice.shape)).astype(np.float32),
            (1 + 0.2 * rng.standard_normal((96, 96))).astype(np.float32)]
    for i, a in enumerate(imgs):
        sn.write(sn.Micrograph(a), src / f"m{i}.tif")

    rep = run_batch("atoms", src, tmp_path / "atoms", client=client)
    assert (rep.done, rep.failed) == (2, 0), rep.summary()
    rows = json.loads((tmp_path / "atoms" / "atoms.json").read_text())
    alone = AtomFinder.pretrained("default").predict(sn.read(src / "m0.tif"))
    assert rows[0]["file"] == "m0.tif" and rows[0]["n_atoms"] == len(alone) == 64
    assert rows[0]["nn_median_px"] == pytest.approx(12.0, abs=0.5)

    rep = run_batch("embed", src, tmp_path / "embed", client=client)
    assert rep.done == 2, rep.summary()
    rows = json.loads((tmp_path / "embed" / "embed.json").read_text())
    code = Embedder.pretrained("default").predict(sn.read(src / "m1.tif"))[0]
    np.testing.assert_allclose([rows[1][f"z{i:02d}"] for i in range(len(code))], code, atol=1e-5)

    rep = run_batch("exitwave", src, tmp_path / "ew", client=client)
    assert rep.done == 2, rep.summary()
    ref = ExitWaveEstimator.pretrained("restricted").predict_phase(sn.read(src / "m1.tif"), warn=False)
    got = sn.read(tmp_path / "ew" / "m1-phase.tif").data
    np.testing.assert_allclose(got, ref.data, atol=1e-5)
    assert got.min() >= -np.pi and got.max() < np.pi


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(tmp_path, client):
    """SIGKILL one of the two worker processes after the first files: its work is redone elsewhere and
    every input ends with exactly one output, the manifest all done, no temporary file left."""
    import torch

    torch.manual_seed(0)
    Denoiser(arch_config={"widths": [8, 16]}).save(tmp_path / "tiny")
    rng = np.random.default_rng(4)
    n = 24
    for i in range(n):
        sn.write(sn.Micrograph(rng.poisson(20, (192, 192)).astype(np.float32)), tmp_path / "in" / f"i{i:02d}.tif")
    pids = client.run(os.getpid)
    killed: list[tuple[int, int]] = []

    def kill_one(key, state):
        if not killed:
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, rep_count[0]))
        rep_count[0] += 1

    rep_count = [0]
    rep = run_batch("denoise", tmp_path / "in", tmp_path / "out", model=str(tmp_path / "tiny"), client=client,
                    on_result=kill_one)
    assert killed and killed[0][1] < n  # killed while files were outstanding
    assert (rep.done, rep.failed) == (n, 0), rep.summary()
    outs = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != "manifest.json")
    assert outs == [f"i{i:02d}-denoised.tif" for i in range(n)]  # one each, no temporary file
    files = json.loads((tmp_path / "out" / "manifest.json").read_text())["files"]
    assert len(files) == n and all(v["state"] == "done" for v in files.values())
    est = Denoiser.load(tmp_path / "tiny")
    for i in (0, n - 1):
        np.testing.assert_allclose(sn.read(tmp_path / "out" / f"i{i:02d}-denoised.tif").data,
                                   est.predict(sn.read(tmp_path / "in" / f"i{i:02d}.tif")).data, atol=1e-6)
    assert killed[0][0] not in client.run(os.getpid).values()  # the worker really was replaced
