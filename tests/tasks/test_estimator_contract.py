"""The estimator contract (``scopenet.tasks._estimator``), checked on every registered task estimator.

Each task gives a tiny untrained estimator, a way to fit it for two steps and inputs to predict on; the
same checks then run on all of them: two training steps record ``history_`` and change the weights,
save/load gives identical predictions, settings round-trip through YAML, a Micrograph comes back a
Micrograph with its calibration, every input kind is accepted, ``tta`` is a number of views, and wrong
input is an ``InputError``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from scopenet.errors import InputError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.tasks import estimators

RNG = np.random.default_rng(0)
IMG = (np.add.outer(np.sin(np.arange(48) / 3.0), np.cos(np.arange(40) / 4.0)) + 0.1 * RNG.random((48, 40))
       ).astype(np.float32)
MASK = RNG.random((48, 40)) < 0.3


def _denoise():
    from scopenet.tasks.denoise import Denoiser

    est = Denoiser(arch_config={"widths": [8, 16]})
    return est, lambda e, tmp: e.fit([IMG, IMG.T.copy()], mode="n2v", steps=2, crop_size=16, batch_size=2), {}


def _inpaint():
    from scopenet.tasks.inpaint import Inpainter

    est = Inpainter(arch_config={"depth": 2, "base_channels": 4, "unshuffle": 1})

    def fit(e, tmp):
        big = np.kron(IMG, np.ones((2, 2), np.float32))
        e.fit([big, big.T.copy()], max_steps=2, crop=32, batch_size=2, n_coverages=2, time_budget_s=60,
              kinds=["random"], workdir=tmp / "run")

    return est, fit, {"mask": MASK}


def _superres():
    from scopenet.tasks.superres import SuperResolver

    est = SuperResolver(arch_config={"n_layers": 3, "channels": 4})
    return est, lambda e, tmp: e.fit(np.stack([IMG[:40, :40], IMG[:40, :40].T]), factors=(2,), steps=2,
                                     batch_size=2, patch=16), {"factor": 2}


def _classify():
    from scopenet.tasks.classify import TipClassifier

    est = TipClassifier(categories=["a", "b"], size=16, channels=[4, 8, 8], dense=8, dropout=0.0, epochs=2,
                        batch_size=4, line_aug_p=0.0)
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
    imgs = [IMG, IMG.T.copy(), IMG[::-1].copy(), IMG[:, ::-1].copy()]
    return est, lambda e, tmp: e.fit(imgs, labels), {}


def _embed():
    from scopenet.tasks.embed import Embedder

    est = Embedder(arch_config={"size": 32, "widths": [4, 8], "hidden": 16, "latent": 8})
    return est, lambda e, tmp: e.fit([IMG, IMG.T.copy()], steps=2, batch_size=4), {}


def _exitwave():
    from scopenet.tasks.exitwave import ExitWaveEstimator

    est = ExitWaveEstimator(arch_config={"channels": 4, "blocks": 1}, scale="range")  # IMG has negative values
    waves = [(IMG + 3.0) * np.exp(1j * IMG), (IMG.T + 3.0) * np.exp(-1j * IMG.T)]
    return est, lambda e, tmp: e.fit([w[:32, :32] for w in waves], max_steps=2, crop=16, batch_size=2), {}


def _adaptive_scan():
    from scopenet.tasks.adaptive_scan import AdaptiveScanner

    est = AdaptiveScanner(arch_config={"actor": {"hidden": 8, "layers": 1},
                                       "generator": {"depth": 1, "base_channels": 4, "unshuffle": 1}})
    big = np.kron(IMG, np.ones((3, 3), np.float32))  # at least the 96 px of one scan
    return est, lambda e, tmp: e.fit([big], max_steps=2, batch_size=2, episodes_per_step=2), {}


def _segment():
    from scopenet.tasks.segment import Segmenter

    est = Segmenter(unet={"depth": 1, "base_channels": 4, "dilation": [1, 2]})
    return est, lambda e, tmp: e.fit([IMG, IMG.T.copy()], [IMG > 0, IMG.T > 0], steps=2, patch=32, batch_size=2), {}


def _atoms():
    from scopenet.tasks.atoms import AtomFinder

    est = AtomFinder(arch_config={"in_channels": 1, "out_channels": 1, "depth": 1, "base_channels": 4, "norm": "none"})
    xy = np.array([[10.0, 12.0], [20.0, 30.0], [5.0, 33.0]])  # (x, y) px
    return est, lambda e, tmp: e.fit([IMG, IMG.T.copy()], [xy, xy], steps=2, batch_size=2, patch=16), {}


MAKERS = {"denoise": _denoise, "inpaint": _inpaint, "superres": _superres, "classify": _classify, "embed": _embed,
          "exitwave": _exitwave, "adaptive-scan": _adaptive_scan, "segment": _segment, "atoms": _atoms}


def test_every_registered_task_is_checked():
    assert sorted(estimators()) == sorted(MAKERS)


def _weights(est):
    return [p.detach().clone() for p in est.net_.parameters()]


def _predict(est, x, extra, **kw):
    if est.image_to_image:
        kwx = {k: v for k, v in extra.items() if k != "mask"}
        if "mask" in extra:
            m = extra["mask"]
            if isinstance(x, np.ndarray) and x.ndim in (2, 3) and x.shape[-2:] != m.shape:
                m = m[:x.shape[-2], :x.shape[-1]]
            if isinstance(x, Micrograph):
                m = Micrograph(m.astype(np.float32))
            elif isinstance(x, list):
                m = [m] * len(x)
            elif np.ndim(x) == 3:
                m = np.stack([m] * len(x))
            return est.predict(x, m, **kwx, **kw)
        return est.predict(x, **kwx, **kw)
    return est.predict_proba(x, **kw) if hasattr(est, "predict_proba") else est.predict(x, **kw)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Each task's tiny estimator after two training steps (fit once, shared by the checks)."""
    torch.manual_seed(0)
    out = {}
    for task, make in MAKERS.items():
        est, fit, extra = make()
        before = _weights(est) if est.net_ is not None else None
        res = fit(est, tmp_path_factory.mktemp(task))
        out[task] = (est, extra, before, res)
    return out


