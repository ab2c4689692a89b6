"""A searchable embedding store of a micrograph collection: ``Index.build(paths)``, ``Index.load(dir)``,
``index.search(image, k)``.

Every readable image (any format :func:`scopenet.read` knows; each frame of a stack) gets a row:
its VAE code (``mu``) and ``sigma`` (:mod:`.model`), a 64x64 thumbnail, the path, frame, modality, pixel
size and field of view (from the file's calibration, or from a JSON sidecar ``<file>.json`` /
``<stem>.json`` with ``modality`` and ``pixel_size`` keys, as the em-real collection has). A search ranks
the rows by the Euclidean distance between codes and can be restricted to a modality or to a range
of fields of view or pixel sizes.

The store is a folder::

    index.json      format, model, settings (tta, fit, orient), the indexed roots, counters
    items.csv       one row per image (id, path, frame, modality, pixel_size_m, fov_m, height, width,
                    mtime, bytes)
    codes.npy       float32 (N, 64) latent means (memory-mapped when loaded: the codes need not fit in RAM)
    sigmas.npy      float32 (N, 64) latent standard deviations (for the sigma-weighted map)
    thumbs.npy      uint8 (N, 64, 64)
    vectors.usearch optional HNSW graph (``backend="usearch"``; the ``search`` extra); its settings are
                    under ``usearch`` in index.json

Search backends: ``"exact"`` (default; numpy, streamed over the memory-mapped codes in chunks) and
``"usearch"`` (an approximate HNSW graph from the maintained `usearch <https://github.com/unum-cloud/usearch>`_
library, imported lazily; ``pip install scopenet[search]``), which scales past one machine's memory: a
loaded graph file is memory-mapped (usearch's read-only *view*), like the codes. The graph proposes
:data:`OVERFETCH` times ``k`` candidates, which are re-ranked by their exact float64 distances from the
stored codes, so every distance it returns equals the exact backend's for that row; what the graph can
miss is a row (recall, set by ``expansion_search``). :meth:`Index.update` adds the files a folder has
gained, re-embeds changed ones and drops deleted ones, without re-embedding the rest (and updates the
graph, which it then loads into memory).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ...errors import InputError, ReadError, WriteError

__all__ = ["Index", "iter_image_files", "read_frames"]

FORMAT = "scopenet-embed-index/1"
THUMB = 64
COLUMNS = ["id", "path", "frame", "modality", "pixel_size_m", "fov_m", "height", "width", "mtime", "bytes"]
CHUNK = 1 << 18
#: the arrays of a store are written in blocks of at most this many bytes (and :data:`STREAM_ROWS` rows) when
#: an update or the save of a memory-mapped index streams them to disk: memory bounded by the block, not N
STREAM_BYTES = 1 << 24
STREAM_ROWS = 1 << 16
#: while an update embeds new files, their rows go to disk every this many rows
SPILL_ROWS = 4096
#: the arrays of a store: name -> dtype
_ARRAYS = {"codes": np.float32, "sigmas": np.float32, "thumbs": np.uint8}
#: HNSW settings of a new graph (:meth:`Index.build_usearch`): ``connectivity`` (links per node, usearch's
#: default), ``expansion_add`` (candidate list while inserting) and ``expansion_search`` (candidate list
#: while searching: recall against latency, see ``docs/tasks/embed.md``; changeable at any time)
USEARCH_DEFAULTS = {"connectivity": 16, "expansion_add": 128, "expansion_search": 1024, "dtype": "f32"}
#: graph candidates fetched per requested result, re-ranked by exact distance
OVERFETCH = 4
_USEARCH_DTYPES = ("f32", "f16")
#: a filtered usearch search with at most this many images passing the filter searches them exactly
EXACT_BELOW = 100_000
#: file names that are never images (sidecars of other files, index stores)
#: scanning-probe formats whose reader sets no modality
_SPM_EXT = {e: "SPM" for e in (".sxm", ".gwy", ".ibw", ".spm", ".z_mtrx", ".i_mtrx", ".df_mtrx", ".aux1_mtrx",
                               ".aux2_mtrx", ".amp_mtrx", ".phase_mtrx")}
_SKIP_SUFFIXES = {".json", ".csv", ".txt", ".md", ".yaml", ".yml", ".usearch"}


# ------------------------------------------------------------------------------------ files
def iter_image_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The readable image files under ``paths`` (files, or folders searched recursively; hidden files and
    folders, such as an index store inside the folder, are skipped), sorted and absolute."""
    from ...io import supported_extensions

    exts = {e.lower() for e in supported_extensions()} - {".emi"}  # the .ser beside it holds the pixels
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: set[Path] = set()
    for p in paths:
        p = Path(p).expanduser()
        if not p.exists():
            raise ReadError(p, "no such file or folder")
        if p.is_file():
            out.add(p.resolve())
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = [d for d in dirs if not d.startswith(".") and not (Path(root) / d / "index.json").exists()]
            for f in files:
                q = Path(root) / f
                if not f.startswith(".") and q.suffix.lower() in exts and q.suffix.lower() not in _SKIP_SUFFIXES:
                    out.add(q.resolve())
    return sorted(out)


def _sidecar(path: Path) -> dict:
    for cand in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if cand.exists() and cand != path:
            try:
                d = json.loads(cand.read_text())
                return d if isinstance(d, dict) else {}
            except (OSError, ValueError):
                return {}
    return {}


