"""Exact resume (#19 item 8): a run stopped after its last checkpoint and resumed ends bit-identical to an
uninterrupted run, and its log.csv holds every step once. (With a step budget only: a wall-clock budget makes
the learning-rate schedule depend on time, so no two runs are the same.)"""
from __future__ import annotations

import pytest
import torch

from scopenet.tasks.runconfig import run_config
from scopenet.training.budget import checkpoint_state

TINY = {"task": "denoise", "arch_config": {"widths": [4, 8]}, "crop_size": 32, "batch_size": 2, "max_steps": 7,
        "time_budget_s": None, "checkpoint_every_n_steps": 3, "log_every": 1, "n_sim_per_kind": 1, "sim_size": 64,
        "use_real": False, "threads": 1, "accelerator": "cpu"}


class Killed(Exception):
    pass


def _steps(log):
    return [int(r.split(",")[0]) for r in log.read_text().split()[1:]]


def test_denoise_run_stopped_mid_way_resumes_bit_identical(tmp_path, monkeypatch):
    from scopenet.tasks.denoise import train as T

    ref = T.main(run_config({**TINY, "workdir": str(tmp_path / "ref")}), progress=False)

    cfg = run_config({**TINY, "workdir": str(tmp_path / "cut")})
    done = T.DenoiseModule.step_done

    def crash_after_5(self, loss, row=None):  # dies at step 5: the last checkpoint is step 3's
        done(self, loss, row)
        if self.steps == 5:
            raise Killed

    monkeypatch.setattr(T.DenoiseModule, "step_done", crash_after_5)
    with pytest.raises(Killed):
        T.main(cfg, progress=False)
    monkeypatch.undo()
    cut = tmp_path / "cut"
    assert checkpoint_state(cut / "last.ckpt")["steps"] == 3 and _steps(cut / "log.csv") == [1, 2, 3, 4, 5]
    assert not (cut / "model.safetensors").exists()
    T.main(cfg, resume=True, progress=False)

    a, b = checkpoint_state(ref / "last.ckpt"), checkpoint_state(cut / "last.ckpt")
    assert a["steps"] == b["steps"] == 7
    assert a["modules"]["net"].keys() == b["modules"]["net"].keys()
    for k, v in a["modules"]["net"].items():
        assert torch.equal(v, b["modules"]["net"][k]), k
    ra, rb = torch.load(ref / "last.ckpt", weights_only=False), torch.load(cut / "last.ckpt", weights_only=False)
    for sa, sb in zip(ra["optimizer_states"][0]["state"].values(), rb["optimizer_states"][0]["state"].values()):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k
    assert ra["budget"]["losses"] == rb["budget"]["losses"]  # the whole run's history, across the resume
    assert _steps(cut / "log.csv") == list(range(1, 8))  # each step once: rows 4-5 were dropped and rerun
    la, lb = (ref / "log.csv").read_text().split(), (cut / "log.csv").read_text().split()
    assert [r.split(",")[3] for r in la] == [r.split(",")[3] for r in lb]  # the same losses logged


def test_resuming_a_finished_run_takes_no_step(tmp_path):
    from scopenet.tasks.denoise import train as T

    cfg = run_config({**TINY, "max_steps": 2, "workdir": str(tmp_path / "r")})
    T.main(cfg, progress=False)
    before = checkpoint_state(tmp_path / "r" / "last.ckpt")
    T.main(cfg, resume=True, progress=False)
    after = checkpoint_state(tmp_path / "r" / "last.ckpt")
    assert after["steps"] == 2
    for k, v in before["modules"]["net"].items():
        assert torch.equal(v, after["modules"]["net"][k])


@pytest.mark.slow
def test_cli_run_killed_with_sigkill_resumes_bit_identical(tmp_path):
    """The reproduction of #19 item 8: ``scopenet train denoise`` killed between checkpoints, then resumed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    def cfg(name):
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump({**TINY, "max_steps": 300, "checkpoint_every_n_steps": 40,
                                     "workdir": str(tmp_path / name)}))
        return str(p)

    cmd = [sys.executable, "-m", "scopenet.cli.main", "train", "denoise", "--config"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    ref = subprocess.run(cmd + [cfg("ref")], env=env, capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    proc = subprocess.Popen(cmd + [cfg("cut")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, ck = tmp_path / "cut" / "log.csv", tmp_path / "cut" / "last.ckpt"
    deadline = time.time() + 240
    while not (ck.exists() and log.exists() and len(log.read_text().split()) > 50):  # past the step-40 checkpoint
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at, saved = len(log.read_text().split()) - 1, checkpoint_state(ck)["steps"]
    assert saved < killed_at < 300 and not (tmp_path / "cut" / "model.safetensors").exists()
    res = subprocess.run(cmd + [cfg("cut"), "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = checkpoint_state(tmp_path / "ref" / "last.ckpt"), checkpoint_state(ck)
    assert a["steps"] == b["steps"] == 300
    diff = max((a["modules"]["net"][k] - v).abs().max().item() for k, v in b["modules"]["net"].items())
    assert diff == 0.0, f"max weight difference {diff} (killed at step {killed_at}, checkpoint {saved})"
    assert [int(r.split(",")[0]) for r in log.read_text().split()[1:]] == list(range(1, 301))
