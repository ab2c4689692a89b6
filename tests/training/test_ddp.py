"""Two-process DDP on the CPU (gloo, loopback) gives the weights of one process with the combined batch."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

RUNNER = Path(__file__).with_name("_tiny_run.py")
COMMON = ["--no-val", "--optimizer", "sgd", "--lr", "0.05", "--schedule", "none", "--epochs", "2"]


def _run(out, name, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", MASTER_ADDR="127.0.0.1")
    r = subprocess.run([sys.executable, str(RUNNER), str(out), name, *COMMON, *extra], env=env,
                       capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-3000:]
    return torch.load(Path(out) / name / "final.pt")


@pytest.mark.slow
def test_two_process_ddp_matches_single_process_with_combined_batch(tmp_path):
    from scopenet.nn import UNet

    one = _run(tmp_path, "one", "--batch-size", "4")
    two = _run(tmp_path, "two", "--batch-size", "2", "--devices", "2", "--strategy", "ddp")
    torch.manual_seed(7)  # the runner seeds 7 before building the net: recover the initial weights
    init = UNet(depth=1, base_channels=4, norm="none").state_dict()
    moved = max((one[k] - init[k]).abs().max().item() for k in one)
    assert moved > 1e-3  # 20 SGD steps really changed the weights
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6)
    # a single process with only a half batch follows a different trajectory (the test can fail)
    half = _run(tmp_path, "half", "--batch-size", "2")
    assert max((half[k] - one[k]).abs().max().item() for k in one) > 1e-4
