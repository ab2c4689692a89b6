"""The completion model's training run (Lightning): checkpoints, resume, export, and two-process DDP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from scopenet.tasks.inpaint.config import InpaintTrainConfig
from scopenet.tasks.inpaint.train import export_checkpoint, load_checkpoint_state, main

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "train_inpaint.py"
TINY = dict(crop=32, batch_size=2, n_simulated=2, simulated_size=64, use_em_real=False, n_coverages=2,
            masks_per_level=1, threads=1, log_every=1, checkpoint_every_s=0, accelerator="cpu",
            arch_config={"depth": 2, "base_channels": 4, "unshuffle": 1}, kinds=["spiral", "random"])


def _weights(stem) -> dict:
    from safetensors.torch import load_file

    return load_file(str(stem) + ".safetensors")


def test_run_checkpoints_resumes_and_exports(tmp_path):
    kw = dict(TINY, workdir=tmp_path / "run", max_steps=3, time_budget_s=300)
    stem = main(InpaintTrainConfig(**kw))
    state, steps, elapsed = load_checkpoint_state(tmp_path / "run")
    assert steps == 3 and elapsed > 0
    card = json.loads(stem.with_suffix(".json").read_text())
    assert card["training"]["steps"] == 3 and np.isfinite(card["metrics"]["values"]["final_running_rms_vs_truth"])
    assert card["training"]["config"]["task"] == "inpaint"  # the run configuration, loadable again
    first = _weights(stem)
    for k, v in first.items():  # the saved model is the checkpoint's generator
        torch.testing.assert_close(v, state[k])
    main(InpaintTrainConfig(**{**kw, "max_steps": 6}))  # resumes at step 3
    rows = (tmp_path / "run" / "log.csv").read_text().split()
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert load_checkpoint_state(tmp_path / "run")[1] == 6
    second = _weights(stem)
    assert any(not torch.equal(first[k], second[k]) for k in first)
    out = export_checkpoint(tmp_path / "run", tmp_path / "exported")
    for k, v in _weights(out).items():
        torch.testing.assert_close(v, second[k])
    from scopenet.errors import InputError

    with pytest.raises(InputError, match="already holds a run"):  # never silently replaced
        main(InpaintTrainConfig(**{**kw, "max_steps": 2}), resume=False)
    main(InpaintTrainConfig(**{**kw, "max_steps": 2}), resume=False, overwrite=True)  # starts over at step 0
    assert load_checkpoint_state(tmp_path / "run")[1] == 2


def test_time_budget_stops_the_run(tmp_path):
    kw = dict(TINY, workdir=tmp_path / "run", max_steps=10_000, time_budget_s=1.0)
    main(InpaintTrainConfig(**kw))
    steps = load_checkpoint_state(tmp_path / "run")[1]
    assert 1 <= steps < 10_000


def test_export_without_checkpoint_names_the_folder(tmp_path):
    from scopenet.errors import InputError

    InpaintTrainConfig(**TINY).to_yaml(tmp_path / "config.yaml")
    with pytest.raises(InputError, match=str(tmp_path)):
        export_checkpoint(tmp_path, tmp_path / "m")


@pytest.mark.slow
@pytest.mark.parametrize("adversarial", [False, True])
def test_two_process_ddp_run_on_the_cpu(tmp_path, adversarial):
    """``strategy: ddp`` with two CPU processes (gloo on loopback) trains, checkpoints once and logs once;
    with the discriminators too (each backward pass leaves one network without gradients)."""
    cfg = dict(TINY, workdir=str(tmp_path / "ddp"), max_steps=4, time_budget_s=300, devices=2, strategy="ddp")
    if adversarial:
        cfg.update(crop=64, adversarial=True, disc_crop_sizes=[16, 32, 64], disc_input=32, disc_channels=4,
                   replay_size=3)
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", MASTER_ADDR="127.0.0.1")
    r = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "ddp.yaml")], env=env, capture_output=True,
                       text=True, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("saved ") == 1  # rank 0 reports
    state, steps, _ = load_checkpoint_state(tmp_path / "ddp")
    assert steps == 4
    rows = (tmp_path / "ddp" / "log.csv").read_text().split()
    assert [int(x.split(",")[0]) for x in rows] == [1, 2, 3, 4]  # rank 0 logs, rank 1 does not
    w = _weights(tmp_path / "ddp" / "model")
    assert all(torch.isfinite(v).all() for v in w.values())
    for k, v in w.items():
        torch.testing.assert_close(v, state[k])


def test_ede_generator_trains_its_auxiliary_head_and_completes_any_size(tmp_path):
    """Ede's two-scale generator: the trainer head gets its own ALRC-clipped loss; inference pads to x8."""
    from scopenet.tasks.inpaint.model import Inpainter

    kw = dict(TINY, workdir=tmp_path / "ede", max_steps=3, time_budget_s=300, architecture="partial-stem-generator",
              arch_config={"channels": 4, "inner_blocks": 1, "outer_blocks": 1})
    stem = main(InpaintTrainConfig(**kw))
    st = torch.load(tmp_path / "ede" / "last.ckpt", weights_only=False)["state_dict"]
    assert int(st["clip_aux.steps"]) == 3 and int(st["clip.steps"]) == 3
    assert float(st["clip_aux.mu1"]) != 1.0  # the auxiliary loss fed its own running statistics
    assert any(k.startswith("net.trainer.") for k in st)
    est = Inpainter.load(stem)
    rng = np.random.default_rng(0)
    partial = rng.random((37, 41)).astype(np.float32)
    mask = rng.random((37, 41)) < 0.2
    out = est.predict(partial, mask)
    assert out.shape == (37, 41) and np.isfinite(out).all()


