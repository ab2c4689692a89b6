"""The run configuration (a union discriminated on task), the recipes of the shipped models, and
`scopenet train TASK --config run.yaml` for every task on tiny runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from scopenet.errors import InputError, ReadError
from scopenet.tasks.runconfig import (TRAIN_CONFIGS, default_run_config, read_run_config, run_config,
                                      write_run_config)

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
#: the tip-conditioning agent trains with stable-baselines3, not the engine: its recipes are AgentTrainConfig
AGENT_RECIPES = [p for p in RECIPES if p.stem.startswith("autopilot-")]
ENGINE_RECIPES = [p for p in RECIPES if p not in AGENT_RECIPES]
SHIPPED = sorted(p.stem for p in (ROOT / "src" / "scopenet" / "weights").glob("*.safetensors"))


def test_every_shipped_model_has_a_recipe():
    assert set(SHIPPED) <= {p.stem for p in RECIPES}, "a shipped model without recipes/<name>.yaml"


@pytest.mark.parametrize("path", ENGINE_RECIPES + sorted((ROOT / "scripts" / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_recipes_load_and_round_trip(path, tmp_path):
    cfg = read_run_config(path)
    assert type(cfg) is TRAIN_CONFIGS[cfg.task]
    if path.stem in SHIPPED:
        assert path.stem.startswith(cfg.task + "-")
    write_run_config(cfg, tmp_path / "again.yaml")
    assert read_run_config(tmp_path / "again.yaml") == cfg


@pytest.mark.parametrize("path", AGENT_RECIPES, ids=lambda p: p.name)
def test_agent_recipes_validate(path):
    cfg = _agent_config(yaml.safe_load(path.read_text()))
    assert 0 < cfg.gamma < 1 and cfg.buffer_size > 0
    with pytest.raises(ReadError, match="names no task"):
        read_run_config(path)


def _agent_config(d: dict):
    """The agent's run configuration: DQfD (``algorithm: dqfd``) or stable-baselines3 double DQN."""
    from scopenet.autopilot.agent import AgentTrainConfig
    from scopenet.autopilot.dqfd import DQfDConfig

    return DQfDConfig(**d) if d.get("algorithm") == "dqfd" else AgentTrainConfig(**d)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_cards_training_configuration_loads(name):
    """The ``training.config`` of every shipped card (written before the typed run configuration: a nested
    denoise layout, a bare classifier configuration, a free superres dict) is migrated on reading."""
    import json

    card = json.loads((ROOT / "src" / "scopenet" / "weights" / f"{name}.json").read_text())
    if card["task"] == "autopilot":  # a stable-baselines3 or DQfD agent, not an engine run
        assert _agent_config(card["training"]["config"]).gamma == pytest.approx(0.95)
        return
    cfg = run_config(card["training"]["config"], task=card["task"])
    assert type(cfg) is TRAIN_CONFIGS[card["task"]]


