"""Behaviour of the tip-state classifier: preprocessing, losses, training, persistence, CAMs, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from scopenet.errors import InputError, ReadError, WriteError
from scopenet.nn.cnn import TipNet, TipResNet
from scopenet.tasks.classify import ClassifierConfig, TipClassifier, classify
from scopenet.tasks.classify.model import soft_bce, soft_cross_entropy
from scopenet.training.schedules import one_cycle
from scopenet.tasks.classify.preprocess import (
    dihedral,
    flatten_x,
    line_artefacts,
    prepare,
    random_dihedral,
    standardise,
)

SMALL = {"size": 16, "channels": [4, 8, 8], "dense": 16, "dropout": 0.0, "batch_size": 32, "line_aug_p": 0.0}


def blob_set(n: int, seed: int, size: int = 16):
    """Noise images with a 3x3 blob at a random place: bright for class 1, dark for class 0.

    Both classes have the same pixel statistics (no shortcut through per-image standardisation);
    only the blob tells them apart. Returns (images [n, size, size], labels [n], blob centres [n, 2]).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, size, size)).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.float32)
    centres = rng.integers(3, size - 3, (n, 2))
    for i in range(n):
        r, c = centres[i]
        x[i, r - 1:r + 2, c - 1:c + 2] += 6.0 if y[i] else -6.0
    return x, y, centres


@pytest.fixture(scope="module")
def blob_model():
    x, y, _ = blob_set(192, 0, 32)
    # seed 2: the CAM and fine-tuning checks below are statistical (on the engine's batch stream seed 0 gives a
    # model whose CAMs land 5.5 px from the blobs, seed 1 one that is 90 % right on the fine-tuning test set)
    clf = TipClassifier(categories=["blob"], epochs=4, lr=1e-2, seed=2, **{**SMALL, "size": 32, "channels": [8, 8, 16]})
    clf.fit(x, y[:, None])
    return clf


# ----------------------------------------------------------------------------- preprocessing
def test_flatten_x_removes_per_line_tilts_and_offsets():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 30))
    tilted = base + rng.normal(size=(20, 1)) * 5 + rng.normal(size=(20, 1)) * np.linspace(-1, 1, 30)[None]
    np.testing.assert_allclose(flatten_x(tilted), flatten_x(base), atol=1e-10)
    f = flatten_x(tilted)
    np.testing.assert_allclose(f.mean(1), 0, atol=1e-10)