def test_cli_trains_inpaint_from_its_own_configuration(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from scopenet.cli.main import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["train", "init", "inpaint", "-o", "inp.yaml"])
    assert r.exit_code == 0, r.output
    raw = yaml.safe_load((tmp_path / "inp.yaml").read_text())
    assert raw["task"] == "inpaint" and raw["architecture"] == "inpaint-unet"
    raw.update(TINY, workdir=str(tmp_path / "cli-run"), max_steps=2, time_budget_s=300)
    (tmp_path / "inp.yaml").write_text(yaml.safe_dump(raw))
    r = runner.invoke(app, ["train", "inpaint", "--config", "inp.yaml"])
    assert r.exit_code == 0, r.output
    assert "run finished" in r.output and (tmp_path / "cli-run" / "model.safetensors").exists()
    r = runner.invoke(app, ["train", "inpaint", "--config", "inp.yaml"])  # again without --resume: refused
    assert r.exit_code != 0 and "already holds a run" in r.output
    r = runner.invoke(app, ["train", "inpaint", "--config", "inp.yaml", "--resume"])
    assert r.exit_code == 0, r.output
    raw["crop"] = "big"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    r = runner.invoke(app, ["train", "inpaint", "--config", "bad.yaml"])
    assert r.exit_code != 0 and "bad.yaml" in r.output and "crop" in r.output


def test_absent_or_unknown_accelerator_is_a_clear_error_before_training(tmp_path):
    from scopenet.errors import InputError

    kw = dict(TINY, workdir=tmp_path / "run", max_steps=1, time_budget_s=60)
    with pytest.raises(InputError, match="unknown accelerator 'tpu'"):
        main(InpaintTrainConfig(**{**kw, "accelerator": "tpu"}))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            main(InpaintTrainConfig(**{**kw, "accelerator": "gpu"}))
    assert not (tmp_path / "run" / "last.ckpt").exists()


def test_resume_after_a_crash_is_bit_identical(tmp_path, monkeypatch):
    """Stopped after its last checkpoint and resumed, a run (ALRC statistics, running averages, batch stream)
    ends as an uninterrupted one, with each step logged once (#19 item 8)."""
    from scopenet.tasks.inpaint import train as T
    from scopenet.training.budget import checkpoint_state

    kw = dict(TINY, max_steps=6, time_budget_s=None, checkpoint_every_s=None, checkpoint_every_n_steps=2)
    main(InpaintTrainConfig(**kw, workdir=tmp_path / "ref"))

    class Killed(Exception):
        pass

    done = T.InpaintModule.step_done

    def crash(self, loss, row=None):
        done(self, loss, row)
        if self.steps == 5:
            raise Killed

    monkeypatch.setattr(T.InpaintModule, "step_done", crash)
    with pytest.raises(Killed):
        main(InpaintTrainConfig(**kw, workdir=tmp_path / "cut"))
    monkeypatch.undo()
    assert checkpoint_state(tmp_path / "cut" / "last.ckpt")["steps"] == 4
    main(InpaintTrainConfig(**kw, workdir=tmp_path / "cut"))
    a, b = (torch.load(tmp_path / n / "last.ckpt", weights_only=False)["state_dict"] for n in ("ref", "cut"))
    assert a.keys() == b.keys() and {"clip.mu1", "clip.mu2"} <= a.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [r.split(",") for r in (tmp_path / "cut" / "log.csv").read_text().split()]
    ref = [r.split(",") for r in (tmp_path / "ref" / "log.csv").read_text().split()]
    assert [int(r[0]) for r in rows] == list(range(1, 7)) and [r[2:] for r in rows] == [r[2:] for r in ref]