def _sidecar_pixel(d: dict) -> float | None:
    from ...image.micrograph import to_metres

    ps = d.get("pixel_size")
    if isinstance(ps, dict):
        v, unit = ps.get("value", ps.get("x")), ps.get("unit")
    else:
        v, unit = ps, d.get("pixel_unit")
    try:
        return to_metres(float(v), unit) if v not in (None, "") and unit else None
    except (TypeError, ValueError):
        return None


def read_frames(path: str | os.PathLike) -> list[tuple[int, Any, dict]]:
    """``[(frame, Micrograph, info)]`` for one file (one entry per frame of a stack); ``info`` holds
    modality, pixel_size_m and fov_m (NaN when unknown)."""
    from ...io import read

    path = Path(path)
    m = read(path)
    side = _sidecar(path)
    mod = m.modality or side.get("modality") or _SPM_EXT.get(path.suffix.lower())
    ps = m.pixel_size_m()[-1] if m.ndim >= 2 else None
    if ps is None:
        ps = _sidecar_pixel(side)
    out = []
    for i, f in enumerate(m.frames()):
        h, w = f.shape[-2:]
        info = {"modality": str(mod) if mod else "unknown", "pixel_size_m": float(ps) if ps else float("nan"),
                "fov_m": float(ps) * max(h, w) if ps else float("nan"), "height": int(h), "width": int(w)}
        out.append((i, f, info))
    return out


def _as_model(model: Any):
    from .model import Embedder

    if isinstance(model, Embedder):
        return model
    return Embedder.pretrained(str(model) if model is not None else "default")


