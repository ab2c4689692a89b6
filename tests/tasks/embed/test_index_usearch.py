"""The usearch (HNSW) backend of the embedding index: recall, exact re-ranking, the memory-mapped graph of
a saved index, incremental updates of the graph, and its settings."""
import json

import numpy as np
import pytest

from scopenet.errors import InputError, ReadError
from scopenet.tasks.embed.index import Index

pytest.importorskip("usearch")


def _clustered(n=3000, latent=16, clusters=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.standard_normal((clusters, latent))
    lab = rng.integers(0, clusters, n)
    return (centres[lab] + 0.5 * rng.standard_normal((n, latent))).astype(np.float32)


def _queries(x, m=25, seed=1):
    rng = np.random.default_rng(seed)
    return x[rng.choice(len(x), m, replace=False)] + 0.1 * rng.standard_normal((m, x.shape[1])).astype(np.float32)


@pytest.fixture(scope="module")
def graph_index():
    x = _clustered()
    idx = Index.from_codes(x)
    idx.build_usearch(connectivity=8, expansion_add=64, expansion_search=200, threads=1)
    return x, idx


def test_high_expansion_finds_every_exact_neighbour_with_exact_distances(graph_index):
    x, idx = graph_index
    for q in _queries(x):
        ex = idx.search(q, k=5)
        ap = idx.search(q, k=5, backend="usearch", expansion_search=400)
        assert list(ap["row"]) == list(ex["row"])  # recall 1
        # re-ranked from the stored codes in float64: the same numbers as the exact backend, bit for bit
        np.testing.assert_array_equal(ap["distance"].to_numpy(), ex["distance"].to_numpy())
        d = np.sqrt(((x[ap["row"]].astype(np.float64) - q.astype(np.float64)) ** 2).sum(1))
        np.testing.assert_array_equal(ap["distance"].to_numpy(), d)


def test_the_stored_expansion_is_the_default_and_a_search_may_override_it(graph_index, monkeypatch):
    x, idx = graph_index
    assert idx.usearch_settings == {"connectivity": 8, "expansion_add": 64, "expansion_search": 200, "dtype": "f32"}
    seen = []
    g = idx._graph()
    real = type(g).search
    monkeypatch.setattr(type(g), "search", lambda self, q, count, **kw: seen.append(
        (self.expansion_search, count)) or real(self, q, count, **kw))
    idx.search(x[0], k=5, backend="usearch")
    idx.search(x[0], k=5, backend="usearch", expansion_search=300)
    idx.search(x[0], k=100, backend="usearch", expansion_search=10)  # never below the candidates fetched
    assert seen == [(200, 20), (300, 20), (400, 400)]


def test_save_and_load_give_the_same_rows_through_the_memory_mapped_graph(graph_index, tmp_path):
    x, idx = graph_index
    qs = _queries(x, 10, seed=2)
    before = [idx.search(q, k=5, backend="usearch", expansion_search=32) for q in qs]
    idx.save(tmp_path / "store")
    meta = json.loads((tmp_path / "store" / "index.json").read_text())
    assert meta["usearch"]["expansion_search"] == 200 and (tmp_path / "store" / "vectors.usearch").exists()
    back = Index.load(tmp_path / "store")
    assert back.has_graph and back.usearch_settings == idx.usearch_settings
    for q, b in zip(qs, before):
        r = back.search(q, k=5, backend="usearch", expansion_search=32)
        assert list(r["row"]) == list(b["row"])
        np.testing.assert_array_equal(r["distance"].to_numpy(), b["distance"].to_numpy())
    assert back._usearch_view and isinstance(back.codes, np.memmap)  # graph and codes stay on disk
    assert len(back._graph()) == len(x)
    whole = Index.load(tmp_path / "store", mmap=False)
    whole.search(qs[0], k=5, backend="usearch")
    assert not whole._usearch_view and not isinstance(whole.codes, np.memmap)
    # saving a loaded index elsewhere keeps its graph (copied, or written from the view)
    back.save(tmp_path / "copy")
    assert Index.load(tmp_path / "copy").has_graph
    Index.load(tmp_path / "store").save(tmp_path / "copy2")  # graph never opened: the file is copied
    assert (tmp_path / "copy2" / "vectors.usearch").read_bytes() == (tmp_path / "store" / "vectors.usearch").read_bytes()


def test_a_filtered_search_over_fetches_the_graph_and_matches_exact(graph_index, monkeypatch):
    import scopenet.tasks.embed.index as index_mod

    x, _ = graph_index
    mod = np.where(np.arange(len(x)) % 3 == 0, "STEM", "STM")
    idx = Index.from_codes(x, modality=mod)
    idx.build_usearch(connectivity=8, expansion_add=64, threads=1)
    monkeypatch.setattr(index_mod, "EXACT_BELOW", 10)  # force the graph path under the filter
    calls = []
    monkeypatch.setattr(idx, "_exact", lambda *a: calls.append(a) or Index._exact(idx, *a))
    for q in _queries(x, 10, seed=3):
        ap = idx.search(q, k=5, modality="STEM", backend="usearch", expansion_search=400)
        assert set(ap["modality"]) == {"STEM"}
        assert list(ap["row"]) == list(Index._exact(idx, q, 5, mod == "STEM")[0])
    assert not calls


def test_bad_settings_are_refused(graph_index):
    x, idx = graph_index
    for bad in (0, -3, 2.5, True, "64"):
        with pytest.raises(InputError, match="expansion_search"):
            idx.search(x[0], k=5, backend="usearch", expansion_search=bad)
    with pytest.raises(InputError, match="expansion_search"):
        Index.from_codes(x[:50]).build_usearch(expansion_search=0)
    with pytest.raises(InputError, match="expansion_add"):
        Index.from_codes(x[:50]).build_usearch(expansion_add=-1)
    with pytest.raises(InputError, match="connectivity"):
        Index.from_codes(x[:50]).build_usearch(connectivity=1)
    with pytest.raises(InputError, match="dtype"):
        Index.from_codes(x[:50]).build_usearch(dtype="i8")
    with pytest.raises(InputError, match="threads"):
        Index.from_codes(x[:50]).build_usearch(threads=-1)
    assert idx.usearch_settings["expansion_search"] == 200  # a refused setting changes nothing


def test_a_graph_that_does_not_match_the_codes_is_refused(tmp_path):
    x = _clustered(400)
    idx = Index.from_codes(x)
    idx.build_usearch(threads=1)
    idx.save(tmp_path / "a")
    Index.from_codes(x[:300]).save(tmp_path / "b")
    (tmp_path / "b" / "vectors.usearch").write_bytes((tmp_path / "a" / "vectors.usearch").read_bytes())
    with pytest.raises(ReadError, match="holds 400 codes, the index 300"):
        Index.load(tmp_path / "b").search(x[0], backend="usearch")
    (tmp_path / "b" / "vectors.usearch").write_bytes(b"not a graph" * 10)
    with pytest.raises(ReadError, match="cannot open the HNSW graph"):
        Index.load(tmp_path / "b").search(x[0], backend="usearch")


def test_f16_graph_still_returns_exact_float64_distances():
    x = _clustered(1000)
    idx = Index.from_codes(x)
    idx.build_usearch(dtype="f16", threads=1)
    q = x[5] + 0.01
    ap, ex = idx.search(q, k=5, backend="usearch"), idx.search(q, k=5)
    assert list(ap["row"]) == list(ex["row"])
    np.testing.assert_array_equal(ap["distance"].to_numpy(), ex["distance"].to_numpy())


def test_update_of_a_loaded_index_maintains_its_graph(tmp_path, tiny_model, images):
    d = tmp_path / "coll"
    d.mkdir()
    for i, im in enumerate(images[:4]):
        np.save(d / f"img{i}.npy", im)
    Index.build(d, tmp_path / "store", model=tiny_model, backend="usearch", usearch={"expansion_search": 77})
    back = Index.load(tmp_path / "store")
    back.search(images[0], k=2, backend="usearch")
    assert back._usearch_view  # memory-mapped, read-only: update must load it before changing it
    np.save(d / "img9.npy", images[5])
    (d / "img0.npy").unlink()
    assert back.update() == {"added": 1, "changed": 0, "removed": 1, "unchanged": 3}
    again = Index.load(tmp_path / "store")
    assert len(again._graph()) == 4 and again.usearch_settings["expansion_search"] == 77
    res = again.search(images[5], k=4, backend="usearch")
    assert res["path"][0].endswith("img9.npy") and res["distance"][0] == pytest.approx(0, abs=1e-6)
    assert not any(p.endswith("img0.npy") for p in res["path"])
