"""``scopenet batch`` through the real command: failures named, and a whole run killed and restarted."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

import scopenet as sn
from scopenet.tasks.denoise import Denoiser

from ..cli._run import _env, command, scopenet

pytestmark = pytest.mark.slow  # each command starts a LocalCluster


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("batchcli")
    rng = np.random.default_rng(0)
    for i in range(12):
        sub = "sub/" if i % 2 else ""
        (root / "in" / sub).mkdir(parents=True, exist_ok=True)
        sn.write(sn.Micrograph(rng.poisson(20, (160, 160)).astype(np.float32)), root / "in" / f"{sub}img{i:02d}.tif")
    import torch

    torch.manual_seed(0)
    Denoiser(arch_config={"widths": [8, 16]}).save(root / "tiny")
    return root


def test_batch_cli_names_failures_and_exits_1(tree, tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("img00.tif", "img02.tif"):
        (tmp_path / "in" / name).write_bytes((tree / "in" / name).read_bytes())
    (tmp_path / "in" / "bad.tif").write_bytes(b"not a tiff")
    r = scopenet("batch", "denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", tree / "tiny",
                 "--workers", "1")
    assert r.returncode == 1, r.output
    assert "2 done" in r.stdout and "failed: bad.tif" in r.stderr and "Traceback" not in r.output
    assert (tmp_path / "out" / "img02-denoised.tif").is_file()
    r = scopenet("batch", "denoise", tmp_path / "in", "-o", tmp_path / "o2", "--mask", tmp_path / "in" / "bad.tif")
    assert r.returncode != 0 and "--mask is an option of batch inpaint" in r.output


def test_a_run_killed_and_restarted_ends_with_one_output_per_input(tree):
    """The whole run (client, scheduler, workers: one process group) is SIGKILLed once outputs appear; the
    same command again finishes the rest: 12 outputs, no duplicate, no temporary file, manifest all done."""
    out = tree / "out"
    args = [*command(), "batch", "denoise", str(tree / "in"), "-o", str(out), "--model", str(tree / "tiny"),
            "--workers", "2", "--quiet"]
    proc = subprocess.Popen(args, env=_env(None), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.rglob("*-denoised.tif"))) >= 2:
                break
            time.sleep(0.05)
        finished_first = proc.poll() is not None
        os.killpg(proc.pid, signal.SIGKILL)  # our own process group: the command and its workers
    finally:
        proc.wait(timeout=60)
    done_before = len(list(out.rglob("*-denoised.tif")))
    r = subprocess.run(args, env=_env(None), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    outs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert outs == sorted(f"{'sub/' if i % 2 else ''}img{i:02d}-denoised.tif" for i in range(12))
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert len(files) == 12 and all(v["state"] == "done" for v in files.values())
    if not finished_first:
        assert done_before < 12 or "12 done" not in r.stdout  # the restart had something left to do