# ------------------------------------------------------------------------------------ index
class Index:
    """An embedding store of a micrograph collection (see the module docstring).

    Build one with :meth:`build`, open a saved one with :meth:`load`; ``len(index)`` images.

    Attributes
    ----------
    items : pandas.DataFrame
        One row per image: ``id, path, frame, modality, pixel_size_m, fov_m, height, width, mtime,
        bytes`` (lengths in metres, NaN when the file is not calibrated).
    codes, sigmas : ndarray float32 (N, latent)
    thumbs : ndarray uint8 (N, 64, 64)
    store : Path or None
        The folder it was loaded from or saved to.
    """

    def __init__(self, codes: np.ndarray, sigmas: np.ndarray, thumbs: np.ndarray, items, *, model: Any = "default",
                 model_name: str = "embed-default", roots: Sequence[str] = (), tta: int = 1, fit: str = "resize",
                 next_id: int | None = None, store: Path | None = None, failed: Sequence[str] = (),
                 orient: str = "canonical", usearch: dict | None = None):
        self.codes, self.sigmas, self.thumbs, self.items = codes, sigmas, thumbs, items.reset_index(drop=True)
        self._model = model
        self.model_name = model_name
        self.roots = [str(r) for r in roots]
        self.tta, self.fit, self.orient = int(tta), fit, orient
        self.next_id = int(next_id if next_id is not None else (int(items["id"].max()) + 1 if len(items) else 0))
        self.store = Path(store) if store is not None else None
        self.failed = list(failed)
        self._norms: np.ndarray | None = None
        self._usearch = None  # the usearch graph, once built or opened
        self._usearch_path: Path | None = None  # a saved graph, opened on first use
        self._usearch_view = False  # the open graph is a read-only memory map of _usearch_path
        self._mmap = True  # open a saved graph memory-mapped
        self._key_order: tuple | None = None  # (argsort of items.id, the sorted ids): graph key -> row
        #: settings of the HNSW graph (see :data:`USEARCH_DEFAULTS`); ``expansion_search`` is the default
        #: of :meth:`search` and may be changed at any time (saved with the index)
        self.usearch_settings: dict = {**USEARCH_DEFAULTS, **(usearch or {})}

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Index({len(self)} images, model={self.model_name!r}, store={str(self.store) if self.store else None!r})"

    @property
    def model(self):
        """The :class:`~scopenet.tasks.embed.Embedder` that made the codes (loaded on first use)."""
        if not hasattr(self._model, "predict"):
            self._model = _as_model(self._model)
        return self._model

    # ------------------------------------------------------------------ building
    @staticmethod
    def _embed_files(files: Sequence[Path], est, tta: int, fit: str, progress: bool, start_id: int,
                     orient: str = "canonical", flush=None):
        """Embed ``files``: ``(codes, sigmas, thumbs, items, failed, next_id)``. With ``flush``, every
        :data:`SPILL_ROWS` rows the arrays so far go to ``flush(codes, sigmas, thumbs)`` instead of the
        returned ones (which then hold only the rows after the last flush; ``items`` holds them all)."""
        import pandas as pd
        from tqdm.auto import tqdm

        from .preprocess import thumbnail

        lat = est.latent

        def arrays():
            return (np.asarray(codes, np.float32).reshape(-1, lat), np.asarray(sigmas, np.float32).reshape(-1, lat),
                    np.asarray(thumbs, np.uint8).reshape(-1, THUMB, THUMB))

        rows, codes, sigmas, thumbs, failed = [], [], [], [], []
        nid = start_id
        for p in tqdm(files, desc="indexing", unit="file", disable=not progress):
            if flush is not None and len(codes) >= SPILL_ROWS:
                flush(*arrays())
                codes, sigmas, thumbs = [], [], []
            try:
                frames = read_frames(p)
                st = p.stat()
                for fi, mg, info in frames:
                    a = np.asarray(mg.data, np.float32)
                    mu, sg = est.encode(a, tta=tta, fit=fit, orient=orient)
                    codes.append(mu[0])
                    sigmas.append(sg[0])
                    thumbs.append(thumbnail(a, THUMB))
                    rows.append({"id": nid, "path": str(p), "frame": fi, **info, "mtime": st.st_mtime,
                                 "bytes": st.st_size})
                    nid += 1
            except (ReadError, InputError, OSError, ValueError) as exc:
                failed.append(f"{p}: {exc}")
                warnings.warn(f"skipped {p}: {exc}", stacklevel=3)
        items = pd.DataFrame(rows, columns=COLUMNS)
        return (*arrays(), items, failed, nid)

    @classmethod
    def build(cls, paths, store: str | os.PathLike | None = None, *, model: Any = "default", tta: int = 1,
              fit: str | None = None, orient: str | None = None, progress: bool = False, backend: str = "exact",
              overwrite: bool = False, usearch: dict | None = None) -> "Index":
        """Embed every readable image under ``paths`` (files or folders, searched recursively).

        Parameters
        ----------
        paths : path or list of paths
        store : path, optional
            Save the index to this folder (refused if it holds an index, unless ``overwrite``).
        model : str or Embedder
            The embedding model (default ``embed-default``).
        tta : int
            Flipped/rotated views averaged per image (1..8; queries use the same setting). The default 1
            is already invariant to quarter turns and flips through the canonical view (``orient``),
            so an image is found whatever its orientation; 8 averages all views (8 times slower).
        fit : {"resize", "tiles"}, optional
            How images become 96 px inputs (default the model's).
        orient : {"canonical", "none"}, optional
            Whether each input is encoded in its canonical view (default the model's, ``"canonical"``).
        progress : bool
            A progress bar over the files.
        backend : {"exact", "usearch"}
            ``"usearch"`` also builds (and saves) the HNSW graph.
        usearch : dict, optional
            Keyword arguments of :meth:`build_usearch` (``connectivity``, ``expansion_add``,
            ``expansion_search``, ``dtype``, ``threads``) when ``backend="usearch"``.

        Files that cannot be read are skipped with a warning and listed in ``failed``.
        """
        est = _as_model(model)
        fit = fit or est.config.fit
        orient = est._orient(orient)
        roots = [str(Path(p).expanduser().resolve()) for p in ([paths] if isinstance(paths, (str, os.PathLike))
                                                                 else list(paths))]
        files = iter_image_files(roots)
        if not files:
            raise InputError(f"no readable image files under {', '.join(roots) or 'nothing'}")
        codes, sigmas, thumbs, items, failed, nid = cls._embed_files(files, est, tta, fit, progress, 0, orient)
        if not len(items):
            raise InputError("none of the files could be read: " + "; ".join(failed[:3]))
        ref = est.name
        if isinstance(model, (str, os.PathLike)) and str(model) != "default":
            p = Path(str(model)).expanduser()
            ref = str(p.resolve()) if ("/" in str(model) or p.with_suffix(".json").exists()) else str(model)
        idx = cls(codes, sigmas, thumbs, items, model=est, model_name=ref, roots=roots, tta=tta, fit=fit,
                  next_id=nid, failed=failed, orient=orient)
        if backend == "usearch":
            idx.build_usearch(**(usearch or {}), progress=progress)
        elif backend != "exact":
            raise InputError(f"backend must be 'exact' or 'usearch', got {backend!r}")
        if store is not None:
            idx.save(store, overwrite=overwrite)
        return idx

    @classmethod
    def from_codes(cls, codes: np.ndarray, *, sigmas: np.ndarray | None = None, paths: Sequence[str] | None = None,
                   modality: Sequence[str] | None = None, fov_m: Sequence[float] | None = None,
                   model: Any = "default") -> "Index":
        """An index over codes computed elsewhere (e.g. synthetic codes for timing; no thumbnails)."""
        import pandas as pd

        codes = np.ascontiguousarray(codes, np.float32)
        if codes.ndim != 2:
            raise InputError(f"codes must be (N, latent), got shape {codes.shape}")
        n = len(codes)
        items = pd.DataFrame({"id": np.arange(n), "path": list(paths) if paths is not None else [f"#{i}" for i in range(n)],
                              "frame": 0, "modality": list(modality) if modality is not None else "unknown",
                              "pixel_size_m": np.nan, "fov_m": np.asarray(fov_m, float) if fov_m is not None else np.nan,
                              "height": 0, "width": 0, "mtime": 0.0, "bytes": 0}, columns=COLUMNS)
        return cls(codes, np.ones_like(codes) if sigmas is None else np.asarray(sigmas, np.float32),
                   np.zeros((n, 1, 1), np.uint8), items, model=model, model_name=str(model))

    def update(self, progress: bool = False) -> dict[str, int]:
        """Bring the index up to date with its roots: embed new files, re-embed changed ones (size or
        modification time), drop deleted ones; saves to :attr:`store` when there is one.

        With a store, the update streams: the new rows go to disk as they are embedded, and the new arrays
        are written block by block (:data:`STREAM_BYTES`) from the kept rows of the (memory-mapped) old
        ones and the new rows, in a folder beside the store that then replaces it; the arrays are then
        memory-mapped from the new store (read into memory if the index was loaded with ``mmap=False``).
        So an update needs memory for a block and the new files' metadata, not for the store. If nothing
        was added, changed or removed, nothing is rewritten. If it fails part way, the old store is left as
        it was (and so is this object). An index without a store is updated in memory.

        Returns ``{"added": frames, "changed": frames, "removed": frames, "unchanged": frames}``.
        """
        import pandas as pd

        files = iter_image_files([r for r in self.roots if Path(r).exists()])
        now = {str(p): p.stat() for p in files}
        it = self.items
        keep = np.ones(len(it), bool)
        changed_paths = set()
        for i, (p, mt, nb) in enumerate(zip(it["path"], it["mtime"], it["bytes"])):
            st = now.get(p)
            if st is None:
                keep[i] = False
            elif st.st_mtime != mt or st.st_size != nb:
                keep[i] = False
                changed_paths.add(p)
        known = set(it["path"])
        new = sorted(Path(p) for p in now if p not in known or p in changed_paths)
        removed_ids = it["id"][~keep].to_numpy()
        n_changed = int(it["path"][~keep].isin(changed_paths).sum())

        def counts(n_new: int) -> dict[str, int]:
            return {"added": n_new - n_changed, "changed": n_changed, "removed": int((~keep).sum()) - n_changed,
                    "unchanged": int(keep.sum())}

        if self.store is None:
            codes, sigmas, thumbs, items, failed, nid = None, None, None, it[:0], [], self.next_id
            if new:
                codes, sigmas, thumbs, items, failed, nid = self._embed_files(new, self.model, self.tta, self.fit,
                                                                              progress, self.next_id, self.orient)
            if len(items) or len(removed_ids):
                # the graph, loaded into memory (a memory-mapped view is read-only) while it matches the rows
                g = self._mutable_graph()
                self.codes = np.concatenate([np.asarray(self.codes)[keep], codes]) if codes is not None \
                    else np.asarray(self.codes)[keep]
                self.sigmas = np.concatenate([np.asarray(self.sigmas)[keep], sigmas]) if sigmas is not None \
                    else np.asarray(self.sigmas)[keep]
                self.thumbs = np.concatenate([np.asarray(self.thumbs)[keep], thumbs]) if thumbs is not None \
                    else np.asarray(self.thumbs)[keep]
                self.items = pd.concat([it[keep], items], ignore_index=True) if len(items) \
                    else it[keep].reset_index(drop=True)
                self.next_id = nid
                self._norms = self._key_order = None
                if g is not None:
                    if len(removed_ids):
                        g.remove(removed_ids.astype(np.uint64))
                    if len(items):
                        g.add(items["id"].to_numpy().astype(np.uint64), codes, threads=0)
            self.failed = failed
            return counts(len(items))

        store = self.store
        if not new and not len(removed_ids):
            if self.failed:  # the files that failed before are gone
                self._write_meta(store, failed=[])
                self.failed = []
            return counts(0)
        spill = Path(tempfile.mkdtemp(prefix=f".{store.name}.update-", dir=store.parent)) if new else None
        sink = None
        try:
            sink = _Spill(spill, int(np.shape(self.codes)[1])) if spill is not None else None
            items, failed, nid = it[:0], [], self.next_id
            if new:
                *last, items, failed, nid = self._embed_files(new, self.model, self.tta, self.fit, progress,
                                                              self.next_id, self.orient, flush=sink.write)
                sink.write(*last)
            res = counts(len(items))
            if not len(items) and not len(removed_ids):  # only files that cannot be read: no row changes
                if failed != self.failed:
                    self._write_meta(store, failed=failed)
                    self.failed = failed
                return res
            added = sink.arrays() if sink is not None else {}
            parts = {k: [(getattr(self, k), None if keep.all() else keep)] + ([(added[k], None)] if added else [])
                     for k in _ARRAYS}
            rows = pd.concat([it[keep], items], ignore_index=True) if len(items) else it[keep].reset_index(drop=True)
            touched = []

            def graph():  # called once the arrays are written: the graph, loaded into memory, follows the rows
                g = self._mutable_graph()
                if g is None:
                    return
                touched.append(g)
                if len(removed_ids):
                    g.remove(removed_ids.astype(np.uint64))
                ids = items["id"].to_numpy().astype(np.uint64)
                step = _block_rows(added["codes"]) if len(ids) else 1
                for i in range(0, len(ids), step):
                    g.add(ids[i:i + step], np.ascontiguousarray(added["codes"][i:i + step], np.float32), threads=0)

            try:
                self._write(store, parts, rows, next_id=nid, failed=failed, before_graph=graph)
            except BaseException:
                if touched:  # the graph in memory no longer matches the (old) store: reopen the saved one
                    self._usearch, self._usearch_view = None, False
                raise
            self.items, self.next_id, self.failed = rows, nid, failed
            self._norms = self._key_order = None
            self._open_arrays(store, mmap=self._mmap)
            return res
        finally:
            if spill is not None:
                if sink is not None:
                    sink.close()
                shutil.rmtree(spill, ignore_errors=True)

    # ------------------------------------------------------------------ files
    def save(self, store: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the index to the folder ``store`` (built beside it, then put in place).

        Memory-mapped arrays (a loaded index) are copied block by block (:data:`STREAM_BYTES`), not read
        into memory, and are memory-mapped from the new store afterwards."""
        store = Path(store).expanduser().resolve()
        if store.exists() and not (store / "index.json").exists() and any(store.iterdir()):
            raise WriteError(store, "exists and is not an index store")
        if (store / "index.json").exists() and not overwrite and store != self.store:
            raise WriteError(store, "already holds an index (pass overwrite=True, or update() it)")
        mapped = any(isinstance(getattr(self, k), np.memmap) for k in _ARRAYS)
        self._write(store, {k: [(getattr(self, k), None)] for k in _ARRAYS}, self.items, next_id=self.next_id,
                    failed=self.failed)
        if mapped:
            self._open_arrays(store, mmap=True)
        return store

    def _meta(self, n: int, next_id: int, failed: Sequence[str]) -> dict:
        return {"format": FORMAT, "model": self.model_name, "tta": self.tta, "fit": self.fit,
                "orient": self.orient, "usearch": self.usearch_settings,
                "roots": self.roots, "n": int(n), "latent": int(np.shape(self.codes)[1]),
                "next_id": int(next_id), "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "failed": list(failed)}

    def _write_meta(self, store: Path, failed: Sequence[str]) -> None:
        """Rewrite only ``index.json`` of ``store`` (a temporary file, then renamed)."""
        tmp = store / f".index.json.partial-{os.getpid()}"
        try:
            tmp.write_text(json.dumps(self._meta(len(self), self.next_id, failed), indent=1))
            os.replace(tmp, store / "index.json")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _write(self, store: Path, parts: dict, items, *, next_id: int, failed: Sequence[str],
               before_graph=None) -> None:
        """Write a store to ``store``: a temporary folder beside it, then swapped in. ``parts`` maps each
        array name (:data:`_ARRAYS`) to ``[(array, row mask or None), ...]``, whose (selected) rows are
        written in order, block by block; ``before_graph()`` runs once the arrays are written, before the
        graph is saved. On any error the temporary folder is removed and ``store`` is left as it was."""
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{store.name}.partial-", dir=store.parent))
        graph = None
        try:
            n = None
            for k, dt in _ARRAYS.items():
                m = _write_npy(tmp / f"{k}.npy", parts[k], dt)
                if n is not None and m != n:
                    raise WriteError(store, f"inconsistent arrays: {m} {k} for {n} codes")
                n = m
            if n != len(items):
                raise WriteError(store, f"inconsistent store: {n} codes, {len(items)} rows")
            items.to_csv(tmp / "items.csv", index=False)
            if before_graph is not None:
                before_graph()
            if self._usearch is not None and not self._usearch_view:
                self._usearch.save(str(tmp / "vectors.usearch"))
                graph = store / "vectors.usearch"
            elif self._usearch_path is not None and self._usearch_path.exists():
                shutil.copy2(self._usearch_path, tmp / "vectors.usearch")
                graph = store / "vectors.usearch"
            (tmp / "index.json").write_text(json.dumps(self._meta(n, next_id, failed), indent=1))
            old = None
            if store.exists():
                old = store.with_name(f".{store.name}.old-{os.getpid()}")
                os.replace(store, old)
            try:
                os.replace(tmp, store)
            except BaseException:
                if old is not None:  # put the old store back
                    os.replace(old, store)
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.store = store
        if graph is not None:
            self._usearch_path = graph
            if self._usearch_view:  # it mapped the replaced file: map the new one on next use
                self._usearch, self._usearch_view = None, False

    def _open_arrays(self, store: Path, mmap: bool) -> None:
        """Point codes, sigmas and thumbs at the store's files (memory-mapped, or read into memory)."""
        for k in _ARRAYS:
            setattr(self, k, np.load(store / f"{k}.npy", mmap_mode="r" if mmap else None))

    @classmethod
    def load(cls, store: str | os.PathLike, *, model: Any = None, mmap: bool = True) -> "Index":
        """Open a saved index; ``model`` overrides the embedding model named in ``index.json`` (it must be
        the one that made the codes).

        With ``mmap`` (default) the codes, sigmas and thumbnails are memory-mapped, and so is the HNSW
        graph (``vectors.usearch``, a read-only usearch view opened on the first ``backend="usearch"``
        search), so neither needs to fit in memory; ``mmap=False`` reads them all into memory."""
        import pandas as pd

        store = Path(store).expanduser()
        meta_p = store / "index.json"
        if not meta_p.exists():
            raise ReadError(store, "not an index store (no index.json); build one with Index.build or scopenet index")
        try:
            meta = json.loads(meta_p.read_text())
        except ValueError as exc:
            raise ReadError(meta_p, f"corrupt index.json: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ReadError(meta_p, f"unknown index format {meta.get('format')!r} (expected {FORMAT})")
        mode = "r" if mmap else None
        codes = np.load(store / "codes.npy", mmap_mode=mode)
        sigmas = np.load(store / "sigmas.npy", mmap_mode=mode)
        thumbs = np.load(store / "thumbs.npy", mmap_mode=mode)
        items = pd.read_csv(store / "items.csv", dtype={"path": str, "modality": str},
                            keep_default_na=False, na_values={"pixel_size_m": [""], "fov_m": [""]})
        if not (len(codes) == len(items) == len(thumbs) == len(sigmas)):
            raise ReadError(store, f"inconsistent store: {len(codes)} codes, {len(items)} rows")
        idx = cls(codes, sigmas, thumbs, items, model=model if model is not None else meta["model"],
                  model_name=meta["model"], roots=meta.get("roots", []), tta=meta.get("tta", 1),
                  fit=meta.get("fit", "resize"), next_id=meta.get("next_id"), store=store.resolve(),
                  failed=meta.get("failed", []), orient=meta.get("orient", "none"),  # stores before orient: none
                  usearch=meta.get("usearch"))
        idx._mmap = bool(mmap)
        if (store / "vectors.usearch").exists():
            idx._usearch_path = (store / "vectors.usearch").resolve()
        return idx

    # ------------------------------------------------------------------ search
    def build_usearch(self, connectivity: int | None = None, expansion_add: int | None = None,
                      expansion_search: int | None = None, threads: int = 0, dtype: str | None = None,
                      progress: bool = False):
        """Build the HNSW graph of the codes (usearch, squared Euclidean metric); saved with the index.

        Parameters
        ----------
        connectivity : int, optional
            Links per node (HNSW's ``M``; default 16). More links: better recall at the same
            ``expansion_search``, a bigger graph (about ``8 connectivity`` bytes per image) and a slower build.
        expansion_add : int, optional
            Candidate list while inserting (``efConstruction``; default 128): a better graph, a slower build.
        expansion_search : int, optional
            Default candidate list while searching (``ef``; default :data:`USEARCH_DEFAULTS`); recall rises
            and queries slow down with it. Can be changed later (:attr:`usearch_settings`, or per search).
        threads : int
            Threads for building (0: all cores).
        dtype : {"f32", "f16"}, optional
            How the graph stores the vectors (default ``"f32"``). ``"f16"`` halves that part of the graph;
            the results are re-ranked with the float32 codes either way.
        progress : bool
            A progress bar over the codes.

        Returns
        -------
        usearch.index.Index
            The graph (also kept, and saved by :meth:`save`).
        """
        st = self._check_settings(connectivity=connectivity, expansion_add=expansion_add,
                                  expansion_search=expansion_search, dtype=dtype)
        if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or threads < 0:
            raise InputError(f"threads must be an integer >= 0 (0: all cores), got {threads!r}")
        from tqdm.auto import tqdm

        uindex_cls = _usearch_index()
        u = uindex_cls(ndim=int(np.shape(self.codes)[1]), metric="l2sq", dtype=st["dtype"],
                       connectivity=st["connectivity"], expansion_add=st["expansion_add"],
                       expansion_search=st["expansion_search"])
        ids = self.items["id"].to_numpy().astype(np.uint64)
        step = 1 << 16
        with tqdm(total=len(ids), desc="HNSW graph", unit="code", disable=not progress) as bar:
            for i in range(0, len(ids), step):
                u.add(ids[i:i + step], np.ascontiguousarray(self.codes[i:i + step], np.float32), threads=int(threads))
                bar.update(len(ids[i:i + step]))
        self._usearch, self._usearch_view = u, False
        self.usearch_settings = st
        return u

    def _check_settings(self, **kw) -> dict:
        """:attr:`usearch_settings` updated with the given (non-None) values, validated."""
        st = {**USEARCH_DEFAULTS, **self.usearch_settings, **{k: v for k, v in kw.items() if v is not None}}
        for key in ("connectivity", "expansion_add", "expansion_search"):
            v = st[key]
            lo = 2 if key == "connectivity" else 1
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise InputError(f"usearch {key} must be an integer >= {lo}, got {v!r}")
            st[key] = int(v)
        if st["dtype"] not in _USEARCH_DTYPES:
            raise InputError(f"usearch dtype must be one of {', '.join(_USEARCH_DTYPES)}, got {st['dtype']!r}")
        return st

    @property
    def has_graph(self) -> bool:
        """Whether an HNSW graph was built or saved for this index."""
        return self._usearch is not None or (self._usearch_path is not None and self._usearch_path.exists())

    def _open_graph(self, view: bool):
        p = self._usearch_path
        try:
            u = _usearch_index().restore(str(p), view=view)
        except (ValueError, RuntimeError) as exc:
            raise ReadError(p, f"cannot open the HNSW graph: {exc}") from exc
        if u is None:
            raise ReadError(p, "the HNSW graph is missing")
        if len(u) != len(self):
            raise ReadError(p, f"the HNSW graph holds {len(u)} codes, the index {len(self)}: rebuild it "
                               "(Index.build_usearch, or scopenet index --overwrite --usearch)")
        return u

    def _graph(self):
        """The HNSW graph: built, or the saved one opened (memory-mapped when the index was loaded so);
        built now (in memory, not saved until :meth:`save`) when there is none."""
        if self._usearch is None:
            if self._usearch_path is None or not self._usearch_path.exists():
                return self.build_usearch()
            self._usearch = self._open_graph(view=self._mmap)
            self._usearch_view = self._mmap
        return self._usearch

    def _mutable_graph(self):
        """The graph loaded into memory (a memory-mapped view is read-only), or None without one."""
        if self._usearch is not None and not self._usearch_view:
            return self._usearch
        if self._usearch_path is None or not self._usearch_path.exists():
            return None
        self._usearch = self._open_graph(view=False)
        self._usearch_view = False
        return self._usearch

    def query_code(self, query: Any) -> np.ndarray:
        """The code ``(latent,)`` of a query: a file path, a 2-D array, a Micrograph, or a code itself."""
        if isinstance(query, (str, os.PathLike)):
            frames = read_frames(query)
            query = frames[0][1]
        a = np.asarray(getattr(query, "data", query))
        lat = int(np.shape(self.codes)[1])
        if a.ndim == 1 and a.shape[0] == lat and np.issubdtype(a.dtype, np.floating):
            return a.astype(np.float32)
        return self.model.encode(query, tta=self.tta, fit=self.fit, orient=self.orient)[0][0]

    def _mask(self, modality, fov, pixel_size) -> np.ndarray | None:
        it = self.items
        m = np.ones(len(it), bool)
        used = False
        if modality is not None:
            mods = {modality.lower()} if isinstance(modality, str) else {str(x).lower() for x in modality}
            m &= it["modality"].astype(str).str.lower().isin(mods).to_numpy()
            used = True
        for col, rng in (("fov_m", fov), ("pixel_size_m", pixel_size)):
            if rng is None:
                continue
            lo, hi = rng
            v = it[col].to_numpy(float)
            ok = np.isfinite(v)
            if lo is not None:
                ok &= v >= lo
            if hi is not None:
                ok &= v <= hi
            m &= ok
            used = True
        return m if used else None

    def _exact(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and distances of the ``k`` nearest codes: one pass over the codes in chunks ranking by
        ``|c|^2 / 2 - c.q`` (half the squared distance less a constant; the halved norms are computed once),
        keeping ``k + 8`` candidates, then the candidates ranked by their exact float64 distances."""
        codes = self.codes
        k0, k = k, k + 8  # a few spare candidates for the exact re-ranking
        if self._norms is None:  # |c|^2 / 2 per code
            self._norms = np.concatenate([0.5 * np.einsum("ij,ij->i", np.asarray(codes[i:i + CHUNK], np.float32),
                                                          np.asarray(codes[i:i + CHUNK], np.float32))
                                          for i in range(0, len(codes), CHUNK)]) if len(codes) else np.zeros(0)
        best_i, best_s = np.zeros(0, np.int64), np.zeros(0, np.float32)
        bound = np.inf  # the k-th best score so far: later chunks keep only codes scoring at most this
        for s0 in range(0, len(codes), CHUNK):
            c = np.asarray(codes[s0:s0 + CHUNK], np.float32)
            sc = self._norms[s0:s0 + len(c)] - c @ q
            if mask is not None:
                sc = np.where(mask[s0:s0 + len(c)], sc, np.inf)
            cand = np.flatnonzero(sc <= bound) if np.isfinite(bound) else np.arange(len(sc))
            if len(cand) > k:
                cand = cand[np.argpartition(sc[cand], k - 1)[:k]]
            best_i = np.concatenate([best_i, cand + s0])
            best_s = np.concatenate([best_s, sc[cand]])
            if len(best_i) > k:
                keep = np.argpartition(best_s, k - 1)[:k]
                best_i, best_s = best_i[keep], best_s[keep]
            if len(best_i) == k:
                bound = float(best_s.max())
        cand = np.sort(best_i[np.isfinite(best_s)])
        # the expansion |c|^2 - 2 c.q + |q|^2 loses ~1e-5 to cancellation: rank the candidates exactly
        exact = ((np.asarray(codes[cand], np.float64) - q.astype(np.float64)) ** 2).sum(1)
        order = np.lexsort((cand, exact))[:k0]
        return cand[order], np.sqrt(exact[order])

    def _rows_of_keys(self, keys: np.ndarray) -> np.ndarray:
        """Rows of :attr:`items` holding the graph keys (image ids); unknown keys are dropped."""
        if self._key_order is None:
            ids = self.items["id"].to_numpy().astype(np.int64)
            order = np.argsort(ids, kind="stable")
            self._key_order = (order, ids[order])
        order, sid = self._key_order
        keys = np.asarray(keys).astype(np.int64)
        if not len(sid) or not len(keys):
            return np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(sid, keys), len(sid) - 1)
        return order[pos[sid[pos] == keys]]

    def _approx(self, q: np.ndarray, k: int, mask: np.ndarray | None,
                expansion_search: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and distances of (about) the ``k`` nearest codes: :data:`OVERFETCH` ``k`` candidates from the
        HNSW graph (more under a filter, enough that as many pass it), ranked by their exact float64
        distances from the stored codes, as :meth:`_exact` ranks its candidates."""
        n = len(self)
        want = OVERFETCH * k
        if mask is not None:
            kept = int(mask.sum())
            if kept <= max(OVERFETCH * k, EXACT_BELOW):
                return self._exact(q, k, mask)  # a small subset: exact is cheaper than over-fetching the graph
            want = int(np.ceil(OVERFETCH * k * n / kept))
        want = max(k, min(n, want))
        u = self._graph()
        u.expansion_search = max(int(expansion_search), want)
        m = u.search(np.ascontiguousarray(q, np.float32), want, threads=1)
        rows = self._rows_of_keys(m.keys)
        if mask is not None:
            rows = rows[mask[rows]]
            if len(rows) < k:  # the filter rejected too many of the graph's candidates
                return self._exact(q, k, mask)
        rows = np.unique(rows)  # sorted: one pass over a memory-mapped file
        exact = ((np.asarray(self.codes[rows], np.float64) - q.astype(np.float64)) ** 2).sum(1)
        order = np.lexsort((rows, exact))[:k]
        return rows[order], np.sqrt(exact[order])

    def search(self, query: Any, k: int = 5, *, modality: str | Sequence[str] | None = None,
               fov: tuple[float | None, float | None] | None = None,
               pixel_size: tuple[float | None, float | None] | None = None, backend: str = "exact",
               expansion_search: int | None = None):
        """The ``k`` images nearest to ``query`` (Euclidean distance between codes).

        Parameters
        ----------
        query : path, ndarray (H, W), Micrograph, or a code (latent,)
        k : int
        modality : str or list of str, optional
            Keep only these modalities (case-insensitive, e.g. ``"STEM"``, ``["STM", "AFM"]``).
        fov, pixel_size : (min, max) in metres, optional
            Keep only images whose field of view (longer side) / pixel size lies in the range (either
            bound may be None); images without calibration are then excluded.
        backend : {"exact", "usearch"}
            ``"usearch"``: candidates from the HNSW graph (built now if the index has none), re-ranked
            exactly: the distances equal the exact backend's, but a true neighbour may be missed.
        expansion_search : int, optional
            The graph's candidate list for this search (``backend="usearch"``; default
            ``usearch_settings["expansion_search"]``): higher finds more of the true neighbours, slower.

        Returns
        -------
        pandas.DataFrame with columns ``rank, path, frame, distance, modality, pixel_size_m, fov_m, row``
        (``row``: the row of :attr:`items`), nearest first.
        """
        import pandas as pd

        if not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        if backend not in ("exact", "usearch"):
            raise InputError(f"backend must be 'exact' or 'usearch', got {backend!r}")
        ef = self._check_settings(expansion_search=expansion_search)["expansion_search"]
        q = self.query_code(query)
        mask = self._mask(modality, fov, pixel_size)
        if backend == "exact":
            rows, d = self._exact(q, int(k), mask)
        else:
            rows, d = self._approx(q, int(k), mask, ef)
        rows = np.asarray(rows, np.int64)
        col = lambda c: self.items[c].to_numpy()[rows]  # noqa: E731  (no DataFrame-wide take: 1e6 rows cost ms)
        return pd.DataFrame({"rank": np.arange(1, len(rows) + 1), "path": col("path"), "frame": col("frame"),
                             "distance": d.astype(np.float64), "modality": col("modality"),
                             "pixel_size_m": col("pixel_size_m"), "fov_m": col("fov_m"), "row": rows})

    def contact_sheet(self, query: Any, results, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """A PNG: the query's thumbnail, then each result's, labelled with rank and distance."""
        from ..._fileutil import atomic_output
        from .preprocess import thumbnail

        if isinstance(query, (str, os.PathLike)):
            query = read_frames(query)[0][1]
        a = np.asarray(getattr(query, "data", query), np.float32)
        tiles = [thumbnail(a, THUMB)] if a.ndim == 2 else []
        labels = ["query"] if tiles else []
        for r in results.itertuples():
            tiles.append(np.asarray(self.thumbs[int(r.row)]))
            labels.append(f"#{r.rank} d={r.distance:.2f}")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(tiles), figsize=(1.6 * len(tiles), 1.9), squeeze=False)
        for ax, t, lab in zip(axes[0], tiles, labels):
            ax.imshow(t, cmap="gray", vmin=0, vmax=255)
            ax.set_title(lab, fontsize=8)
            ax.axis("off")
        fig.tight_layout()
        path = Path(path)
        with atomic_output(path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        return path


def _block_rows(a) -> int:
    """Rows of ``a`` per block of at most :data:`STREAM_BYTES` (and :data:`STREAM_ROWS` rows)."""
    row = max(1, int(np.prod(np.shape(a)[1:], dtype=np.int64)) * np.dtype(a.dtype).itemsize)
    return int(max(1, min(STREAM_ROWS, STREAM_BYTES // row)))


def _write_npy(path: Path, parts, dtype) -> int:
    """Write the rows of ``parts`` (``[(array, row mask or None), ...]``), in order, to the ``.npy`` file
    ``path`` as ``dtype``, block by block through a memory map of the new file: the memory used is one
    block, whatever the arrays' sizes (memory-mapped ones are read a block at a time). Returns the rows."""
    counts = [len(a) if m is None else int(np.count_nonzero(m)) for a, m in parts]
    n = sum(counts)
    tail = next((np.shape(a)[1:] for (a, _), c in zip(parts, counts) if c), np.shape(parts[0][0])[1:])
    for (a, _), c in zip(parts, counts):
        if c and np.shape(a)[1:] != tail:
            raise WriteError(path, f"rows of shape {np.shape(a)[1:]} and {tail} cannot share a store")
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, *tail))
    j = 0
    for (a, m), c in zip(parts, counts):
        if not c:
            continue
        step = _block_rows(a)
        for i in range(0, len(a), step):
            blk = a[i:i + step]
            if m is not None:
                sel = m[i:i + step]
                if not sel.all():
                    blk = blk[sel]
            out[j:j + len(blk)] = blk
            j += len(blk)
    out.flush()
    del out
    return n


class _Spill:
    """The rows of newly embedded images, appended to raw files in ``folder`` as they come (bounded
    memory) and read back memory-mapped by :meth:`arrays`."""

    def __init__(self, folder: Path, latent: int):
        self.folder, self.n = Path(folder), 0
        self.tails = {"codes": (latent,), "sigmas": (latent,), "thumbs": (THUMB, THUMB)}
        self.files = {k: open(self.folder / f"{k}.raw", "wb") for k in _ARRAYS}  # noqa: SIM115

    def write(self, codes: np.ndarray, sigmas: np.ndarray, thumbs: np.ndarray) -> None:
        for k, a in zip(_ARRAYS, (codes, sigmas, thumbs)):
            self.files[k].write(np.ascontiguousarray(a, _ARRAYS[k]).tobytes())
        self.n += len(codes)

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def arrays(self) -> dict[str, np.ndarray]:
        self.close()
        if not self.n:
            return {k: np.zeros((0, *self.tails[k]), dt) for k, dt in _ARRAYS.items()}
        return {k: np.memmap(self.folder / f"{k}.raw", dtype=dt, mode="r", shape=(self.n, *self.tails[k]))
                for k, dt in _ARRAYS.items()}


def _usearch_index():
    try:
        from usearch.index import Index as UIndex
    except ImportError as exc:  # pragma: no cover - the extra is installed in development
        raise InputError("the usearch backend needs the 'search' extra: pip install 'scopenet[search]'") from exc
    return UIndex
