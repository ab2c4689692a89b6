"""Denoising task: baselines, the Denoiser estimator, N2V masking, dose estimate, training loop, benchmark."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from scopenet.errors import InputError, WriteError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.simulate.em.noise import ede_noisy_pair
from scopenet.tasks.denoise import baselines as B
from scopenet.tasks.denoise.model import Denoiser, estimate_dose, n2v_mask
from scopenet.tasks.denoise.train import huber_mse_1000


def _smooth(n=64, seed=0):
    y, x = np.mgrid[:n, :n] / n
    return (0.5 + 0.25 * np.sin(6 * x) * np.cos(4 * y)).astype(np.float32)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return Denoiser(arch_config={"widths": [8, 16]})


# ------------------------------------------------------------------------------ baselines
def test_gaussian_matches_3x3_kernel_with_sigma_08():
    img = np.zeros((9, 9))
    img[4, 4] = 1.0
    out = B.gaussian(img)
    g = np.exp(-1 / (2 * 0.8 ** 2))
    k1 = np.array([g, 1, g]) / (1 + 2 * g)
    np.testing.assert_allclose(out[3:6, 3:6], np.outer(k1, k1), rtol=1e-5)
    assert out[2, 4] == 0 and out[4, 7] == 0  # 3x3 support only


@pytest.mark.parametrize("name", [n for n in B.available_baselines() if n != "bm3d"])
def test_baselines_keep_shape_and_reduce_noise(name):
    rng = np.random.default_rng(1)
    clean = _smooth(64)
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    out = B.denoise_baseline(noisy, name)
    assert out.shape == clean.shape and out.dtype == np.float32
    if name != "tv_bregman":  # skimage's weight 0.1 Bregman is Ede's over-smoothing setting
        assert np.mean((out - clean) ** 2) < np.mean((noisy - clean) ** 2)


def test_bilateral_keeps_constant_image():
    np.testing.assert_allclose(B.bilateral(np.full((20, 20), 0.3)), 0.3, rtol=1e-6)


def test_baseline_errors():
    with pytest.raises(InputError):
        B.denoise_baseline(np.zeros((4, 4, 4)), "median")
    with pytest.raises(InputError):
        B.denoise_baseline(np.zeros((8, 8)), "nope")
    with pytest.raises(InputError):
        B.gaussian(np.full((8, 8), np.nan))


@pytest.mark.slow
def test_bm3d_optional():
    pytest.importorskip("bm3d")
    rng = np.random.default_rng(2)
    clean = _smooth(48)
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    out = B.bm3d_denoise(noisy)
    assert out.shape == clean.shape and np.mean((out - clean) ** 2) < np.mean((noisy - clean) ** 2)


# ------------------------------------------------------------------------------ loss, TTA, masking
def test_huber_loss_reference_values():
    z = torch.zeros(1, 1, 10, 10)
    assert float(huber_mse_1000(z + 0.01, z)) == pytest.approx(0.1, rel=1e-5)  # 1000 * 1e-4
    assert float(huber_mse_1000(z + np.sqrt(4e-3), z)) == pytest.approx(2.0, rel=1e-5)  # sqrt(1000 * 4e-3)


def test_n2v_mask_invariants():
    img = np.arange(32 * 40, dtype=np.float32).reshape(32, 40)  # value encodes position
    masked, mask = n2v_mask(img, np.random.default_rng(3), fraction=0.05, radius=2)
    assert mask.sum() == round(0.05 * 32 * 40)
    np.testing.assert_array_equal(masked[~mask], img[~mask])
    ys, xs = np.nonzero(mask)
    src = masked[ys, xs].astype(int)
    sy, sx = np.divmod(src, 40)
    assert np.all(np.abs(sy - ys) <= 2) and np.all(np.abs(sx - xs) <= 2)
    assert not np.any((sy == ys) & (sx == xs))  # never its own value
    with pytest.raises(InputError):
        n2v_mask(img, np.random.default_rng(0), fraction=0.7)


def test_estimate_dose_recovers_counts_range():
    rng = np.random.default_rng(4)
    clean = 0.1 + 0.9 * _smooth(256) / _smooth(256).max()
    scale = 400.0
    counts = rng.poisson(clean * scale).astype(float)
    noisy = (counts - counts.min()) / (counts.max() - counts.min())
    truth = (clean * scale - counts.min()) / (counts.max() - counts.min())
    d = estimate_dose(noisy, truth)
    assert d["counts_range"] == pytest.approx(counts.max() - counts.min(), rel=0.15)


# ------------------------------------------------------------------------------ Denoiser
def test_predict_shapes_micrograph_and_nan():
    den = _tiny()
    a = np.random.default_rng(0).random((37, 50)).astype(np.float32) * 10 + 5
    out = den.predict(a)
    assert out.shape == a.shape and out.dtype == np.float32
    assert out.min() >= 5 - 1e-4 and out.max() <= 15 + 1e-4  # clipped to the input's range
    assert den.predict(np.stack([a, a])).shape == (2, 37, 50)
    b = a.copy()
    b[3, 4] = np.nan
    ob = den.predict(b)
    assert np.isnan(ob[3, 4]) and np.isfinite(np.delete(ob.ravel(), 3 * 50 + 4)).all()
    m = Micrograph(a, axes=[Axis("y", 37, 0.2, 0, "nm"), Axis("x", 50, 0.2, 0, "nm")])
    om = den.predict(m, tta=True)
    assert isinstance(om, Micrograph) and om.pixel_size == m.pixel_size and om.pixel_unit == "nm"
    assert om.provenance[-1]["operation"] == "denoise"


def test_tiled_prediction_matches_direct_in_the_interior():
    den = _tiny()
    a = np.random.default_rng(1).random((96, 96)).astype(np.float32)
    direct = den.predict(a)
    den.config.max_direct_pixels = 100
    den.config.tile, den.config.overlap = 64, 32
    tiled = den.predict(a)
    assert tiled.shape == a.shape
    assert np.abs(tiled - direct)[16:-16, 16:-16].mean() < 0.05


def test_predict_bad_input():
    den = _tiny()
    for bad in (np.zeros(5), np.zeros((2, 2, 2, 2)), np.array([["a", "b"], ["c", "d"]]), np.full((8, 8), np.nan)):
        with pytest.raises(InputError):
            den.predict(bad)


def test_save_load_round_trip_identical(tmp_path):
    den = _tiny()
    a = np.random.default_rng(2).random((40, 40)).astype(np.float32)
    den.save(tmp_path / "m")
    back = Denoiser.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict(a), den.predict(a))
    assert back.card_.task == "denoise" and back.config == den.config
    with pytest.raises(WriteError):
        den.save(tmp_path / "m")
    den.save(tmp_path / "m", overwrite=True)


def test_fit_modes_change_weights_and_validate():
    den = _tiny()
    rng = np.random.default_rng(5)
    imgs = [_smooth(64) + rng.normal(0, 0.05, (64, 64)).astype(np.float32) for _ in range(2)]
    w0 = [p.detach().clone() for p in den.net_.parameters()]
    den.fit(imgs, mode="n2v", steps=2, crop_size=32, batch_size=2)
    assert len(den.history_) == 2 and np.isfinite(den.history_).all()
    assert any(not torch.equal(a, b) for a, b in zip(w0, den.net_.parameters()))
    den.fit(imgs, mode="n2n", targets=[i[::-1].copy() for i in imgs], steps=1, crop_size=32, batch_size=2)
    den.fit([np.stack(imgs)], mode="n2n", steps=1, crop_size=32, batch_size=2)
    den.fit([_smooth(64)], mode="supervised", steps=1, crop_size=32, batch_size=2)
    assert [f["mode"] for f in den.card_.training.fine_tuning] == ["n2v", "n2n", "n2n", "supervised"]
    with pytest.raises(InputError):
        den.fit(imgs, mode="n2v", targets=imgs, steps=1, crop_size=32)
    with pytest.raises(InputError):
        den.fit(imgs, mode="n2n", steps=1, crop_size=32)
    with pytest.raises(InputError):
        den.fit(imgs, mode="n2v", steps=1, crop_size=128)
    with pytest.raises(ValueError, match="supervised"):  # the settings name the allowed modes
        den.fit(imgs, mode="denoise-harder", steps=1, crop_size=32)


def test_supervised_fit_reduces_error_on_held_out_image():
    """Supervised training with Ede's noise lowers the error on an image it never saw."""
    from scopenet.simulate.em import simulate_batch

    torch.manual_seed(0)
    den = Denoiser(arch_config={"widths": [8, 16]})
    train = list(simulate_batch(3, size=64, seed=11, kind="meso")["images"])
    clean = simulate_batch(1, size=64, seed=12, kind="meso")["images"][0]
    noisy, truth = ede_noisy_pair(clean, np.random.default_rng(0), "low")
    before = np.mean((den.predict(noisy) - truth) ** 2)
    den.fit(train, mode="supervised", steps=15, crop_size=32, batch_size=4, lr=3e-3, high_dose_fraction=0.0)
    after = np.mean((den.predict(noisy) - truth) ** 2)
    assert after < 0.5 * before