def test_prepare_shapes_and_standardisation():
    imgs = [np.random.default_rng(1).normal(size=(128, 128)), np.random.default_rng(3).random((21, 300))]
    x = prepare(imgs, 32)
    assert x.shape == (2, 1, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean((1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std((1, 2, 3)), 1, atol=1e-3)
    # exact 2x2 block means for 128 -> 64
    z = np.random.default_rng(2).normal(size=(128, 128))
    ref = standardise(flatten_x(z).reshape(64, 2, 64, 2).mean((1, 3)))
    np.testing.assert_allclose(prepare(z, 64, flatten=True)[0, 0], ref, atol=1e-5)


def test_prepare_refuses_bad_input():
    with pytest.raises(InputError):
        prepare(np.zeros((2, 3, 4, 5)), 32)
    with pytest.raises(InputError):
        prepare(np.full((8, 8), np.nan), 32)
    with pytest.raises(InputError):
        prepare(np.zeros((8, 8)), 4)


def test_dihedral_group_has_eight_distinct_members():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8
    assert torch.equal(dihedral(x, 0), x)
    assert torch.equal(dihedral(dihedral(x, 1), 3), x)  # quarter turns compose
    y = random_dihedral(torch.randn(10, 1, 6, 6), torch.Generator().manual_seed(0))
    assert y.shape == (10, 1, 6, 6)


def test_line_artefacts_act_along_rows_and_restandardise():
    x = torch.zeros(4, 1, 32, 32)
    x[..., ::2] = 1.0
    x = (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True)
    y = line_artefacts(x, p=1.0, offset_std=2.0, noise_std=0.0, generator=torch.Generator().manual_seed(0))
    # without line noise the added signal is constant along every row: the within-row contrast of
    # the alternating columns stays the same in every row (only rescaled per image)
    d = y[..., 0::2] - y[..., 1::2]
    assert float((d - d.mean((2, 3), keepdim=True)).abs().max()) < 1e-4
    assert not torch.allclose(y, x, atol=1e-2)
    np.testing.assert_allclose(y.mean((1, 2, 3)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(y.std((1, 2, 3)).numpy(), 1, atol=1e-4)


# ----------------------------------------------------------------------------- losses and schedule
def test_soft_bce_is_minimised_at_the_soft_label():
    t = torch.tensor([[0.3, 0.8]])
    z = torch.logit(t).clone().requires_grad_(True)
    soft_bce(z, t).backward()
    assert float(z.grad.abs().max()) < 1e-6
    assert float(soft_bce(torch.logit(t), t)) < float(soft_bce(torch.zeros(1, 2), t))
    w = torch.tensor([1.0, 0.0])
    both = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    tt = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(float(soft_bce(both, tt, w)), np.log(2), rtol=1e-6)


def test_soft_cross_entropy_matches_hard_cross_entropy_for_one_hot():
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 2, 1, 1, 0])
    ref = torch.nn.functional.cross_entropy(z, y)
    np.testing.assert_allclose(float(soft_cross_entropy(z, torch.eye(3)[y])), float(ref), rtol=1e-6)


def test_one_cycle_schedule_shape():
    lr = [one_cycle(s, 100, 1.0) for s in range(100)]
    assert lr[0] == pytest.approx(1 / 25)
    assert max(lr) == pytest.approx(1.0, rel=1e-3) and int(np.argmax(lr)) == 30
    assert lr[-1] < 1e-3


# ----------------------------------------------------------------------------- training and inference
def test_trained_model_beats_chance_on_a_separable_set(blob_model):
    x, y, _ = blob_set(100, 1, 32)
    p = blob_model.predict_proba(x)[:, 0]
    assert ((p >= 0.5) == (y == 1)).mean() > 0.9
    assert blob_model.history_[-1] < blob_model.history_[0]


def test_predict_shapes_multi_and_single():
    x, y, _ = blob_set(40, 2)
    m = TipClassifier(categories=["a", "b", "c"], epochs=1, **SMALL)
    m.fit(x, np.random.default_rng(0).random((40, 3)))
    assert m.predict_proba(x).shape == (40, 3)
    assert m.predict(x).dtype == bool and m.predict(x).shape == (40, 3)
    s = TipClassifier(categories=["bad", "good"], mode="single", epochs=1, **SMALL)
    s.fit(x, y.astype(int))
    p = s.predict_proba(x, tta=True)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    assert s.predict(x).shape == (40,) and set(np.unique(s.predict(x))) <= {0, 1}
    df = classify(x[:3], s)
    assert list(df.columns) == ["bad", "good", "labels", "domain_score", "in_domain", "reason"] and len(df) == 3
    assert df["in_domain"].all() and df["domain_score"].isna().all()  # a new model has no domain check


def test_fit_refuses_bad_labels():
    x, _, _ = blob_set(8, 0)
    m = TipClassifier(categories=["a", "b"], epochs=1, **SMALL)
    with pytest.raises(InputError, match="shape"):
        m.fit(x, np.zeros((8, 3)))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        m.fit(x, np.full((8, 2), 2.0))
    with pytest.raises(InputError, match="not trained"):
        m.predict_proba(x)


def test_save_load_gives_identical_outputs(blob_model, tmp_path):
    x, _, _ = blob_set(20, 3, 32)
    blob_model.save(tmp_path / "m", metrics={"toy": 1.0})
    back = TipClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(x), blob_model.predict_proba(x))
    assert back.config == blob_model.config and back.card_.metrics.values == {"toy": 1.0}
    with pytest.raises(WriteError, match="exists"):
        blob_model.save(tmp_path / "m")  # no silent overwrite


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    x, y, _ = blob_set(64, 4)
    cfg = dict(categories=["blob"], epochs=2, **{**SMALL, "line_aug_p": 0.5})
    ref = TipClassifier(**cfg).fit(x, y[:, None])

    class Stop(Exception):
        pass

    def stop_after_first(epoch, loss):
        if epoch == 0:
            raise Stop

    ck = tmp_path / "ck.pt"
    with pytest.raises(Stop):
        TipClassifier(**cfg).fit(x, y[:, None], checkpoint=ck, callback=stop_after_first)
    resumed = TipClassifier(**cfg).fit(x, y[:, None], checkpoint=ck, resume=True)
    assert resumed.history_ == pytest.approx(ref.history_, rel=1e-5)
    np.testing.assert_allclose(resumed.predict_proba(x), ref.predict_proba(x), atol=1e-5)


def test_cam_is_normalised_and_peaks_on_the_blob(blob_model):
    x, y, centres = blob_set(40, 5, 32)
    idx = np.flatnonzero(y == 1)
    cams = blob_model.cam(x[idx], "blob")
    assert cams.shape == (len(idx), 32, 32)
    assert cams.min() >= 0 and cams.max() <= 1 + 1e-6
    dist = [np.hypot(*(np.array(np.unravel_index(c.argmax(), c.shape)) - centres[i])) for c, i in zip(cams, idx)]
    # the last feature map has 4-pixel cells; a CAM blind to the blob would sit ~12 px away
    assert np.median(dist) <= 5.0
    with pytest.raises(InputError):
        blob_model.cam(x[:1], "nope")


def test_config_yaml_round_trip(tmp_path):
    cfg = ClassifierConfig(size=32, mode="single", categories=["bad", "good"])
    assert ClassifierConfig.from_yaml(cfg.to_yaml(tmp_path / "c.yaml")) == cfg
    (tmp_path / "bad.yaml").write_text("size: -3\n")
    with pytest.raises(ReadError, match="bad.yaml"):
        ClassifierConfig.from_yaml(tmp_path / "bad.yaml")


def test_stem_stride_halves_the_feature_map_and_keeps_outputs():
    from scopenet.nn.cnn import TipNet

    x = torch.randn(3, 1, 32, 32)
    slow, fast = TipNet(2, channels=[4, 8, 8]).eval(), TipNet(2, channels=[4, 8, 8], stem_stride=2).eval()
    assert slow.features(x).shape[-2:] == (8, 8)
    assert fast.features(x).shape[-2:] == (4, 4)
    assert fast(x).shape == (3, 2)
    with pytest.raises(ValueError, match="stem_stride"):
        TipNet(2, stem_stride=3)


def test_channels_last_inference_matches_plain_forward(blob_model):
    x, _, _ = blob_set(20, seed=7)
    X = prepare(x, 16)
    with torch.inference_mode():
        ref = blob_model.net_.to(memory_format=torch.contiguous_format)(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(blob_model.predict_logits(X, inputs_prepared=True), ref, atol=1e-4)


def test_single_mode_class_weight_shifts_predictions_towards_the_weighted_class():
    # small and cheap on purpose (8x8 inputs, two conv blocks): only the loss weighting is under test
    x = np.random.default_rng(3).normal(size=(96, 8, 8)).astype(np.float32)
    y = (np.random.default_rng(0).random(96) < 0.3).astype(np.float32)  # labels unrelated to the images
    kw = dict(SMALL, size=8, channels=[4, 8], dense=8, batch_size=16, lr=1e-2, mode="single", categories=["a", "b"],
              epochs=3, seed=0)
    plain = TipClassifier(**kw).fit(x, y)
    heavy = TipClassifier(**kw, pos_weight=[1.0, 10.0]).fit(x, y)  # b now outweighs a 30:7
    assert plain.predict(x).mean() < 0.5 < heavy.predict(x).mean()
    with pytest.raises(InputError, match="class weights"):
        TipClassifier(**kw, pos_weight=[1.0]).fit(x, y)


def test_auxiliary_targets_are_trained_then_dropped(tmp_path):
    x = np.random.default_rng(3).normal(size=(64, 8, 8)).astype(np.float32)
    y = (np.random.default_rng(0).random(64) < 0.4).astype(np.float32)
    aux = np.random.default_rng(1).random((64, 3)).astype(np.float32)
    kw = dict(SMALL, size=8, channels=[4, 8], dense=8, batch_size=16, mode="single", categories=["a", "b"],
              epochs=2, seed=0)
    with_aux = TipClassifier(**kw).fit(x, y, aux=aux, aux_weight=0.5)
    plain = TipClassifier(**kw).fit(x, y)
    assert with_aux.net_.out.out_features == 2 and with_aux.predict_proba(x).shape == (64, 2)
    # same seed and data: only the auxiliary loss differs, so the networks do too
    assert not np.allclose(with_aux.predict_proba(x), plain.predict_proba(x))
    with_aux.save(tmp_path / "m")
    back = TipClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.predict_proba(x), with_aux.predict_proba(x), atol=1e-6)
    with pytest.raises(InputError, match="aux"):
        TipClassifier(**kw).fit(x, y, aux=aux[:10])
    with pytest.raises(InputError, match="aux"):
        TipClassifier(**kw).fit(x, y, aux=aux * 2)


def test_fine_tuning_starts_from_the_init_models_weights(blob_model, tmp_path):
    x, y, _ = blob_set(96, 5, 32)
    arch = {**SMALL, "size": 32, "channels": [8, 8, 16]}
    # a vanishing learning rate: the weights stay those of the init model, so it classifies at once
    ft = TipClassifier(categories=["blob"], epochs=1, lr=1e-9, **arch).fit(x, y[:, None], init=blob_model)
    src, got = blob_model.net_.state_dict(), ft.net_.state_dict()
    for k, v in src.items():
        if v.dtype.is_floating_point and "running" not in k:
            torch.testing.assert_close(got[k], v, atol=1e-6, rtol=0)
    x2, y2, _ = blob_set(100, 6, 32)
    assert ((ft.predict_proba(x2)[:, 0] >= 0.5) == (y2 == 1)).mean() > 0.9
    scratch = TipClassifier(categories=["blob"], epochs=1, lr=1e-9, **arch).fit(x, y[:, None])
    assert ((scratch.predict_proba(x2)[:, 0] >= 0.5) == (y2 == 1)).mean() < 0.75
    # by path, with other categories: the convolutions come along, the output layer starts afresh
    blob_model.save(tmp_path / "pre")
    two = TipClassifier(categories=["a", "b"], epochs=1, lr=1e-9, **arch)
    two.fit(x, np.stack([y, 1 - y], 1), init=tmp_path / "pre")
    torch.testing.assert_close(two.net_.state_dict()["fc1.weight"], src["fc1.weight"], atol=1e-6, rtol=0)
    assert two.net_.out.out_features == 2
    with pytest.raises(InputError, match="different network"):
        TipClassifier(categories=["blob"], epochs=1, **{**arch, "channels": [8, 8, 8]}).fit(
            x, y[:, None], init=blob_model)
    with pytest.raises(ReadError):
        TipClassifier(categories=["blob"], epochs=1, **arch).fit(x, y[:, None], init=tmp_path / "missing")


def test_ensemble_averages_independently_seeded_members(tmp_path):
    x, y, _ = blob_set(96, 7, 32)
    arch = {**SMALL, "size": 32, "channels": [8, 8, 16], "categories": ["blob"], "epochs": 2, "lr": 1e-2}
    ens = TipClassifier(ensemble=3, **arch).fit(x, y[:, None], checkpoint=tmp_path / "ck.pt")
    single = TipClassifier(**arch).fit(x, y[:, None])
    members = ens.net_.members
    assert len(members) == 3 and len(ens.history_) == 2
    assert sorted(p.name for p in tmp_path.glob("ck.m*.pt")) == ["ck.m0.pt", "ck.m1.pt", "ck.m2.pt"]
    # member 0 has the configured seed, so it is the single model; the others differ
    for k, v in single.net_.state_dict().items():
        torch.testing.assert_close(members[0].state_dict()[k], v)
    assert not torch.equal(members[1].state_dict()["fc1.weight"], members[0].state_dict()["fc1.weight"])
    xt = torch.from_numpy(ens._inputs(x[:8]))
    with torch.no_grad():
        mean = torch.stack([m.eval()(xt) for m in members]).mean(0).numpy()
    np.testing.assert_allclose(ens.predict_logits(x[:8]), mean, atol=1e-5)
    ens.save(tmp_path / "ens")
    back = TipClassifier.load(tmp_path / "ens")
    assert back.config.ensemble == 3 and back.net_.config["n"] == 3
    np.testing.assert_allclose(back.predict_proba(x), ens.predict_proba(x), atol=1e-6)
    cam = back.cam(x[:4], "blob")
    assert cam.shape == (4, 32, 32) and cam.min() >= 0 and np.allclose(cam.max((1, 2)), 1)
    # fine-tuning: every member starts from a single init model; an ensemble init must match in size
    ft = TipClassifier(ensemble=2, **{**arch, "lr": 1e-9, "epochs": 1}).fit(x, y[:, None], init=single)
    for m in ft.net_.members:
        torch.testing.assert_close(m.state_dict()["fc1.weight"], single.net_.state_dict()["fc1.weight"],
                                   atol=1e-6, rtol=0)
    assert ft.card_.training.init == ["in-memory model"] * 2
    # a start per member: the second from scratch (its weights differ from the init's)
    single.save(tmp_path / "one")
    mix = TipClassifier(ensemble=2, **{**arch, "lr": 1e-9, "epochs": 1}).fit(x, y[:, None],
                                                                           init=[tmp_path / "one", None])
    assert mix.card_.training.init == ["one", None]
    w0 = single.net_.state_dict()["fc1.weight"]
    torch.testing.assert_close(mix.net_.members[0].state_dict()["fc1.weight"], w0, atol=1e-6, rtol=0)
    assert not torch.allclose(mix.net_.members[1].state_dict()["fc1.weight"], w0)
    assert mix.fit(x, y[:, None]).card_.training.init is None  # refitting from scratch forgets the starts
    with pytest.raises(InputError, match="needs one network"):
        TipClassifier(ensemble=2, **arch).fit(x, y[:, None], init=[ens, None])
    with pytest.raises(InputError, match="ensemble of 3"):
        TipClassifier(ensemble=2, **arch).fit(x, y[:, None], init=ens)
    with pytest.raises(InputError, match="2 models for an ensemble of 3"):
        TipClassifier(ensemble=3, **arch).fit(x, y[:, None], init=[single, None])
    with pytest.raises(InputError, match="one architecture"):
        from scopenet.nn.ensemble import LogitEnsemble

        LogitEnsemble.of([single.net_, TipClassifier(**{**arch, "channels": [8, 8, 8]}).fit(x, y[:, None]).net_])


# ----------------------------------------------------------------------------- scan-line branch
def test_line_stats_sort_rows_and_columns_and_swap_them_under_transposition():
    from scopenet.nn.cnn import LineStats

    ls = LineStats(1, channels=3, k=4).eval()
    with torch.no_grad():  # a transposition-symmetric 3x3 kernel: transposing the input transposes the map
        w = ls.conv[0].weight
        w.copy_(w + w.transpose(-1, -2))
    x = torch.randn(2, 1, 12, 12)
    out = ls(x)
    assert out.shape == (2, 2 * 3 * 4)
    blocks = out.view(2, 2, 3, 4)
    assert torch.all(blocks[..., :-1] >= blocks[..., 1:])  # each channel's lines, strongest first
    swapped = ls(x.transpose(-1, -2)).view(2, 2, 3, 4)
    torch.testing.assert_close(swapped[:, 0], blocks[:, 1])
    torch.testing.assert_close(swapped[:, 1], blocks[:, 0])
    with pytest.raises(ValueError, match="at least 4 lines"):
        ls(torch.randn(1, 1, 3, 12))


def scar_set(n: int, seed: int, size: int = 16):
    """Noise images with 1-2 (class 0) or 5-6 (class 1) short scars on distinct lines."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, size, size)).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.float32)
    for i in range(n):
        lines = rng.choice(size, rng.integers(5, 7) if y[i] else rng.integers(1, 3), replace=False)
        for r in lines:
            c = rng.integers(0, size - 5)
            x[i, r, c:c + 5] += rng.choice([-5.0, 5.0])
    return x, y


def test_line_branch_learns_to_count_scarred_lines_and_round_trips(tmp_path):
    x, y = scar_set(384, 0)
    xt, yt = scar_set(128, 1)
    kw = dict(SMALL, channels=[4, 8], dense=16, lr=1e-2, mode="single", categories=["few", "many"], epochs=12,
              line_k=4, seed=0)
    clf = TipClassifier(**kw).fit(x, y)
    assert clf.net_.lines is not None
    assert (clf.predict(xt) == yt).mean() >= 0.85
    clf.save(tmp_path / "m")
    back = TipClassifier.load(tmp_path / "m")
    assert back.config.line_k == 4
    np.testing.assert_allclose(back.predict_proba(xt), clf.predict_proba(xt), atol=1e-6)
    assert back.cam(xt[:3], "many").shape == (3, 16, 16)
    with pytest.raises(InputError, match="line_k"):
        TipClassifier(**{**kw, "arch": "tipresnet"}).fit(x, y)


def test_fast_cpu_inference_matches_the_eager_network(blob_model):
    import copy

    from scopenet.nn.ensemble import LogitEnsemble
    from scopenet.nn.fast import cpu_fast_forward

    x = torch.randn(5, 1, 16, 16)
    res = TipResNet(n_classes=3, widths=(4, 8)).eval()
    lined = TipNet(n_classes=2, channels=(4, 8), line_k=2).eval()
    for net in (blob_model.net_, res, lined, LogitEnsemble.of([res, copy.deepcopy(res)]).eval()):
        fast = cpu_fast_forward(net)
        assert fast is not None, type(net).__name__
        with torch.inference_mode():
            torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-4)
    assert cpu_fast_forward(res.train()) is None  # dropout/BN statistics: training mode stays eager


def test_predict_uses_the_fast_path_with_the_same_outputs_and_follows_a_new_network(blob_model, tmp_path):
    x = np.random.default_rng(3).normal(size=(7, 16, 16)).astype(np.float32)
    blob_model.save(tmp_path / "m")
    clf = TipClassifier.load(tmp_path / "m")
    p_fast, p_eager = clf.predict_proba(x), _eager(clf).predict_proba(x)
    assert clf._fast[1] is not None  # the fast forward was built, checked against the eager net and kept
    np.testing.assert_allclose(p_fast, p_eager, atol=1e-5)
    # a network swapped in (as fit() does) is not served by the old fast copy
    clf.net_ = TipClassifier.load(tmp_path / "m").net_
    with torch.no_grad():
        for prm in clf.net_.parameters():
            prm.mul_(0.5)
    p_new = clf.predict_proba(x)
    np.testing.assert_allclose(p_new, _eager(clf).predict_proba(x), atol=1e-5)
    assert np.abs(p_new - p_fast).max() > 1e-3


def _eager(clf: TipClassifier) -> TipClassifier:
    e = TipClassifier(clf.config)
    e.net_, e.card_, e.fast_cpu = clf.net_, clf.card_, False
    return e


def test_tta_views_follow_the_card_and_the_scan_line_order(blob_model):
    from scopenet.image.tta import TTA_ORDER

    x = np.random.default_rng(4).normal(size=(6, 16, 16)).astype(np.float32)
    X = blob_model._inputs(x)
    net = blob_model.net_.eval()
    with torch.no_grad():
        per_view = [net(dihedral(torch.from_numpy(X), k)).numpy() for k in TTA_ORDER]
    assert set(TTA_ORDER) == set(range(8)) and TTA_ORDER[:4] == (0, 2, 4, 6)  # rows stay rows first
    for n in (1, 2, 4, 8):
        np.testing.assert_allclose(blob_model.predict_logits(x, tta=n), np.mean(per_view[:n], 0), atol=1e-4)
    np.testing.assert_allclose(blob_model.predict_logits(x, tta=True), np.mean(per_view, 0), atol=1e-4)
    card = blob_model.card_
    try:
        blob_model.card_ = card.model_copy(update={"predict": {**card.predict, "tta_views": 2}})
        np.testing.assert_allclose(blob_model.predict_logits(x), np.mean(per_view[:2], 0), atol=1e-4)
        np.testing.assert_allclose(blob_model.predict_logits(x, tta=False), per_view[0], atol=1e-4)
    finally:
        blob_model.card_ = card
    with pytest.raises(InputError, match="views 1..8"):
        blob_model.predict_logits(x, tta=9)
