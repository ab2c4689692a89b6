"""The learned-fusion denoiser (scopenet.tasks.denoise.fusion, scopenet.nn.fusion): the fusion invariants, the
estimator contract (as tests/tasks/test_estimator_contract.py checks it for registered estimators) and loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from scopenet.errors import InputError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.nn import build_architecture
from scopenet.tasks.denoise.fusion import FusionConfig, FusionDenoiser, candidate_stack, fusion_loss, load_denoiser

RNG = np.random.default_rng(0)
IMG = (np.add.outer(np.sin(np.arange(48) / 3.0), np.cos(np.arange(40) / 4.0)) + 0.1 * RNG.random((48, 40))
       ).astype(np.float32)
CANDS = ["input", "gaussian", "median", "wiener"]


def _randomised(net: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net.eval()


def _est(**kw) -> FusionDenoiser:
    torch.manual_seed(0)
    est = FusionDenoiser(candidates=CANDS, arch_config={"width": 6, "dilations": [1, 2]}, **kw)
    _randomised(est.net_)
    return est


@pytest.fixture(scope="module")
def fitted():
    est = _est()
    before = [p.detach().clone() for p in est.net_.parameters()]
    res = est.fit([IMG, IMG.T.copy()], steps=2, batch_size=2, patch=16, degradation="ede")
    return est, before, res


# ------------------------------------------------------------------------------ the fusion itself
def test_identical_candidates_come_back_unchanged():
    net = _randomised(build_architecture("denoise-fusion", {"n_candidates": 5, "width": 8, "dilations": [1, 2]}))
    c = torch.from_numpy(np.repeat(IMG[None, None], 5, axis=1))
    with torch.no_grad():
        y = net(c)
    np.testing.assert_allclose(y[0, 0].numpy(), IMG, atol=1e-5)


def test_weights_sum_to_one_and_output_stays_near_the_candidates():
    net = _randomised(build_architecture("denoise-fusion", {"n_candidates": 4, "width": 8, "dilations": [1, 3],
                                                            "alpha": 0.25}))
    c = torch.from_numpy(RNG.random((2, 4, 20, 24)).astype(np.float32))
    with torch.no_grad():
        w, r = net.forward_parts(c)
        y = net(c)
    assert w.shape == (2, 4, 20, 24) and r.shape == (2, 1, 20, 24)
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2, 20, 24))
    lo, hi = c.amin(dim=1, keepdim=True), c.amax(dim=1, keepdim=True)
    assert torch.all(y >= lo - 0.25 * (hi - lo) - 1e-6) and torch.all(y <= hi + 0.25 * (hi - lo) + 1e-6)
    assert not torch.allclose(w, torch.full_like(w, 0.25))  # the weights vary per pixel


def test_zero_alpha_is_a_convex_combination():
    net = _randomised(build_architecture("denoise-fusion", {"n_candidates": 3, "width": 4, "dilations": [1],
                                                            "alpha": 0.0}))
    c = torch.from_numpy(RNG.random((1, 3, 16, 16)).astype(np.float32))
    with torch.no_grad():
        w, _ = net.forward_parts(c)
        torch.testing.assert_close(net(c), (w * c).sum(dim=1, keepdim=True))


def test_untrained_net_averages_the_candidates_and_estimator_weights_agree():
    est = FusionDenoiser(candidates=CANDS, arch_config={"width": 4, "dilations": [1]})  # head starts at zero
    u = (IMG - IMG.min()) / (IMG.max() - IMG.min())
    c = candidate_stack(u, CANDS)
    assert c.shape == (4, 48, 40) and c.dtype == np.float32
    np.testing.assert_allclose(c[0], u, atol=1e-6)
    np.testing.assert_allclose(est.fuse(c), np.clip(c.mean(axis=0), 0, 1), atol=1e-5)
    w, r = est.weights(c)
    np.testing.assert_allclose(w, 0.25, atol=1e-6)
    np.testing.assert_allclose(r, 0.0, atol=1e-7)


def test_loss_is_log_mse_per_crop():
    p, t = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    t[1] = 0.1
    want = (np.log(1e-6) + np.log(0.01 + 1e-6)) / 2
    assert float(fusion_loss(p, t)) == pytest.approx(want, rel=1e-5)


def test_settings_are_checked():
    with pytest.raises(InputError, match="FusionConfig"):
        FusionDenoiser(no_such_setting=1)
    with pytest.raises(InputError, match="unknown candidate"):
        FusionDenoiser(candidates=["input", "bilateral9"])
    with pytest.raises(InputError, match="repeat"):
        FusionDenoiser(candidates=["input", "input"])
    with pytest.raises(InputError, match="FusionNet"):
        build_architecture("denoise-fusion", {"n_candidates": 0})


# ------------------------------------------------------------------------------ the contract
def test_fit_records_history_and_changes_weights(fitted):
    est, before, res = fitted
    assert res is est
    assert len(est.history_) == 2 and all(np.isfinite(est.history_))
    assert any(not torch.equal(a, b) for a, b in zip(before, est.net_.parameters()))
    assert est.card_.training.fine_tuning[-1]["mode"] == "fusion"


def test_save_load_round_trip_is_identical(fitted, tmp_path):
    est, _, _ = fitted
    est.save(tmp_path / "m")
    back = FusionDenoiser.load(tmp_path / "m")
    assert back.config == est.config and back.card_.task == "denoise" and back.name == "m"
    np.testing.assert_array_equal(back.predict(IMG), est.predict(IMG))
    with pytest.raises(Exception, match="exists"):
        est.save(tmp_path / "m")
    text = yaml.safe_dump(est.config.model_dump(mode="json"))
    assert FusionConfig.model_validate(yaml.safe_load(text)) == est.config
    # the bench's loader picks the fusion class from the card, and the plain Denoiser otherwise
    assert isinstance(load_denoiser(str(tmp_path / "m")), FusionDenoiser)
    from scopenet.tasks.denoise import Denoiser

    Denoiser(arch_config={"widths": [8, 16]}).save(tmp_path / "plain")
    assert type(load_denoiser(str(tmp_path / "plain"))) is Denoiser


def test_every_input_kind_gives_the_same_kind_back(fitted):
    est, _, _ = fitted
    ref = est.predict(IMG)
    assert ref.shape == IMG.shape and ref.dtype == np.float32
    stack = est.predict(np.stack([IMG, IMG]))
    assert isinstance(stack, np.ndarray) and stack.shape == (2, *IMG.shape)
    np.testing.assert_allclose(stack[1], ref, atol=1e-5)
    lst = est.predict([IMG, IMG])
    assert isinstance(lst, list) and len(lst) == 2
    np.testing.assert_allclose(lst[0], ref, atol=1e-5)
    mg = Micrograph(IMG, axes=[Axis("y", 48, 2e-10), Axis("x", 40, 2e-10)], signal="HAADF")
    out = est.predict(mg)
    assert isinstance(out, Micrograph) and out.signal == "HAADF"
    assert out.axes[-1].scale == pytest.approx(2e-10)
    assert out.provenance[-1]["params"].get("tta") == 1
    assert out.provenance[-1]["params"]["candidates"] == CANDS
    np.testing.assert_allclose(out.data, ref, atol=1e-5)
    # any input scale: counts with an offset give the same result in their own units
    np.testing.assert_allclose(est.predict(IMG * 1000 - 50), ref * 1000 - 50, rtol=1e-4, atol=1e-2)


def test_tta_is_a_number_of_views(fitted):
    est, _, _ = fitted
    sq = IMG[:40, :40]
    assert est.predict(sq, tta=2).shape == sq.shape
    with pytest.raises(InputError, match="views"):
        est.predict(sq, tta=9)


@pytest.mark.parametrize("bad", ["a string", np.zeros((2, 2, 2, 2)), np.array([["a", "b"]]), [],
                                 np.full((16, 16), np.nan)])
def test_wrong_input_is_an_input_error(fitted, bad):
    est, _, _ = fitted
    with pytest.raises(InputError):
        est.predict(bad)


def test_nan_pixels_come_back_nan(fitted):
    est, _, _ = fitted
    x = IMG.copy()
    x[5, 7] = np.nan
    y = est.predict(x)
    assert np.isnan(y[5, 7]) and np.isfinite(np.delete(y.ravel(), 5 * 40 + 7)).all()


def test_fit_rejects_mismatched_targets_and_small_images():
    est = _est()
    with pytest.raises(InputError, match="targets"):
        est.fit([IMG], targets=[IMG, IMG], steps=1)
    with pytest.raises(InputError, match="patch"):
        est.fit([IMG[:10, :10]], steps=1, patch=16)


def test_image_wide_mode_weights_are_constant_per_image_and_follow_the_noise():
    from scopenet.nn.fusion import global_features

    net = _randomised(build_architecture("denoise-fusion", {"n_candidates": 3, "hidden": 8, "width": 0}))
    c = torch.from_numpy(RNG.random((2, 3, 20, 24)).astype(np.float32))
    with torch.no_grad():
        w, r = net.forward_parts(c)
    assert torch.all(r == 0)
    torch.testing.assert_close(w, w[:, :, :1, :1].expand_as(w))  # one weight per candidate and image
    # features: log mean squared difference to the input per candidate, then the input's Haar-MAD noise
    x = torch.zeros(1, 3, 8, 8)
    x[0, 1] = 0.1
    x[0, 2] = 0.2
    f = global_features(x)
    torch.testing.assert_close(f[0, :2], torch.log(torch.tensor([0.01, 0.04]) + 1e-8))
    assert float(f[0, 2]) == pytest.approx(np.log(1e-8))  # a flat input: no noise
    noisy = torch.from_numpy(np.random.default_rng(1).normal(0, 0.1, (1, 3, 64, 64)).astype(np.float32))
    assert float(global_features(noisy)[0, 2]) == pytest.approx(np.log(0.01), abs=0.3)
    with pytest.raises(InputError, match="positive"):
        net.set_feature_norm([0, 0, 0], [1, 0, 1])
