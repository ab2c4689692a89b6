"""The retrieval figures of ``scopenet bench embed`` on embeddings whose answers are known."""
import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.tasks.embed.baselines import PCACodes, PixelCodes
from scopenet.tasks.embed.bench import TRANSFORMS, retrieval_scores, search_latency, transformed


def _imgs():
    rng = np.random.default_rng(0)
    return [rng.random((40, 40)).astype(np.float32) for _ in range(8)], ["a"] * 4 + ["b"] * 4


def test_transforms():
    a = np.arange(12.0).reshape(3, 4)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(transformed(a, "rot90", rng), np.rot90(a))
    np.testing.assert_array_equal(transformed(a, "flip-ud", rng), a[::-1])
    r = transformed(a, "renoise", rng)
    assert r.shape == a.shape and r.min() == 0 and r.max() == 1
    assert len(TRANSFORMS) == 6


def test_retrieval_scores_of_an_invariant_and_a_constant_embedding():
    imgs, labs = _imgs()
    # rotation/flip-invariant code: the sorted pixel values (re-noising moves it little)
    inv = lambda im: np.sort(np.asarray(im, np.float64).ravel())[::50]  # noqa: E731
    r = retrieval_scores(inv, lambda ims: np.stack([inv(i) for i in ims]), imgs, labs, np.random.default_rng(0))
    assert r["self_rank1"] == 1.0
    assert all(r["copy_top5_by_transform"][t] == 1.0 for t in TRANSFORMS if t != "renoise")
    assert r["purity5_chance"] == pytest.approx(2 * 4 * 3 / (8 * 7))
    # every image the same code: never strictly nearest to itself
    const = lambda im: np.zeros(3)  # noqa: E731
    r = retrieval_scores(const, lambda ims: np.zeros((len(ims), 3)), imgs, labs, np.random.default_rng(0))
    assert r["self_rank1"] == 0.0


def test_baselines():
    imgs, _ = _imgs()
    px = PixelCodes().predict(imgs)
    assert px.shape == (8, 64) and px.min() >= 0 and px.max() <= 1
    pca = PCACodes(n=4, size=32).fit(imgs)
    assert pca.predict(imgs).shape == (8, 4)
    with pytest.raises(InputError, match="not fitted"):
        PCACodes(n=4).predict(imgs[0])


def test_search_latency_small():
    pytest.importorskip("usearch")
    r = search_latency(2000, latent=8, queries=3, usearch_n=500, usearch_queries=20, threads=1)
    assert r["exact_ms"] > 0 and r["usearch_n"] == 500 and 0 <= r["usearch_recall"] <= 1
    assert [u["expansion_search"] for u in r["usearch_runs"]] == [1024, 128, 512, 2048]  # the index default first
    assert r["usearch_recall"] == r["usearch_runs"][0]["recall"] and r["usearch_ms"] == r["usearch_runs"][0]["ms"]
    assert r["usearch_runs"][3]["recall"] == 1.0  # expansion_search above the 500 codes: the graph finds them all
    assert r["usearch_build_s"] > 0 and r["usearch_settings"]["connectivity"] == 16
    r = search_latency(300, latent=4, queries=2, usearch_n=200, expansion_search=[3, 40], usearch_queries=5)
    assert [u["expansion_search"] for u in r["usearch_runs"]] == [3, 40] and r["usearch_expansion_search"] == 3


def test_throughput_reports_each_path_and_restores_the_threads(tiny_model):
    import torch

    from scopenet.tasks.embed import Embedder
    from scopenet.tasks.embed.bench import throughput

    before = torch.get_num_threads()
    r = throughput(Embedder.load(tiny_model), 64, batch=32, threads=1)
    assert r["threads"] == 1 and torch.get_num_threads() == before
    for key in ("predict", "predict_list", "net", "tta8"):
        assert r[f"{key}_img_s"] > 0 and r[f"{key}_img_cpu_s"] > 0


def test_two_models_with_the_same_name_get_distinct_rows():
    from scopenet.tasks.embed.bench import _methods

    class Named:
        name = "model"

    rows = list(_methods(Named(), Named(), None, None, names=("runs/a/model", "runs/b/model")))
    assert len(rows) == 7 and "VAE runs/b/model, orient none" in rows and "VAE runs/a/model, orient none" in rows

    class Shipped:
        name = "embed-default"

    rows = list(_methods(Shipped(), Named(), None, None, names=("default", "runs/kl/model")))
    assert rows[0] == "VAE embed-default (default: canonical view)" and "VAE runs/kl/model (canonical view)" in rows
