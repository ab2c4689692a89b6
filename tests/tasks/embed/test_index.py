"""The embedding index store: build, search, filters, save/load, incremental update, usearch."""
import json
import os
import time

import numpy as np
import pytest
import tifffile

from scopenet.errors import InputError, ReadError, WriteError
from scopenet.tasks.embed.index import Index, iter_image_files


@pytest.fixture
def folder(tmp_path, images):
    d = tmp_path / "collection"
    (d / "sub").mkdir(parents=True)
    for i, im in enumerate(images[:4]):
        np.save(d / f"img{i}.npy", im)
    tifffile.imwrite(d / "sub" / "stem.tif", images[4])
    (d / "sub" / "stem.json").write_text(json.dumps({"modality": "STEM",
                                                     "pixel_size": {"value": 0.02, "unit": "nm"}}))
    (d / "notes.txt").write_text("not an image")
    (d / "broken.npy").write_bytes(b"not a numpy file")
    return d


def test_files_are_found_recursively(folder):
    names = [p.name for p in iter_image_files(folder)]
    assert names == ["broken.npy", "img0.npy", "img1.npy", "img2.npy", "img3.npy", "stem.tif"]
    with pytest.raises(ReadError):
        iter_image_files(folder / "missing")


def test_build_search_and_round_trip(folder, tiny_model, images, tmp_path):
    with pytest.warns(UserWarning, match="broken.npy"):
        idx = Index.build(folder, tmp_path / "store", model=tiny_model)
    assert len(idx) == 5 and len(idx.failed) == 1
    res = idx.search(images[2], k=3)
    assert list(res.columns[:4]) == ["rank", "path", "frame", "distance"]
    assert res["path"][0].endswith("img2.npy") and res["distance"][0] == pytest.approx(0, abs=1e-6)
    assert np.all(np.diff(res["distance"]) >= 0)
    stem = idx.items[idx.items["path"].str.endswith("stem.tif")].iloc[0]
    assert stem["modality"] == "STEM" and stem["pixel_size_m"] == pytest.approx(2e-11)
    assert stem["fov_m"] == pytest.approx(2e-11 * 64)
    back = Index.load(tmp_path / "store")
    assert len(back) == 5 and back.roots == idx.roots
    pd_res = back.search(str(folder / "img2.npy"), k=3)
    assert list(pd_res["path"]) == list(res["path"])
    np.testing.assert_allclose(pd_res["distance"], res["distance"], atol=1e-5)
    # an existing store is not replaced without overwrite
    idx.save(tmp_path / "other")
    with pytest.raises(WriteError, match="already holds"), pytest.warns(UserWarning):
        Index.build(folder, tmp_path / "other", model=tiny_model)


def test_filters_by_modality_and_field_of_view(folder, tiny_model, images):
    with pytest.warns(UserWarning):
        idx = Index.build(folder, model=tiny_model)
    res = idx.search(images[0], k=5, modality="stem")
    assert list(res["modality"]) == ["STEM"]
    res = idx.search(images[0], k=5, fov=(1e-9, 2e-9))
    assert len(res) == 1 and res["path"][0].endswith("stem.tif")
    assert len(idx.search(images[0], k=5, fov=(None, 1e-10))) == 0
    res = idx.search(images[0], k=5, modality=["unknown"])
    assert len(res) == 4 and res["path"][0].endswith("img0.npy")
    with pytest.raises(InputError):
        idx.search(images[0], k=0)
    with pytest.raises(InputError, match="backend"):
        idx.search(images[0], backend="faiss")


def test_incremental_update(folder, tiny_model, images, tmp_path):
    with pytest.warns(UserWarning):
        idx = Index.build(folder, tmp_path / "store", model=tiny_model)
    before = {p: np.asarray(c).copy() for p, c in zip(idx.items["path"], idx.codes)}
    np.save(folder / "img9.npy", images[5])
    (folder / "img0.npy").unlink()
    np.save(folder / "img1.npy", images[5])  # changed content
    t = time.time() + 5
    os.utime(folder / "img1.npy", (t, t))
    with pytest.warns(UserWarning):
        res = idx.update()
    assert res == {"added": 1, "changed": 1, "removed": 1, "unchanged": 3}
    back = Index.load(tmp_path / "store")
    paths = list(back.items["path"])
    assert len(back) == 5 and not any(p.endswith("img0.npy") for p in paths)
    row = paths.index(str(folder / "img9.npy"))
    np.testing.assert_allclose(back.search(images[5], k=2)["distance"][0], 0, atol=1e-6)
    assert back.search(images[5], k=2)["row"].tolist()[:2] != []
    # unchanged images keep their codes (not re-embedded)
    for p in ("img2.npy", "img3.npy"):
        i = paths.index(str(folder / p))
        np.testing.assert_array_equal(back.codes[i], before[str(folder / p)])
    assert back.items["id"].is_unique and row >= 3


