"""The training engine: configuration, data pipeline, schedules, module, train() façade and CLI."""
from __future__ import annotations

import math
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from scopenet.errors import InputError, ReadError
from scopenet.training.config import DataConfig, OptimConfig, RunConfig, TrainerConfig, resolve_precision
from scopenet.training.data import (ArrayImageDataset, dihedral_inverse, dihedral_tta, EpochSampler, ImageDataModule, ResumableDataLoader,
                                    dihedral, grouped_split, normalise_image, replace_nonfinite)
from scopenet.training.schedules import (DemonMomentum, cyclic_sawtooth, demon_beta, exponential_decay,
                                         make_lr_lambda, step_decay)

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------- config
def test_run_config_yaml_round_trip(tmp_path):
    cfg = RunConfig(task="denoise", name="r1", out_dir=tmp_path, model={"name": "unet", "config": {"depth": 2}},
                    data=DataConfig(crop_size=32, split=(0.6, 0.2, 0.2)),
                    optim=OptimConfig(optimizer="sgd", schedule="cyclic_sawtooth", clipper="alrc",
                                      clipper_params={"n_max": 3.0}),
                    trainer=TrainerConfig(max_epochs=3, precision="16-mixed", devices=2, strategy="ddp"))
    p = cfg.to_yaml(tmp_path / "run.yaml")
    back = RunConfig.from_yaml(p)
    assert back == cfg
    assert yaml.safe_load(p.read_text())["optim"]["clipper_params"] == {"n_max": 3.0}
    assert cfg.run_dir == tmp_path / "r1"


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="sum to 1"):
        DataConfig(split=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError):
        OptimConfig(schedule="cosine")
    with pytest.raises(ValueError):
        RunConfig(task="x", name="a/b")
    with pytest.raises(ReadError, match="no such"):
        RunConfig.from_yaml(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("task: [unclosed")
    with pytest.raises(ReadError, match="YAML"):
        RunConfig.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("task: denoise\ntrainer: {max_epoch: 3}\n")
    with pytest.raises(ReadError, match="max_epoch"):
        RunConfig.from_yaml(tmp_path / "typo.yaml")


def test_mixed_precision_falls_back_on_cpu():
    assert resolve_precision("32", "cpu") == "32"
    with pytest.warns(UserWarning, match="GPU"):
        assert resolve_precision("bf16-mixed", "cpu") == "32"
    assert resolve_precision("16-mixed", "cuda") == "16-mixed"


# ---------------------------------------------------------------------------------------------- data
def test_grouped_split_keeps_groups_together():
    rng = np.random.default_rng(0)
    groups = [f"file{g}" for g in rng.integers(0, 40, size=400)]
    tr, va, te = grouped_split(groups, (0.75, 0.15, 0.10), seed=1)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(400))
    sides = [{groups[i] for i in part} for part in (tr, va, te)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    np.testing.assert_allclose([len(tr) / 400, len(va) / 400, len(te) / 400], [0.75, 0.15, 0.10], atol=0.05)
    again = grouped_split(groups, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(again, (tr, va, te)))
    other = grouped_split(groups, seed=2)
    assert not np.array_equal(other[0], tr)


def test_grouped_split_edge_cases():
    tr, va, te = grouped_split(["a", "a", "b"], (1.0, 0.0, 0.0))
    assert tr.tolist() == [0, 1, 2] and va.size == 0 and te.size == 0
    with pytest.raises(InputError):
        grouped_split([], (0.75, 0.15, 0.10))
    with pytest.raises(InputError):
        grouped_split([1, 2], (0.5, 0.6, -0.1))


def test_nonfinite_and_normalisation():
    img = np.array([[1, np.nan], [np.inf, 3]], dtype=np.float32)
    out = replace_nonfinite(img)
    assert out.tolist() == [[1, 2], [2, 3]]
    assert replace_nonfinite(img, 0).tolist() == [[1, 0], [0, 3]]
    with pytest.raises(InputError):
        replace_nonfinite(np.full((2, 2), np.nan))
    z = normalise_image(np.arange(16.0).reshape(4, 4))
    assert abs(z.mean()) < 1e-6 and abs(z.std() - 1) < 1e-6
    m = normalise_image(np.arange(16.0).reshape(4, 4), "minmax")
    assert m.min() == 0 and m.max() == 1
    assert np.all(normalise_image(np.ones((3, 3))) == 0)
    with pytest.raises(InputError):
        normalise_image(img, "robust")


def test_dihedral_group_of_eight():
    a = np.arange(12.0).reshape(3, 4)
    outs = [dihedral(a, k) for k in range(8)]
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    assert np.array_equal(outs[0], a)
    assert np.array_equal(outs[1], np.rot90(a)) and np.array_equal(outs[4], a[:, ::-1])
    with pytest.raises(InputError):
        dihedral(a, 8)
    # the inverse undoes each transform, also with leading (channel) axes
    c = np.arange(24.0).reshape(2, 3, 4)
    for k in range(8):
        assert np.array_equal(dihedral_inverse(dihedral(c, k), k), c)
    with pytest.raises(InputError):
        dihedral_inverse(a, -1)


def test_dihedral_tta_maps_each_output_back():
    a = np.random.default_rng(0).normal(size=(5, 7))
    np.testing.assert_allclose(dihedral_tta(lambda x: 2 * x + 1, a), 2 * a + 1, rtol=1e-6)
    # a position-dependent function is averaged over the orientations: x + column index becomes
    # x + the mean of the column index and the row index (as seen by the transformed copies)
    # (column, row, 4 - column, 4 - row, each twice: 2 everywhere)
    out = dihedral_tta(lambda x: x + np.arange(x.shape[-1])[None, :], np.zeros((5, 5)))
    np.testing.assert_allclose(out, 2.0, atol=1e-6)
    # channels in, one image out; a subset of the transforms
    two = np.stack([a, 3 * a])
    np.testing.assert_allclose(dihedral_tta(lambda x: x[0] + x[1], two, ks=[0, 5]), 4 * a, rtol=1e-6)


def _pair(rng, crop):
    return crop + rng.normal(size=crop.shape), crop


def test_dataset_samples_are_pure_functions_of_seed_epoch_index():
    rng = np.random.default_rng(0)
    ims = [rng.normal(size=(30, 30)) for _ in range(3)]
    ims[1][5, 5] = np.nan
    ds = ArrayImageDataset(ims, crop_size=8, samples_per_image=2, pair_fn=_pair, seed=5)
    assert len(ds) == 6
    x1, y1 = ds[(3, 0)]
    x2, y2 = ds[(3, 0)]
    assert x1.shape == (1, 8, 8) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(ds[(3, 1)][1], y1)  # another epoch, another crop
    assert all(torch.isfinite(ds[(i, e)][1]).all() for i in range(6) for e in range(3))
    fixed = ArrayImageDataset(ims, crop_size=8, samples_per_image=2, seed=5, fixed=True)
    assert torch.equal(fixed[(2, 0)][0], fixed[(2, 7)][0])
    # samples of image k come from image k
    assert np.isin(ds[(4, 0)][1].numpy(), ds.images[2]).all()
    with pytest.raises(InputError, match="smaller"):
        ArrayImageDataset(ims, crop_size=31)
    with pytest.raises(InputError):
        ArrayImageDataset([])
    with pytest.raises(InputError, match="shape"):
        ArrayImageDataset([np.zeros((2, 3, 4, 5))])


def test_sampler_shards_global_batches_across_ranks():
    single = list(EpochSampler(20, batch_size=4, seed=3, rank=0, world_size=1))
    r0 = list(EpochSampler(20, batch_size=2, seed=3, rank=0, world_size=2))
    r1 = list(EpochSampler(20, batch_size=2, seed=3, rank=1, world_size=2))
    assert len(single) == 20 and len(r0) == len(r1) == 10
    for b in range(5):
        assert single[4 * b:4 * b + 4] == r0[2 * b:2 * b + 2] + r1[2 * b:2 * b + 2]
    s = EpochSampler(20, batch_size=4, seed=3)
    s.set_epoch(1)
    e1 = list(s)
    assert e1 != single and sorted(k for k, _ in e1) == list(range(20)) and {e for _, e in e1} == {1}
    s.start_batch = 3
    assert list(s) == e1[12:]
    assert list(s) == e1  # the skip applies once
    assert EpochSampler(10, 4, rank=0, world_size=1).num_batches() == 2  # incomplete batch dropped


def test_loader_state_resumes_mid_epoch():
    ims = [np.random.default_rng(i).normal(size=(20, 20)) for i in range(4)]
    ds = ArrayImageDataset(ims, crop_size=8, samples_per_image=4, pair_fn=_pair)
    full = [b[0] for b in ResumableDataLoader(ds, EpochSampler(len(ds), 2, seed=1))]
    dl = ResumableDataLoader(ds, EpochSampler(len(ds), 2, seed=1))
    it = iter(dl)
    [next(it) for _ in range(3)]
    state = dl.state_dict()
    assert state == {"epoch": 0, "batches": 3}
    fresh = ResumableDataLoader(ds, EpochSampler(len(ds), 2, seed=1))
    fresh.load_state_dict(state)
    rest = [b[0] for b in fresh]
    assert len(rest) == len(full) - 3
    assert all(torch.equal(a, b) for a, b in zip(rest, full[3:]))
    assert fresh.state_dict() == {"epoch": 0, "batches": len(full)}


def test_worker_prefetching_gives_identical_batches():
    ims = [np.random.default_rng(i).normal(size=(20, 20)) for i in range(2)]
    ds = ArrayImageDataset(ims, crop_size=8, samples_per_image=4, pair_fn=_pair)
    a = [b[0] for b in ResumableDataLoader(ds, EpochSampler(len(ds), 2, seed=1))]
    b = [b[0] for b in ResumableDataLoader(ds, EpochSampler(len(ds), 2, seed=1), num_workers=2)]
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and len(a) == len(b) == 4


def test_datamodule_from_images_splits_by_group():
    ims = [np.full((16, 16), float(i)) + np.random.default_rng(i).normal(size=(16, 16)) for i in range(20)]
    groups = [i // 2 for i in range(20)]
    dm = ImageDataModule.from_images(ims, DataConfig(crop_size=8, batch_size=2, samples_per_image=1), groups=groups)
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 20
    assert dm.steps_per_epoch() == len(dm.train_set) // 2 and dm.steps_per_epoch(2) == len(dm.train_set) // 4
    with pytest.raises(InputError, match="group labels"):
        ImageDataModule.from_images(ims, DataConfig(crop_size=8), groups=[0])


# ---------------------------------------------------------------------------------------------- schedules
def test_schedule_reference_values():
    assert step_decay(0, step_size=10) == 1 and step_decay(25, step_size=10, gamma=0.1) == pytest.approx(0.01)
    assert exponential_decay(50, decay_steps=100, gamma=0.25) == pytest.approx(0.5)
    # Ede adaptive scans: M = 900 steps, envelope 0.75**(5m/M), triangle of period 2M/9 = 200 in [0.2, 1]
    M = 900
    assert cyclic_sawtooth(0, M) == pytest.approx(1.0)
    assert cyclic_sawtooth(50, M) == pytest.approx(0.75 ** (50 / 180) * 0.6)
    assert cyclic_sawtooth(100, M) == pytest.approx(0.75 ** (100 / 180) * 0.2)
    assert cyclic_sawtooth(200, M) == pytest.approx(0.75 ** (200 / 180) * 1.0)
    assert cyclic_sawtooth(899, M) == pytest.approx(0.75 ** (899 / 180) * (0.2 + 0.8 * 0.01))  # r = 99, one step before the trough
    # DEMON: beta_t = b (1 - t/T) / ((1 - b) + b (1 - t/T))
    assert demon_beta(0, 100, 0.9) == pytest.approx(0.9)
    assert demon_beta(50, 100, 0.9) == pytest.approx(0.45 / 0.55)
    assert demon_beta(100, 100, 0.9) == 0.0
    assert make_lr_lambda("none", 10) is None and make_lr_lambda("demon", 10) is None
    assert make_lr_lambda("step", 80)(10) == pytest.approx(0.5)  # eight steps over the run
    with pytest.raises(InputError):
        make_lr_lambda("cosine", 10)


def test_demon_callback_sets_adam_and_sgd_momentum():
    p = [torch.nn.Parameter(torch.zeros(1))]
    adam, sgd = torch.optim.Adam(p, betas=(0.9, 0.99)), torch.optim.SGD(p, lr=0.1, momentum=0.9)
    cb = DemonMomentum(beta_init=0.9, total_steps=100)
    cb.on_train_batch_start(SimpleNamespace(global_step=50, optimizers=[adam, sgd]), None, None, 0)
    assert adam.param_groups[0]["betas"] == (pytest.approx(0.45 / 0.55), 0.99)
    assert sgd.param_groups[0]["momentum"] == pytest.approx(0.45 / 0.55)


# ---------------------------------------------------------------------------------------------- module
def test_module_losses_and_clipper_hook():
    from scopenet.training.module import ImageToImageModule, elementwise_loss, psnr_per_example

    pred, target = torch.tensor([[[[1.0, 3.0]]], [[[0.0, 0.0]]]]), torch.zeros(2, 1, 1, 2)
    m = ImageToImageModule(torch.nn.Identity(), loss="quartic")
    assert m.per_example_loss(pred, target).tolist() == [41.0, 0.0]
    assert elementwise_loss("l1")(pred, target).sum() == 4
    with pytest.raises(InputError):
        elementwise_loss("huber2")
    t = torch.tensor([[[[0.0, 1.0]]]])
    assert psnr_per_example(t + 0.1, t).item() == pytest.approx(20.0)

    class Halve(torch.nn.Module):
        def forward(self, losses):
            return losses / 2

    m = ImageToImageModule(torch.nn.Identity(), loss="mse", clipper=Halve())
    m.log = lambda *a, **k: None
    loss = m.training_step((pred, target), 0)
    assert loss.item() == pytest.approx((5.0 + 0.0) / 2 / 2)


# ---------------------------------------------------------------------------------------------- train()
def _tiny_setup(tmp_path, **trainer):
    from scopenet.nn import UNet
    from scopenet.training.module import ImageToImageModule

    rng = np.random.default_rng(0)
    ims = [rng.normal(size=(24, 24)) for _ in range(10)]
    cfg = RunConfig(task="test", name="t", out_dir=tmp_path,
                    data=dict(crop_size=8, batch_size=4, samples_per_image=2, split=(0.8, 0.2, 0.0)),
                    trainer=dict(accelerator="cpu", devices=1, log_every=1, **trainer))
    dm = ImageDataModule.from_images(ims, cfg.data, pair_fn=_pair)
    return cfg, dm, ImageToImageModule(UNet(depth=1, base_channels=2, norm="none"), optim=cfg.optim)


def test_train_writes_run_directory(tmp_path):
    from scopenet.training.trainer import train

    cfg, dm, module = _tiny_setup(tmp_path, max_epochs=2, checkpoint_every_n_steps=2)
    r = train(cfg, dm, module, enable_progress_bar=False)
    assert r.global_step == 8 and r.epochs == 2
    assert RunConfig.from_yaml(r.config_path) == cfg
    assert r.last_checkpoint.is_file() and r.best_checkpoint.is_file()
    assert {"train_loss", "val_loss", "val_psnr"} <= r.metrics.keys()
    assert math.isfinite(r.metrics["val_loss"])
    assert (r.run_dir / "logs" / "csv" / "metrics.csv").is_file()
    assert list((r.run_dir / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert r.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="resume"):
        train(cfg, dm, module, enable_progress_bar=False)


def test_resume_without_checkpoint_is_an_error(tmp_path):
    from scopenet.training.trainer import train

    cfg, dm, module = _tiny_setup(tmp_path, max_epochs=1)
    with pytest.raises(InputError, match="no checkpoint"):
        train(cfg, dm, module, resume=True, enable_progress_bar=False)


def test_early_stopping_stops_when_validation_stalls(tmp_path):
    from scopenet.training.trainer import train

    cfg, dm, module = _tiny_setup(tmp_path, max_epochs=10, early_stopping_patience=1)
    cfg.optim = OptimConfig(optimizer="sgd", lr=1e-30, betas=(0.0, 0.999))  # weights cannot change
    module.optim_config = cfg.optim
    r = train(cfg, dm, module, enable_progress_bar=False)
    assert r.epochs == 2  # best at epoch 0, no improvement at epoch 1 -> stop


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_train_dispatches_to_task_entry_point(tmp_path, monkeypatch):
    from scopenet.cli import train_cmds
    from scopenet.cli.main import app

    calls = []
    pkg = types.ModuleType("scopenet.tasks.faketask")
    mod = types.ModuleType("scopenet.tasks.faketask.train")
    mod.main = lambda config, resume: calls.append((config, resume))
    mod.default_config = lambda: RunConfig(task="faketask", name="fk", trainer=TrainerConfig(max_epochs=7))
    monkeypatch.setitem(sys.modules, "scopenet.tasks.faketask", pkg)
    monkeypatch.setitem(sys.modules, "scopenet.tasks.faketask.train", mod)
    monkeypatch.setattr(train_cmds, "known_tasks", lambda: ["faketask"])
    runner = CliRunner()
    out = tmp_path / "run.yaml"
    r = runner.invoke(app, ["train", "init", "faketask", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert RunConfig.from_yaml(out).trainer.max_epochs == 7
    r = runner.invoke(app, ["train", "init", "faketask", "-o", str(out)])
    assert r.exit_code == 1 and "exists" in r.output
    r = runner.invoke(app, ["train", "faketask", "--config", str(out), "--resume"])
    assert r.exit_code == 0, r.output
    assert calls[0][0].task == "faketask" and calls[0][1] is True
    r = runner.invoke(app, ["train", "nosuchtask", "--config", str(out)])
    assert r.exit_code == 1 and "unknown task" in r.output and "faketask" in r.output
    r = runner.invoke(app, ["train", "faketask"])
    assert r.exit_code == 1 and "--config" in r.output


def test_module_uses_alrc_from_config():
    pytest.importorskip("scopenet.training.alrc")
    from scopenet.training.module import ImageToImageModule

    optim = OptimConfig(clipper="alrc", clipper_params={"n_max": 3.0, "mu1_init": 1.0, "mu2_init": 1.01})
    m = ImageToImageModule(torch.nn.Identity(), loss="mse", optim=optim)
    assert "clipper.mu1" in m.state_dict()  # moments travel with checkpoints
    m.log = lambda *a, **k: None
    pred = torch.tensor([[[[1.0, 3.0]]], [[[0.0, 0.0]]]])  # example losses 5 and 0
    loss = m.training_step((pred, torch.zeros(2, 1, 1, 2)), 0)
    # L_max = mu1 + 3 sigma = 1 + 3 * 0.1 = 1.3 replaces the spike of 5; the mean over examples is 0.65
    assert loss.item() == pytest.approx(0.65, rel=1e-5)


def test_group_labels_from_micrograph_sources_and_stacks():
    from scopenet.image.micrograph import Micrograph
    from scopenet.training.data import expand_stacks, group_labels

    rng = np.random.default_rng(0)
    ims = [Micrograph(rng.normal(size=(16, 16)), source=f"f{i % 3}.sxm") for i in range(9)]
    ims.append(Micrograph(rng.normal(size=(4, 16, 16)), source="stack.dm4"))
    ims.append(rng.normal(size=(16, 16)))
    labels = group_labels(ims)
    assert labels[0] == labels[3] == ("file", "f0.sxm") and labels[-1] == ("image", 10)
    frames, groups = expand_stacks(ims, labels)
    assert len(frames) == 14 and groups[9:13] == [("file", "stack.dm4")] * 4
    dm = ImageDataModule.from_images(ims, DataConfig(crop_size=8, batch_size=1, samples_per_image=1,
                                                     split=(0.5, 0.25, 0.25)))
    # the four frames of the stack all sit in one part
    parts = [ds.images if ds is not None else [] for ds in (dm.train_set, dm.val_set, dm.test_set)]
    assert sorted(len(p) for p in parts) != [0, 0, 14]
    stack_frames = {normalise_image(f).tobytes() for f in frames[9:13]}
    holders = [sum(a.tobytes() in stack_frames for a in p) for p in parts]
    assert sorted(holders) == [0, 0, 4]
    assert metadata_group_example() == [("file", "A"), ("file", "A"), ("image", 2)]


def metadata_group_example():
    from scopenet.image.micrograph import Micrograph
    from scopenet.training.data import group_labels

    ims = [Micrograph(np.zeros((4, 4)), metadata={"sample": "A"}) for _ in range(2)] + [Micrograph(np.zeros((4, 4)))]
    return group_labels(ims, "sample")