def test_a_misspelt_key_names_the_key_and_the_file(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("task: denoise\nmax_step: 10\ncrop_size: 32\n")
    with pytest.raises(ReadError) as e:
        read_run_config(p)
    assert "max_step" in str(e.value) and "run.yaml" in str(e.value)
    p.write_text("task: classify\nclassifier: {epoch: 3}\n")  # nested sections are checked too
    with pytest.raises(ReadError, match="classifier.epoch"):
        read_run_config(p)
    p.write_text("task: classify\ndata: {kind: simulated, fils: [a.npz]}\n")
    with pytest.raises(ReadError, match="fils"):
        read_run_config(p)
    with pytest.raises(InputError, match="lr"):
        run_config({"task": "superres", "lr": -1})


def test_task_is_checked(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("crop: 64\n")
    with pytest.raises(ReadError, match="names no task"):
        read_run_config(p)
    assert read_run_config(p, task="inpaint").crop == 64  # the CLI's task fills a file without one
    p.write_text("task: inpaint\n")
    with pytest.raises(ReadError, match="not 'denoise'"):
        read_run_config(p, task="denoise")
    p.write_text("task: telepathy\n")
    with pytest.raises(ReadError, match="unknown task"):
        read_run_config(p)
    with pytest.raises(ReadError, match="no such"):
        read_run_config(tmp_path / "missing.yaml")


def test_legacy_denoise_layout_is_migrated():
    old = {"task": "denoise", "name": "r", "out_dir": "/tmp/x",
           "model": {"name": "denoise-compact", "config": {"widths": [8, 16]}},
           "data": {"crop_size": 48, "batch_size": 4, "samples_per_image": 16, "normalise": "minmax"},
           "optim": {"optimizer": "adam", "lr": 5e-4, "betas": [0.5, 0.999], "schedule": "none"},
           "trainer": {"max_steps": 10, "max_epochs": 3, "seed": 4, "checkpoint_every_n_steps": 5},
           "extra": {"time_budget_min": 2, "min_lr_fraction": 0.1, "use_real": False}}
    c = run_config(old)
    assert (c.workdir, c.arch_config, c.crop_size, c.lr, c.max_steps, c.seed) == \
        (Path("/tmp/x/r"), {"widths": [8, 16]}, 48, 5e-4, 10, 4)
    assert c.time_budget_s == 120 and c.lr_final_fraction == 0.1 and not c.use_real
    with pytest.raises(InputError, match="extra_key"):
        run_config({**old, "extra": {"extra_key": 1}})  # a misspelt key of the free dict is an error now


def test_legacy_classify_layout_is_migrated():
    old = {"task": "classify", "name": "c", "out_dir": "runs", "model": {"name": "tipnet", "config": {}},
           "trainer": {"seed": 3}, "extra": {"labels": "e.csv", "images": "im", "method": "soft", "min_agreement": 0.4,
                                             "init": None, "classify": {"size": 32, "epochs": 2}}}
    c = run_config(old)
    assert c.workdir == Path("runs/c") and c.seed == 3 and c.classifier.size == 32 and c.classifier.seed == 3
    assert c.data.kind == "export" and c.data.labels == "e.csv" and c.data.images == "im"
    with pytest.raises(InputError, match="extra.lables"):
        run_config({**old, "extra": {"lables": "e.csv"}})


@pytest.mark.parametrize("task", sorted(TRAIN_CONFIGS))
def test_train_init_writes_the_default_configuration(task, tmp_path):
    from scopenet.cli.main import app

    out = tmp_path / f"{task}.yaml"
    r = CliRunner().invoke(app, ["train", "init", task, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(out.read_text())["task"] == task
    assert read_run_config(out) == default_run_config(task)
    r = CliRunner().invoke(app, ["train", "init", task, "-o", str(out)])
    assert r.exit_code == 1 and "exists" in r.output
    r = CliRunner().invoke(app, ["train", "nosuchtask", "--config", str(out)])
    assert r.exit_code == 1 and "unknown task" in r.output


# ------------------------------------------------------------------------------ tiny runs through the CLI
def _train(tmp_path, cfg: dict, *extra):
    from scopenet.cli.main import app

    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["train", cfg["task"], "--config", str(p), *extra])
    assert r.exit_code == 0, r.output
    return r


ENGINE = {"threads": 1, "accelerator": "cpu", "log_every": 1, "seed": 0}


def test_cli_trains_denoise(tmp_path):
    from scopenet.tasks.denoise import Denoiser

    cfg = {"task": "denoise", "workdir": str(tmp_path / "dn"), "arch_config": {"widths": [4, 8]}, "crop_size": 32,
           "batch_size": 2, "max_steps": 2, "time_budget_s": None, "n_sim_per_kind": 1, "sim_size": 64,
           "use_real": False, **ENGINE}
    _train(tmp_path, cfg)
    assert Denoiser.load(tmp_path / "dn" / "model").predict(np.random.rand(32, 32)).shape == (32, 32)
    assert read_run_config(tmp_path / "dn" / "run.yaml") == run_config(cfg)  # the run repeats from its folder
    _train(tmp_path, {**cfg, "max_steps": 3}, "--resume")
    assert (tmp_path / "dn" / "log.csv").read_text().split()[1:] and \
        [int(r.split(",")[0]) for r in (tmp_path / "dn" / "log.csv").read_text().split()[1:]] == [1, 2, 3]


def test_cli_trains_superres(tmp_path):
    from scopenet.tasks.superres import SuperResolver

    cfg = {"task": "superres", "workdir": str(tmp_path / "sr"), "layers": 2, "channels": 4, "batch_size": 2,
           "patch": 16, "max_steps": 2, "time_budget_s": None, "n_sim": 3, "n_real": 0, **ENGINE}
    _train(tmp_path, cfg)
    est = SuperResolver.load(tmp_path / "sr" / "model")
    assert est.predict(np.random.rand(8, 8).astype(np.float32), factor=2).shape == (16, 16)
    assert est.card_.training.steps == 2


def test_cli_trains_classify_from_simulated_files(tmp_path):
    from scopenet.tasks.classify import TipClassifier

    rng = np.random.default_rng(0)
    files = []
    for i in range(2):
        f = tmp_path / f"sim{i}.npz"
        np.savez(f, images=rng.normal(size=(12, 20, 20)).astype(np.float32),
                 labels6=rng.random((12, 6)).astype(np.float32), good=(rng.random(12) < 0.5),
                 artefact_visible=rng.random(12).astype(np.float32))
        files.append(str(f))
    cfg = {"task": "classify", "workdir": str(tmp_path / "gb"), **ENGINE,
           "classifier": {"size": 16, "channels": [4, 8], "dense": 8, "epochs": 2, "batch_size": 8, "ensemble": 2,
                          "line_aug_p": 0.5},
           "data": {"kind": "simulated", "files": files, "target": "good", "aux": True}}
    _train(tmp_path, cfg)
    clf = TipClassifier.load(tmp_path / "gb" / "model")
    assert clf.categories == ["bad", "good"] and clf.config.mode == "single" and len(clf.net_.members) == 2
    assert clf.predict_proba(rng.normal(size=(3, 20, 20))).shape == (3, 2)  # the auxiliary outputs are gone
    before = {k: v.clone() for k, v in clf.net_.state_dict().items()}
    _train(tmp_path, cfg, "--resume")  # a finished run resumed takes no step
    after = TipClassifier.load(tmp_path / "gb" / "model").net_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_classify_epoch_run_resumes_exactly(tmp_path):
    from scopenet.tasks.classify.config import ClassifierConfig
    from scopenet.tasks.classify.train import train_members

    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 1, 16, 16)).astype(np.float32)
    Y = rng.random((40, 2)).astype(np.float32)
    cfg = ClassifierConfig(categories=["a", "b"], size=16, channels=[4, 8], dense=8, epochs=3, batch_size=8,
                           dropout=0.2, line_aug_p=0.5)
    ref, hist = train_members((X, Y, None, None), cfg)

    class Stop(Exception):
        pass

    def stop(epoch, loss):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train_members((X, Y, None, None), cfg, checkpoint=tmp_path / "ck.ckpt", callback=stop)
    net, hist2 = train_members((X, Y, None, None), cfg, checkpoint=tmp_path / "ck.ckpt", resume=True)
    assert hist2 == hist
    for k, v in ref.state_dict().items():
        assert torch.equal(v, net.state_dict()[k]), k