def test_pretrained_default_denoises_simulated_image():
    from scopenet.simulate.em import simulate_batch
    from scopenet.weights import list_models

    if "denoise-default" not in [m.name for m in list_models()]:
        pytest.skip("denoise-default weights not installed")
    import scopenet as sn

    clean = simulate_batch(1, size=128, seed=4242, kind="stem")["images"][0]
    for regime in ("low", "high"):
        noisy, truth = ede_noisy_pair(clean, np.random.default_rng(7), regime)
        out = sn.denoise(noisy)
        assert out.shape == noisy.shape
        assert np.mean((out - truth) ** 2) < 0.8 * np.mean((noisy - truth) ** 2)


# ------------------------------------------------------------------------------ training loop
def test_train_main_runs_and_resumes(tmp_path):
    from scopenet.tasks.denoise.train import default_config, main

    cfg = default_config().model_copy(update={
        "workdir": tmp_path / "tiny", "arch_config": {"widths": [4, 8]}, "crop_size": 32, "batch_size": 2,
        "max_steps": 3, "log_every": 1, "n_sim_per_kind": 1, "sim_size": 64, "use_real": False,
        "time_budget_s": 300})
    run = main(cfg, progress=False)
    from scopenet.training.budget import checkpoint_state

    assert checkpoint_state(run / "last.ckpt")["steps"] == 3
    rows = (run / "log.csv").read_text().split()
    assert rows[0] == "step,elapsed_s,lr,loss,mse" and [int(r.split(",")[0]) for r in rows[1:]] == [1, 2, 3]
    assert Denoiser.load(run / "model").predict(np.random.rand(32, 32)).shape == (32, 32)
    with pytest.raises(InputError):
        main(cfg, progress=False)  # an existing run needs resume
    main(cfg.model_copy(update={"max_steps": 5}), resume=True, progress=False)
    assert checkpoint_state(run / "last.ckpt")["steps"] == 5
    rows = (run / "log.csv").read_text().split()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2, 3, 4, 5]  # one header, rows continue


