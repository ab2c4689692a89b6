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
    vectors.usearch optional HNSW graph (``backend="usearch"``; the ``search`` extra)

Search backends: ``"exact"`` (default; numpy, streamed over the memory-mapped codes in chunks) and
``"usearch"`` (an approximate HNSW graph from the maintained `usearch <https://github.com/unum-cloud/usearch>`_
library, imported lazily; ``pip install scopenet[search]``), which scales past one machine's memory (the
graph file is memory-mapped as well). :meth:`Index.update` adds the files a folder has gained, re-embeds
changed ones and drops deleted ones, without re-embedding the rest.
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
                 orient: str = "canonical"):
        self.codes, self.sigmas, self.thumbs, self.items = codes, sigmas, thumbs, items.reset_index(drop=True)
        self._model = model
        self.model_name = model_name
        self.roots = [str(r) for r in roots]
        self.tta, self.fit, self.orient = int(tta), fit, orient
        self.next_id = int(next_id if next_id is not None else (int(items["id"].max()) + 1 if len(items) else 0))
        self.store = Path(store) if store is not None else None
        self.failed = list(failed)
        self._norms: np.ndarray | None = None
        self._usearch = None

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
                     orient: str = "canonical"):
        import pandas as pd
        from tqdm.auto import tqdm

        from .preprocess import thumbnail

        rows, codes, sigmas, thumbs, failed = [], [], [], [], []
        nid = start_id
        for p in tqdm(files, desc="indexing", unit="file", disable=not progress):
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
        lat = est.latent
        items = pd.DataFrame(rows, columns=COLUMNS)
        return (np.asarray(codes, np.float32).reshape(-1, lat), np.asarray(sigmas, np.float32).reshape(-1, lat),
                np.asarray(thumbs, np.uint8).reshape(-1, THUMB, THUMB), items, failed, nid)

    @classmethod
    def build(cls, paths, store: str | os.PathLike | None = None, *, model: Any = "default", tta: int = 1,
              fit: str | None = None, orient: str | None = None, progress: bool = False, backend: str = "exact",
              overwrite: bool = False) -> "Index":
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
            idx.build_usearch()
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
        new = [Path(p) for p in now if p not in known or p in changed_paths]
        removed_ids = it["id"][~keep].to_numpy()
        n_changed = int(it["path"][~keep].isin(changed_paths).sum())
        codes, sigmas, thumbs, items, failed, nid = self._embed_files(sorted(new), self.model, self.tta, self.fit,
                                                                      progress, self.next_id, self.orient)
        self.codes = np.concatenate([np.asarray(self.codes)[keep], codes])
        self.sigmas = np.concatenate([np.asarray(self.sigmas)[keep], sigmas])
        self.thumbs = np.concatenate([np.asarray(self.thumbs)[keep], thumbs])
        self.items = pd.concat([it[keep], items], ignore_index=True) if len(items) else it[keep].reset_index(drop=True)
        self.next_id, self.failed = nid, failed
        self._norms = None
        if self._usearch is not None:
            if len(removed_ids):
                self._usearch.remove(removed_ids.astype(np.uint64))
            if len(items):
                self._usearch.add(items["id"].to_numpy().astype(np.uint64), codes)
        res = {"added": len(items) - n_changed, "changed": n_changed, "removed": int((~keep).sum()) - n_changed,
               "unchanged": int(keep.sum())}
        if self.store is not None:
            self.save(self.store, overwrite=True)
        return res

    # ------------------------------------------------------------------ files
    def save(self, store: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the index to the folder ``store`` (built beside it, then put in place)."""
        store = Path(store).expanduser().resolve()
        if store.exists() and not (store / "index.json").exists() and any(store.iterdir()):
            raise WriteError(store, "exists and is not an index store")
        if (store / "index.json").exists() and not overwrite and store != self.store:
            raise WriteError(store, "already holds an index (pass overwrite=True, or update() it)")
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{store.name}.partial-", dir=store.parent))
        try:
            np.save(tmp / "codes.npy", np.ascontiguousarray(self.codes, np.float32))
            np.save(tmp / "sigmas.npy", np.ascontiguousarray(self.sigmas, np.float32))
            np.save(tmp / "thumbs.npy", np.ascontiguousarray(self.thumbs, np.uint8))
            self.items.to_csv(tmp / "items.csv", index=False)
            if self._usearch is not None:
                self._usearch.save(str(tmp / "vectors.usearch"))
            meta = {"format": FORMAT, "model": self.model_name, "tta": self.tta, "fit": self.fit,
                    "orient": self.orient,
                    "roots": self.roots, "n": len(self), "latent": int(np.shape(self.codes)[1]),
                    "next_id": self.next_id, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "failed": self.failed}
            (tmp / "index.json").write_text(json.dumps(meta, indent=1))
            old = None
            if store.exists():
                old = store.with_name(f".{store.name}.old-{os.getpid()}")
                os.replace(store, old)
            os.replace(tmp, store)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.store = store
        return store

    @classmethod
    def load(cls, store: str | os.PathLike, *, model: Any = None, mmap: bool = True) -> "Index":
        """Open a saved index (codes memory-mapped unless ``mmap=False``); ``model`` overrides the
        embedding model named in ``index.json`` (it must be the one that made the codes)."""
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
                  failed=meta.get("failed", []), orient=meta.get("orient", "none"))  # stores before orient: none
        if (store / "vectors.usearch").exists():
            idx._usearch_path = store / "vectors.usearch"
        return idx

    # ------------------------------------------------------------------ search
    def build_usearch(self, connectivity: int = 16, expansion_add: int = 128, expansion_search: int = 256,
                      threads: int = 0):
        """Build the HNSW graph of the codes (usearch, ``l2sq``); saved with the index."""
        uindex_cls = _usearch_index()
        u = uindex_cls(ndim=int(np.shape(self.codes)[1]), metric="l2sq", dtype="f32", connectivity=connectivity,
                       expansion_add=expansion_add, expansion_search=expansion_search)
        ids = self.items["id"].to_numpy().astype(np.uint64)
        for i in range(0, len(ids), CHUNK):
            u.add(ids[i:i + CHUNK], np.ascontiguousarray(self.codes[i:i + CHUNK], np.float32), threads=threads)
        self._usearch = u
        return u

    def _graph(self):
        if self._usearch is None:
            p = getattr(self, "_usearch_path", None)
            if p is None:
                return self.build_usearch()
            self._usearch = _usearch_index().restore(str(p), view=True)
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

    def _approx(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        u = self._graph()
        ids = self.items["id"].to_numpy()
        if mask is not None and mask.sum() <= max(4 * k, 100_000):
            return self._exact(q, k, mask)  # a small subset: exact is cheaper than over-fetching the graph
        want = k if mask is None else min(len(ids), k * 16)
        m = u.search(q, want, threads=1)
        pos = np.searchsorted(ids, m.keys) if np.all(ids[:-1] <= ids[1:]) else \
            np.asarray([int(np.nonzero(ids == key)[0][0]) for key in m.keys])
        d = np.sqrt(np.maximum(np.asarray(m.distances, np.float64), 0))
        if mask is not None:
            ok = mask[pos]
            pos, d = pos[ok], d[ok]
        return pos[:k], d[:k]

    def search(self, query: Any, k: int = 5, *, modality: str | Sequence[str] | None = None,
               fov: tuple[float | None, float | None] | None = None,
               pixel_size: tuple[float | None, float | None] | None = None, backend: str = "exact"):
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

        Returns
        -------
        pandas.DataFrame with columns ``rank, path, frame, distance, modality, pixel_size_m, fov_m, row``
        (``row``: the row of :attr:`items`), nearest first.
        """
        import pandas as pd

        if not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        q = self.query_code(query)
        mask = self._mask(modality, fov, pixel_size)
        if backend == "exact":
            rows, d = self._exact(q, int(k), mask)
        elif backend == "usearch":
            rows, d = self._approx(q, int(k), mask)
        else:
            raise InputError(f"backend must be 'exact' or 'usearch', got {backend!r}")
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


def _usearch_index():
    try:
        from usearch.index import Index as UIndex
    except ImportError as exc:  # pragma: no cover - the extra is installed in development
        raise InputError("the usearch backend needs the 'search' extra: pip install 'scopenet[search]'") from exc
    return UIndex
