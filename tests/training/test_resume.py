"""A run killed with SIGKILL mid-epoch resumes from last.ckpt and ends bit-identical to an uninterrupted run."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

RUNNER = Path(__file__).with_name("_tiny_run.py")
# ALRC's running moments live in module buffers: resuming must restore them too
CLIP = ["--clipper", "alrc"] if importlib.util.find_spec("scopenet.training.alrc") else []


def _run(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, str(RUNNER), *args], env=env, capture_output=True, text=True,
                          timeout=120, **kw)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    # reference: 3 epochs x 8 steps, Adam + cyclic sawtooth schedule, validation every epoch
    ref = _run([str(tmp_path), "ref", *CLIP])
    assert ref.returncode == 0, ref.stderr[-3000:]

    # interrupted: last.ckpt is written at step 12 (mid-epoch 2); the process is killed at step 14
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(tmp_path), "cut", "--pause-at-step", "14", *CLIP],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marker = tmp_path / "cut" / "paused"
    deadline = time.time() + 90
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "the run never reached step 14"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["global_step"] == 12 and ckpt["epoch"] == 1  # genuinely mid-epoch
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "batches": 4}]
    if CLIP:
        assert {"clipper.mu1", "clipper.mu2"} <= ckpt["state_dict"].keys()
    assert not (tmp_path / "cut" / "final.pt").exists()

    # starting again without --resume refuses to overwrite the run
    again = _run([str(tmp_path), "cut", *CLIP])
    assert again.returncode != 0 and "resume" in again.stderr

    res = _run([str(tmp_path), "cut", "--resume", *CLIP])
    assert res.returncode == 0, res.stderr[-3000:]

    a = torch.load(tmp_path / "ref" / "final.pt")
    b = torch.load(tmp_path / "cut" / "final.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ma = json.loads((tmp_path / "ref" / "final.json").read_text())
    mb = json.loads((tmp_path / "cut" / "final.json").read_text())
    assert ma["global_step"] == mb["global_step"] == 24
    assert ma["metrics"]["val_loss"] == mb["metrics"]["val_loss"]
    assert ma["metrics"]["train_loss"] == mb["metrics"]["train_loss"]
    assert (tmp_path / "cut" / "loss_curve.png").stat().st_size > 1000
