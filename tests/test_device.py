"""Device selection for the estimators (scopenet.nn.device); this machine has no GPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from scopenet.errors import InputError
from scopenet.nn.device import ENV, place, resolve_device, run_numpy

NO_GPU = not torch.cuda.is_available()


def test_auto_and_explicit_cpu(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU ") == torch.device("cpu")
    monkeypatch.setenv(ENV, "cpu")
    assert resolve_device(None) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu0", "tpu", "cuda:x"])
def test_unknown_device_is_refused_with_its_name(bad):
    with pytest.raises(InputError, match="device"):
        resolve_device(bad)


@pytest.mark.skipif(not NO_GPU, reason="checks the error on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda")
    monkeypatch.setenv(ENV, "cuda:1")
    with pytest.raises(InputError, match="cuda:1"):
        resolve_device(None)


def test_run_numpy_matches_the_module_and_returns_float32():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = np.random.default_rng(0).random((2, 1, 8, 8))  # float64 in, float32 through the net
    y = run_numpy(net, x, "cpu")
    assert y.dtype == np.float32 and y.shape == (2, 1, 8, 8)
    with torch.no_grad():
        ref = net(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    assert place(torch.nn.Identity(), "cpu") == torch.device("cpu")  # a module without parameters


@pytest.mark.skipif(not NO_GPU, reason="checks the error on a machine without a GPU")
def test_estimators_honour_their_device_attribute():
    from scopenet.tasks.inpaint.model import Inpainter

    est = Inpainter()
    partial = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    mask = np.zeros((32, 32), bool)
    mask[::4, ::4] = True
    ok = est.predict(partial, mask)
    est.device = "cpu"
    np.testing.assert_array_equal(est.predict(partial, mask), ok)
    est.device = "cuda"
    with pytest.raises(InputError, match="no CUDA GPU"):
        est.predict(partial, mask)


@pytest.mark.skipif(not NO_GPU, reason="checks the error on a machine without a GPU")
def test_denoiser_classifier_and_superres_honour_their_device_attribute():
    from scopenet.tasks.classify import TipClassifier
    from scopenet.tasks.denoise.model import Denoiser
    from scopenet.tasks.superres import SuperResolver

    img = np.random.default_rng(2).random((32, 32)).astype(np.float32)
    den = Denoiser()
    ok = den.predict(img)
    den.device = "cpu"
    np.testing.assert_array_equal(den.predict(img), ok)
    den.device = "cuda"
    with pytest.raises(InputError, match="no CUDA GPU"):
        den.predict(img)
    sr = SuperResolver()
    sr.device = "cuda"
    with pytest.raises(InputError, match="no CUDA GPU"):
        sr.predict(img[:16, :16], factor=2)
    clf = TipClassifier(size=32, epochs=1, batch_size=4)
    clf.device = "cuda"
    y = np.zeros((4, 6), np.float32)
    y[:, 0] = 1
    with pytest.raises(InputError, match="no CUDA GPU"):  # fit trains on the estimator's device too
        clf.fit(np.random.default_rng(3).random((4, 32, 32)).astype(np.float32), y)
