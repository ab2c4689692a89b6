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
