"""Super-resolution of uniformly sub-sampled scans (scopenet.tasks.superres)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from scopenet.errors import InputError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.tasks.superres import SuperResolver, block_mean, check_factor, upsample


def _toy(n=6, size=32, seed=0):
    """Smooth periodic images: a sum of random low-frequency cosines in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for _ in range(n):
        im = sum(np.cos(2 * np.pi * (rng.integers(1, 5) * yy + rng.integers(1, 5) * xx) + rng.uniform(0, 6))
                 for _ in range(3))
        out.append((im - im.min()) / (im.max() - im.min()))
    return np.stack(out).astype(np.float32)


def test_block_mean_reference():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(block_mean(a, 2), [[2.5, 4.5], [10.5, 12.5]])


def test_constant_image_upsamples_to_constant():
    c = np.full((8, 8), 0.3, np.float32)
    for mode in ("nearest", "bilinear", "bicubic"):
        np.testing.assert_allclose(upsample(c, 4, mode), 0.3, atol=1e-6)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_output_shape_is_factor_times_input(factor):
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4})
    out = est.predict(np.random.default_rng(0).random((10, 7)), factor)
    assert out.shape == (10 * factor, 7 * factor)
    assert out.dtype == np.float32


def test_untrained_model_is_bicubic_and_keeps_units():
    img = np.random.default_rng(1).random((8, 8)).astype(np.float32) * 50 + 10
    out = SuperResolver(arch_config={"n_layers": 3, "channels": 4}).predict(img, 2)
    np.testing.assert_allclose(out, upsample(img, 2, "bicubic"), rtol=1e-5, atol=1e-4)


def test_micrograph_pixel_size_divided_by_factor():
    m = Micrograph(np.random.default_rng(2).random((8, 8)).astype(np.float32),
                   axes=[Axis("y", 8, 2.0, 0.0, "nm"), Axis("x", 8, 2.0, 0.0, "nm")])
    out = SuperResolver(arch_config={"n_layers": 3, "channels": 4}).predict(m, 4)
    assert isinstance(out, Micrograph)
    assert out.shape == (32, 32)
    assert out.pixel_size == pytest.approx((0.5, 0.5))
    assert out.provenance[-1]["operation"] == "super_resolve"


@pytest.mark.parametrize("bad", [1, 0, -2, 2.5, "4", True, 9])
def test_bad_factor_raises(bad):
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4})
    with pytest.raises(InputError, match="factor"):
        est.predict(np.zeros((8, 8)), bad)
    with pytest.raises(InputError):
        check_factor(bad)


def test_bad_image_raises():
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4})
    with pytest.raises(InputError):
        est.predict(np.zeros((2, 1, 8, 8)), 2)
    with pytest.raises(InputError):
        est.predict(np.array([[np.nan, 0], [0, 0]]), 2)
    with pytest.raises(InputError, match="list"):
        est.predict([], 2)


def test_fit_reduces_error_on_toy_set():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only add overhead on a shared machine
    torch.manual_seed(0)
    imgs = _toy()
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 8})

    def err():
        return float(np.mean((est.predict_batch(block_mean(imgs, 4), 4) - imgs) ** 2))

    before = err()
    try:
        est.fit(imgs, factors=(4,), steps=25, batch_size=8, patch=16, lr=1e-2, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert len(est.history_) == 25
    assert err() < 0.85 * before


def test_fit_rejects_bad_patch():
    with pytest.raises(InputError, match="patch"):
        SuperResolver(arch_config={"n_layers": 3, "channels": 4}).fit(_toy(2), factors=(3,), patch=16, steps=1)


def test_save_load_identical(tmp_path):
    torch.manual_seed(3)
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4})
    for p in est.net_.parameters():
        p.data.normal_(0, 0.1)
    img = _toy(1, 16)[0]
    est.save(tmp_path / "m")
    back = SuperResolver.load(tmp_path / "m")
    assert back.card_.task == "superres" and back.config == est.config
    assert back.card_.preprocessing["input_shape"] == [1, 1, 128, 128]
    np.testing.assert_array_equal(back.predict(img, 4), est.predict(img, 4))
    assert not np.allclose(est.predict(img, 4), upsample(img, 4, "bicubic"))  # the weights matter
    from scopenet.errors import WriteError

    with pytest.raises(WriteError):
        est.save(tmp_path / "m")


def test_shipped_model_loads_and_is_not_bicubic():
    from scopenet.training.packaging import model_files
    from scopenet.weights import SHIPPED_DIR

    if not model_files(SHIPPED_DIR / "superres-spm-x4")[0].exists():
        pytest.skip("superres-spm-x4 weights not shipped in this checkout")
    est = SuperResolver.pretrained("spm-x4")
    assert est.card_.task == "superres" and est.card_.architecture.name == "superres-vdsr"
    img = _toy(1, 32)[0]
    out = est.predict(img, 4)
    assert out.shape == (128, 128)
    assert np.abs(out - upsample(img, 4, "bicubic")).max() > 1e-4


def test_super_resolve_function_uses_given_estimator():
    from scopenet.tasks.superres import super_resolve

    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4})
    img = _toy(1, 8)[0]
    np.testing.assert_array_equal(super_resolve(img, 2, model=est), est.predict(img, 2))
    with pytest.raises(InputError):
        super_resolve(img, 1, model=est)


def test_ladder_super_resolves_one_coarse_scan_to_every_size():
    from scopenet.tasks.superres.bench import ladder, table

    fine = _toy(4, 64, seed=3)
    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4})  # untrained: exactly bicubic
    res = ladder(est, fine, coarse_size=16)
    assert sorted(res) == [32, 64]  # x2 and x4 from the 16 px scan
    for r in res.values():
        assert r["model"]["rms"] == pytest.approx(r["bicubic"]["rms"], rel=1e-4)
        assert r["nearest"]["rms"] > 0
    # the x4 rung is scored against the fine images themselves
    coarse = np.stack([block_mean(x, 4) for x in fine])
    bic = np.stack([upsample(c, 4, "bicubic") for c in coarse])
    assert res[64]["bicubic"]["rms"] == pytest.approx(float(np.sqrt(((bic - fine) ** 2).mean((1, 2))).mean()), rel=1e-5)
    assert "| 16->64 (x4) | model |" in table("t", {64: res[64]}, 4, coarse=16)