# ------------------------------------------------------------------------------ benchmark
def test_bench_on_folder_prints_table(tmp_path, capsys):
    import tifffile

    from scopenet.tasks.denoise.bench import main

    for i in range(2):
        tifffile.imwrite(tmp_path / f"im{i}.tif", (_smooth(64, i) * 1000).astype(np.uint16))
    assert main(["--images", str(tmp_path), "--n", "1", "--model", "none", "--methods", "gaussian,median"]) == 0
    out = capsys.readouterr().out
    assert "| unfiltered | 1/1 |" in out and "| gaussian |" in out and "| median |" in out
    assert main(["--images", str(tmp_path / "missing"), "--model", "none"]) == 2


def test_demo_section_before_after_residual(tmp_path):
    from scopenet.report import Report
    from scopenet.samples import sample_files
    from scopenet.tasks.denoise.demo import section
    from scopenet.weights import list_models

    if "denoise-default" not in [m.name for m in list_models()]:
        pytest.skip("denoise-default weights not installed")
    rep = Report("t")
    section(rep, tmp_path, sample_files(tmp_path / "s"))
    html = rep.render()
    assert "Denoising micrographs" in html and "residual" in html and "<img" in html
    out = tmp_path / "haadf-lattice-denoised.tif"
    assert out.exists()
    import scopenet as sn

    src = sn.read(sample_files(tmp_path / "s")["haadf-lattice"])
    back = sn.read(out)
    assert back.shape == src.shape and back.pixel_size == pytest.approx(src.pixel_size)