@pytest.mark.parametrize("task", sorted(MAKERS))
def test_fit_records_history_and_changes_weights(task, fitted):
    est, _, before, res = fitted[task]
    assert res is est or res is None  # fit returns self (None only from the test's own lambda wrapper)
    assert len(est.history_) >= 1 and all(np.isfinite(est.history_))
    if before is not None:
        assert any(not torch.equal(a, b) for a, b in zip(before, est.net_.parameters()))


@pytest.mark.parametrize("task", sorted(MAKERS))
def test_save_load_round_trip_is_identical(task, fitted, tmp_path):
    est, extra, _, _ = fitted[task]
    cls = type(est)
    est.save(tmp_path / "m")
    back = cls.load(tmp_path / "m")
    assert back.config == est.config and back.card_.task == task and back.name == "m"
    np.testing.assert_array_equal(_predict(back, IMG, extra), _predict(est, IMG, extra))
    with pytest.raises(Exception, match="exists"):
        est.save(tmp_path / "m")
    # the settings round-trip through YAML
    text = yaml.safe_dump(est.config.model_dump(mode="json"))
    assert cls.config_class.model_validate(yaml.safe_load(text)) == est.config


@pytest.mark.parametrize("task", sorted(MAKERS))
def test_every_input_kind_gives_the_same_kind_back(task, fitted):
    est, extra, _, _ = fitted[task]
    ref = np.asarray(_predict(est, IMG, extra))
    stack = _predict(est, np.stack([IMG, IMG]), extra)
    lst = _predict(est, [IMG, IMG], extra)
    if not est.image_to_image:  # labels or scores, one row per image
        assert ref.shape[0] == 1 and np.asarray(stack).shape[0] == 2 and np.asarray(lst).shape[0] == 2
        return
    assert isinstance(stack, np.ndarray) and stack.shape == (2, *ref.shape)
    np.testing.assert_allclose(stack[1], ref, atol=1e-5)
    assert isinstance(lst, list) and len(lst) == 2
    np.testing.assert_allclose(lst[0], ref, atol=1e-5)
    mg = Micrograph(IMG, axes=[Axis("y", 48, 2e-10), Axis("x", 40, 2e-10)], signal="HAADF")
    out = _predict(est, mg, extra)
    assert isinstance(out, Micrograph) and out.signal == "HAADF"
    f = out.shape[-1] / 40  # super-resolution makes pixels smaller, the field of view stays
    assert out.axes[-1].scale == pytest.approx(2e-10 / f)
    assert out.axes[-1].scale * out.shape[-1] == pytest.approx(2e-10 * 40)
    assert out.provenance[-1]["params"].get("tta") == 1
    np.testing.assert_allclose(out.data, ref, atol=1e-5)


@pytest.mark.parametrize("task", sorted(MAKERS))
def test_tta_is_a_number_of_views(task, fitted):
    est, extra, _, _ = fitted[task]
    sq = IMG[:40, :40]
    assert np.asarray(_predict(est, sq, extra, tta=2)).shape == np.asarray(_predict(est, sq, extra)).shape
    with pytest.raises(InputError, match="views"):
        _predict(est, sq, extra, tta=9)


@pytest.mark.parametrize("task", sorted(MAKERS))
@pytest.mark.parametrize("bad", ["a string", np.zeros((2, 2, 2, 2)), np.array([["a", "b"]]), []])
def test_wrong_input_is_an_input_error(task, fitted, bad):
    est, extra, _, _ = fitted[task]
    with pytest.raises(InputError):
        _predict(est, bad, {k: v for k, v in extra.items() if k != "mask"} if not isinstance(bad, list)
                 else extra)


@pytest.mark.parametrize("task", sorted(MAKERS))
def test_wrong_settings_are_an_input_error(task):
    cls = estimators()[task]
    with pytest.raises(InputError, match=cls.config_class.__name__):
        cls(no_such_setting=1)