def test_usearch_backend_finds_the_same_nearest_images(folder, tiny_model, images, tmp_path):
    pytest.importorskip("usearch")
    with pytest.warns(UserWarning):
        Index.build(folder, tmp_path / "store", model=tiny_model, backend="usearch")
    assert (tmp_path / "store" / "vectors.usearch").exists()
    back = Index.load(tmp_path / "store")
    for im in images[:4]:
        ex = back.search(im, k=3)
        ap = back.search(im, k=3, backend="usearch")
        assert list(ap["path"]) == list(ex["path"])
        np.testing.assert_allclose(ap["distance"], ex["distance"], rtol=1e-4, atol=1e-5)


def test_from_codes_exact_search_matches_brute_force():
    x = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    idx = Index.from_codes(x)
    q = x[17] + 0.01
    res = idx.search(q, k=7)
    d = np.sqrt(((x.astype(np.float64) - q) ** 2).sum(1))
    assert list(res["row"]) == list(np.argsort(d)[:7])
    np.testing.assert_allclose(res["distance"], np.sort(d)[:7], rtol=1e-6)


@pytest.mark.parametrize("chunk", [256, 1000, 1 << 18])
def test_chunked_exact_search_with_and_without_a_mask(monkeypatch, chunk):
    import scopenet.tasks.embed.index as index_mod

    monkeypatch.setattr(index_mod, "CHUNK", chunk)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 16)).astype(np.float32)
    mod = np.where(rng.random(5000) < 0.1, "STEM", "STM")
    idx = Index.from_codes(x, modality=mod)
    d = np.sqrt(((x.astype(np.float64) - x[4321]) ** 2).sum(1))
    for q, keep in ((x[4321], None), (x[4321], "STEM")):
        res = idx.search(q, k=9, modality=keep)
        dd = d if keep is None else np.where(mod == keep, d, np.inf)
        assert list(res["row"]) == list(np.argsort(dd, kind="stable")[:9])
        np.testing.assert_allclose(res["distance"], np.sort(dd)[:9], rtol=1e-6, atol=1e-9)
    few = np.where(np.arange(5000) % 1700 == 3, "AFM", mod)  # 3 AFM codes, one per few chunks
    res = Index.from_codes(x, modality=few).search(x[0], k=5, modality="AFM")
    assert sorted(res["row"]) == [3, 1703, 3403]


def test_load_errors(tmp_path):
    with pytest.raises(ReadError, match="not an index"):
        Index.load(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "other"}')
    with pytest.raises(ReadError, match="unknown index format"):
        Index.load(tmp_path)


def test_a_rotated_or_flipped_copy_is_found_at_rank_1(folder, tiny_model, images, tmp_path):
    with pytest.warns(UserWarning):
        idx = Index.build(folder, tmp_path / "store", model=tiny_model)
    assert idx.tta == 1 and idx.orient == "canonical"
    for copy in (np.rot90(images[1]), images[1][::-1], np.rot90(images[1], 3)[:, ::-1]):
        res = idx.search(np.ascontiguousarray(copy), k=2)
        assert res["path"][0].endswith("img1.npy") and res["distance"][0] == pytest.approx(0, abs=1e-5)
        assert res["distance"][1] > 1e-3
    assert json.loads((tmp_path / "store" / "index.json").read_text())["orient"] == "canonical"
    # a store saved before the canonical view: its codes and queries stay unrotated
    meta = json.loads((tmp_path / "store" / "index.json").read_text())
    del meta["orient"]
    (tmp_path / "store" / "index.json").write_text(json.dumps(meta))
    assert Index.load(tmp_path / "store").orient == "none"
