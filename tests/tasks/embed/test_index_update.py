"""Incremental updates of an index store: streamed to disk in bounded memory, nothing rewritten when nothing
changed, the old store intact after a failure, the same result as the in-memory update, the graph in step."""
import json
import os
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from scopenet.tasks.embed import index as index_mod
from scopenet.tasks.embed.index import Index

pytestmark = pytest.mark.filterwarnings("ignore:skipped")  # broken.npy is skipped with a warning


@pytest.fixture
def folder(tmp_path, images):
    d = tmp_path / "collection"
    (d / "sub").mkdir(parents=True)
    for i, im in enumerate(images[:4]):
        np.save(d / f"img{i}.npy", im)
    np.save(d / "sub" / "stack.npy", np.stack([images[4], images[5][::-1]]))  # two frames: two rows
    (d / "broken.npy").write_bytes(b"not a numpy file")
    return d


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of two thumbnails (32 codes) and a spill every row, so that small stores take many blocks."""
    monkeypatch.setattr(index_mod, "STREAM_BYTES", 2 * 64 * 64)
    monkeypatch.setattr(index_mod, "SPILL_ROWS", 1)


def _edit(folder, images):
    """Add a file, change one (content and mtime), remove one."""
    np.save(folder / "img9.npy", images[5])
    np.save(folder / "img1.npy", images[3][::-1].copy())
    t = time.time() + 5
    os.utime(folder / "img1.npy", (t, t))
    (folder / "img0.npy").unlink()


def _files(store):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(store.iterdir())}


def _leftovers(store):
    return sorted(p.name for p in store.parent.iterdir() if p.name.startswith(f".{store.name}."))


def _same(a: Index, b: Index):
    pd.testing.assert_frame_equal(a.items, b.items)
    for k in ("codes", "sigmas", "thumbs"):
        np.testing.assert_array_equal(np.asarray(getattr(a, k)), np.asarray(getattr(b, k)))
    assert a.next_id == b.next_id and a.failed == b.failed


def test_streamed_update_equals_the_in_memory_update(folder, tiny_model, images, tmp_path, small_blocks):
    store = tmp_path / "store"
    Index.build(folder, store, model=tiny_model)
    mem = Index.load(store, mmap=False)
    mem.store = None  # no store: the in-memory update (concatenation), the behaviour before streaming
    disk = Index.load(store)
    assert isinstance(disk.thumbs, np.memmap)
    _edit(folder, images)
    want = {"added": 1, "changed": 1, "removed": 1, "unchanged": 4}
    assert mem.update() == want
    assert disk.update() == want
    assert len(disk) == 6 and disk.store == store.resolve() and isinstance(disk.thumbs, np.memmap)
    _same(mem, disk)
    _same(mem, Index.load(store))
    assert not any(p.endswith("img0.npy") for p in disk.items["path"])
    assert disk.items["id"].is_unique and disk.next_id == 8
    assert json.loads((store / "index.json").read_text())["n"] == 6
    for q in (images[5], images[3][::-1].copy(), images[2]):
        a, b = mem.search(q, k=6), disk.search(q, k=6)
        pd.testing.assert_frame_equal(a, b)
        assert b["distance"][0] == pytest.approx(0, abs=1e-5)
    assert _leftovers(store) == []
    # removing rows only, from a store loaded in memory (re-read into memory afterwards)
    (folder / "img2.npy").unlink()
    mem2 = Index.load(store, mmap=False)
    assert mem2.update() == {"added": 0, "changed": 0, "removed": 1, "unchanged": 5}
    assert not isinstance(mem2.codes, np.memmap) and len(mem2) == 5
    mem.update()
    _same(mem, mem2)
    _same(mem, Index.load(store))


def test_an_update_without_changes_rewrites_nothing(folder, tiny_model, tmp_path):
    store = tmp_path / "store"
    Index.build(folder, store, model=tiny_model)
    before = _files(store)
    idx = Index.load(store)
    time.sleep(0.02)
    # broken.npy is retried (and fails again): no row changes, and the same failure list
    assert idx.update() == {"added": 0, "changed": 0, "removed": 0, "unchanged": 6}
    assert _files(store) == before and _leftovers(store) == []
    assert isinstance(idx.codes, np.memmap)
    (folder / "broken.npy").unlink()  # no new files at all: index.json alone drops the failure
    assert idx.update() == {"added": 0, "changed": 0, "removed": 0, "unchanged": 6}
    after = _files(store)
    assert {k: v for k, v in after.items() if k != "index.json"} == \
        {k: v for k, v in before.items() if k != "index.json"}
    assert json.loads(after["index.json"][1])["failed"] == [] and Index.load(store).failed == []
    assert idx.update() == {"added": 0, "changed": 0, "removed": 0, "unchanged": 6}
    assert _files(store) == after


def test_a_failed_update_leaves_the_old_store_intact(folder, tiny_model, images, tmp_path, monkeypatch,
                                                     small_blocks):
    store = tmp_path / "store"
    Index.build(folder, store, model=tiny_model)
    before = _files(store)
    idx = Index.load(store)
    ref = Index.load(store, mmap=False)
    for i in range(3):
        np.save(folder / f"new{i}.npy", images[i][::-1].copy())
    (folder / "img3.npy").unlink()
    real, calls = index_mod.read_frames, []

    def failing(path):  # the embedding step dies after some rows were embedded (and spilled to disk)
        calls.append(path)
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return real(path)

    monkeypatch.setattr(index_mod, "read_frames", failing)
    with pytest.raises(RuntimeError, match="power cut"):
        idx.update()
    assert len(calls) == 3
    monkeypatch.setattr(index_mod, "read_frames", real)

    def failing_write(self, *a, **k):  # dies after the new arrays were written
        raise RuntimeError("disk full")

    monkeypatch.setattr(Index, "_meta", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        idx.update()
    monkeypatch.undo()
    assert _files(store) == before and _leftovers(store) == []
    _same(idx, ref)  # the object is unchanged too
    _same(Index.load(store), ref)
    assert idx.search(images[3], k=1)["path"][0].endswith("img3.npy")
    assert idx.update() == {"added": 3, "changed": 0, "removed": 1, "unchanged": 5}
    assert len(Index.load(store)) == 8 and _leftovers(store) == []


def test_the_usearch_graph_follows_a_streamed_update(folder, tiny_model, images, tmp_path, monkeypatch,
                                                     small_blocks):
    pytest.importorskip("usearch")
    store = tmp_path / "store"
    Index.build(folder, store, model=tiny_model, backend="usearch", usearch={"expansion_search": 64})
    idx = Index.load(store)
    idx.search(images[0], k=2, backend="usearch")
    assert idx._usearch_view
    graph_file = (store / "vectors.usearch").read_bytes()
    assert idx.update()["unchanged"] == 6 and idx._usearch_view  # no changes: the view is not loaded
    monkeypatch.setattr(Index, "_meta", lambda self, *a, **k: 1 / 0)  # fails after the graph was changed
    _edit(folder, images)
    with pytest.raises(ZeroDivisionError):
        idx.update()
    monkeypatch.undo()
    assert (store / "vectors.usearch").read_bytes() == graph_file and len(idx._graph()) == 6
    assert idx.update() == {"added": 1, "changed": 1, "removed": 1, "unchanged": 4}
    for back in (idx, Index.load(store)):
        g = back._graph()
        assert len(g) == len(back) == 6 and back.usearch_settings["expansion_search"] == 64
        assert sorted(int(k) for k in g.keys) == sorted(back.items["id"])
        for q in (images[5], images[3][::-1].copy(), images[2]):
            a, e = back.search(q, k=3, backend="usearch"), back.search(q, k=3)
            pd.testing.assert_frame_equal(a, e)


def _big_store(root, tiny_model, n=10_000):
    """A store of ``n`` synthetic rows (64x64 thumbnails, 41 MB) whose rows are frames of two real files
    (``small.npy``: every 100th row)."""
    coll = root / "coll"
    coll.mkdir()
    big, small = coll / "big.npy", coll / "small.npy"
    np.save(big, np.zeros((2, 8, 8), np.float32))
    np.save(small, np.zeros((2, 9, 9), np.float32))
    rng = np.random.default_rng(0)
    idx = Index.from_codes(rng.standard_normal((n, 8)).astype(np.float32), model=str(tiny_model))
    idx.thumbs = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
    which = np.where(np.arange(n) % 100 == 7, str(small), str(big))
    idx.items["path"], idx.items["frame"] = which, np.arange(n)
    idx.items["mtime"] = np.where(which == str(small), small.stat().st_mtime, big.stat().st_mtime)
    idx.items["bytes"] = np.where(which == str(small), small.stat().st_size, big.stat().st_size)
    idx.roots = [str(coll)]
    idx.save(root / "store")
    return coll, idx.thumbs, which != str(small)


@pytest.mark.slow  # ~5 s: tracemalloc slows the 10,000-row items table
def test_updates_and_saves_of_a_big_store_run_in_bounded_memory(tmp_path, tiny_model, images, monkeypatch):
    monkeypatch.setattr(index_mod, "STREAM_BYTES", 1 << 21)  # 2 MB blocks (default 16 MB, for bigger stores)
    coll, thumbs, kept = _big_store(tmp_path, tiny_model)
    idx = Index.load(tmp_path / "store")
    idx.model  # noqa: B018  (loaded before tracing)
    for i in range(3):
        np.save(coll / f"new{i}.npy", images[i])
    (coll / "small.npy").unlink()
    tracemalloc.start()
    try:
        res = idx.update()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        idx.save(tmp_path / "copy")
        peak_save = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res == {"added": 3, "changed": 0, "removed": 100, "unchanged": 9_900}
    # the in-memory update held the kept thumbnails and their concatenation: twice the thumbnails' size
    assert peak < thumbs.nbytes / 4, f"update peak {peak / 1e6:.1f} MB"
    assert peak_save < thumbs.nbytes / 4, f"save peak {peak_save / 1e6:.1f} MB"
    back = Index.load(tmp_path / "copy")
    assert isinstance(idx.thumbs, np.memmap) and os.path.samefile(idx.thumbs.filename, tmp_path / "copy" / "thumbs.npy")
    assert len(back) == 9_903 and list(back.items["path"][-3:]) == [str(coll / f"new{i}.npy") for i in range(3)]
    np.testing.assert_array_equal(back.thumbs[:9_900], thumbs[kept])
    np.testing.assert_array_equal(back.thumbs, Index.load(tmp_path / "store").thumbs)
    assert back.search(images[1], k=1)["path"][0] == str(coll / "new1.npy")
