"""A tiny untrained embedding model saved once per session (the tests need a model to load by path)."""
import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path stem of a small saved Embedder (32 px inputs, 8-d codes), BN statistics warmed up."""
    from scopenet.tasks.embed import Embedder

    torch.manual_seed(0)
    est = Embedder(arch_config={"size": 32, "widths": [4, 8], "hidden": 16, "latent": 8})
    net = est.net_.train()
    with torch.no_grad():  # a few forward passes give the running statistics realistic values
        for _ in range(5):
            net.reconstruct(torch.rand(16, 1, 32, 32))
    net.eval()
    stem = tmp_path_factory.mktemp("embed-model") / "tiny"
    est.save(stem)
    return stem


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:64]
    out = [np.sin(x / (2 + i)) * np.cos(y / (3 + i)) + 0.05 * rng.standard_normal((64, 64)) for i in range(6)]
    return [a.astype(np.float32) for a in out]
