"""CLI commands of the micrograph search engine (:mod:`scopenet.tasks.embed`):

- ``scopenet index DIR... [-o STORE] [--usearch [--expansion-search 1024] [--connectivity 16]
  [--expansion-add 128]]``: embed every readable image under the folders into an index store (default
  ``DIR/.scopenet-index``), with the HNSW graph of the usearch backend; run again on the same store to add
  new files, re-embed changed ones and drop deleted ones (with ``--usearch``: add the graph to a store
  without one, rebuild it with other ``--connectivity``/``--expansion-add``, or change the stored
  ``--expansion-search``);
- ``scopenet search QUERY [-i STORE] --top 5 [--modality STEM] [--fov-min 5nm --fov-max 50nm]
  [--backend usearch [--expansion-search N]]``: print the nearest images (path and distance) and write a
  contact sheet PNG;
- ``scopenet map STORE -o map.html [--sigma] [--layout uniform]``: a self-contained interactive t-SNE map.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import InputError
from ._common import check_absent, check_writable, quiet_option, show_progress, user_errors

DEFAULT_STORE = ".scopenet-index"
_UNITS = {"pm": 1e-12, "a": 1e-10, "å": 1e-10, "nm": 1e-9, "um": 1e-6, "µm": 1e-6, "mm": 1e-3, "m": 1.0}


def parse_length(text: Optional[str]) -> Optional[float]:
    """``"20nm"``, ``"1.5 um"``, ``"3e-9"`` (metres) -> metres; None stays None."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-zA-Zµå]*)\s*", text)
    unit = (m.group(2) if m else "").lower() or "m"
    if not m or unit not in _UNITS:
        raise InputError(f"cannot read the length {text!r}: give a number and a unit (pm, A, nm, um, mm, m)")
    try:
        return float(m.group(1)) * _UNITS[unit]
    except ValueError:
        raise InputError(f"cannot read the length {text!r}") from None


def index_cmd(
    folders: List[Path] = typer.Argument(..., metavar="DIR...", help="Folders (searched recursively) or files."),
    store: Optional[Path] = typer.Option(None, "--output", "-o",
                                         help=f"Index store folder (default DIR/{DEFAULT_STORE} for one DIR)."),
    model: str = typer.Option("default", "--model", "-m", help="Embedding model: installed name or path."),
    tta: int = typer.Option(1, "--tta", min=1, max=8,
                            help="Flipped/rotated views averaged per image (codes are orientation-invariant "
                                 "already through each image's canonical view; 8 is 8x slower)."),
    fit: Optional[str] = typer.Option(None, "--fit", help="'resize' (default) or 'tiles'."),
    usearch: bool = typer.Option(False, "--usearch", help="Also build the usearch HNSW graph (search extra)."),
    expansion_search: Optional[int] = typer.Option(
        None, "--expansion-search", help="With --usearch: the graph's default search depth (default 1024; higher "
                                         "finds more of the true nearest images, slower; see the docs)."),
    connectivity: Optional[int] = typer.Option(None, "--connectivity",
                                               help="With --usearch: links per image in the graph (default 16)."),
    expansion_add: Optional[int] = typer.Option(None, "--expansion-add",
                                                help="With --usearch: search depth while building (default 128)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rebuild an existing store from scratch."),
    quiet: bool = quiet_option(),
):
    """Embed the micrographs under DIR into a searchable index (updated incrementally when run again)."""
    from ..tasks.embed.index import Index

    with user_errors():
        graph = {k: v for k, v in (("connectivity", connectivity), ("expansion_add", expansion_add),
                                   ("expansion_search", expansion_search)) if v is not None}
        if graph and not usearch:
            raise InputError("--expansion-search, --connectivity and --expansion-add set the HNSW graph: add --usearch")
        if store is None:
            if len(folders) != 1 or not folders[0].is_dir():
                raise InputError("give -o STORE when indexing several folders or files")
            store = folders[0] / DEFAULT_STORE
        if (store / "index.json").exists() and not overwrite:
            idx = Index.load(store)
            known = set(idx.roots)
            new_roots = [str(Path(f).expanduser().resolve()) for f in folders]
            idx.roots = sorted(known | set(new_roots))
            res = idx.update(progress=show_progress(quiet))
            typer.echo(f"updated {store}: {res['added']} added, {res['changed']} changed, {res['removed']} removed, "
                       f"{res['unchanged']} unchanged ({len(idx)} images)")
            if usearch:
                _update_graph(idx, graph, quiet)
        else:
            check_writable(store, folder=True)
            idx = Index.build(folders, store, model=model, tta=tta, fit=fit, progress=show_progress(quiet),
                              backend="usearch" if usearch else "exact", overwrite=overwrite, usearch=graph)
            typer.echo(f"indexed {len(idx)} images into {store} (model {idx.model_name})")
            if usearch:
                typer.echo(f"HNSW graph: {_settings(idx)}")
        for f in idx.failed:
            typer.secho(f"skipped {f}", fg=typer.colors.YELLOW, err=True)


def _settings(idx) -> str:
    return ", ".join(f"{k} {v}" for k, v in idx.usearch_settings.items())


def _update_graph(idx, graph: dict, quiet: bool) -> None:
    """``scopenet index --usearch`` on an existing store: build the graph it lacks, rebuild it with other
    build settings, or store another default search depth."""
    build = {k: graph[k] for k in ("connectivity", "expansion_add") if k in graph}
    if not idx.has_graph or any(idx.usearch_settings[k] != v for k, v in build.items()):
        what = "rebuilt" if idx.has_graph else "built"
        idx.build_usearch(**graph, progress=show_progress(quiet))
    elif "expansion_search" in graph and graph["expansion_search"] != idx.usearch_settings["expansion_search"]:
        idx.usearch_settings = idx._check_settings(expansion_search=graph["expansion_search"])
        what = "set"
    else:
        typer.echo(f"HNSW graph up to date: {_settings(idx)}")
        return
    idx.save(idx.store, overwrite=True)
    typer.echo(f"HNSW graph {what}: {_settings(idx)}")


def search_cmd(
    query: Path = typer.Argument(..., metavar="QUERY", help="Query image (any format scopenet reads)."),
    store: Optional[Path] = typer.Option(None, "--index", "-i",
                                         help=f"Index store (default $SCOPENET_INDEX or ./{DEFAULT_STORE})."),
    top: int = typer.Option(5, "--top", "-k", min=1, help="Number of results."),
    modality: Optional[List[str]] = typer.Option(None, "--modality", help="Keep only this modality (repeatable)."),
    fov_min: Optional[str] = typer.Option(None, "--fov-min", help="Smallest field of view, e.g. 5nm."),
    fov_max: Optional[str] = typer.Option(None, "--fov-max", help="Largest field of view, e.g. 2um."),
    backend: str = typer.Option("exact", "--backend", help="'exact' (numpy) or 'usearch' (HNSW)."),
    expansion_search: Optional[int] = typer.Option(
        None, "--expansion-search", help="usearch backend: search depth (default: the index's, 1024 unless set at "
                                         "indexing); higher finds more of the true nearest images, slower."),
    sheet: Optional[Path] = typer.Option(None, "--sheet", help="Contact sheet PNG (default search-<query>.png)."),
    no_sheet: bool = typer.Option(False, "--no-sheet", help="Do not write a contact sheet."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing contact sheet."),
):
    """Find the images of an index most similar to QUERY; prints rank, distance and path."""
    from ..tasks.embed.index import Index

    with user_errors():
        store = store or Path(os.environ.get("SCOPENET_INDEX", DEFAULT_STORE))
        if not no_sheet:
            sheet = sheet or Path(f"search-{query.stem}.png")
            check_writable(sheet)
            check_absent(sheet, overwrite)
        fov = None
        if fov_min is not None or fov_max is not None:
            fov = (parse_length(fov_min), parse_length(fov_max))
        idx = Index.load(store)
        res = idx.search(query, top, modality=modality or None, fov=fov, backend=backend,
                         expansion_search=expansion_search)
        if not len(res):
            typer.echo("no images match the filters")
        for r in res.itertuples():
            frame = f" [frame {r.frame}]" if r.frame else ""
            typer.echo(f"{r.rank:>3}  {r.distance:8.3f}  {r.path}{frame}")
        if not no_sheet:
            idx.contact_sheet(query, res, sheet, overwrite=overwrite)
            typer.echo(f"wrote {sheet}")


def map_cmd(
    store: Path = typer.Argument(..., metavar="STORE", help="Index store (from scopenet index)."),
    output: Path = typer.Option(..., "--output", "-o", help="HTML file to write."),
    sigma: bool = typer.Option(False, "--sigma", help="Ede's sigma-weighted t-SNE."),
    layout: str = typer.Option("tsne", "--layout", help="'tsne' or 'uniform' (uniformly separated)."),
    grid: int = typer.Option(25, "--grid", min=0, help="Images-at-grid-points view (0: none)."),
    max_images: int = typer.Option(5000, "--max-images", min=3, help="A random subset beyond this."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
):
    """Write an interactive, self-contained HTML map of an index (hover a point to see the image)."""
    from ..tasks.embed.index import Index
    from ..tasks.embed.map import map_index

    with user_errors():
        check_writable(output)
        check_absent(output, overwrite)
        idx = Index.load(store)
        map_index(idx, output, sigma=sigma, layout=layout, grid=grid, max_images=max_images, overwrite=overwrite)
        typer.echo(f"wrote {output} ({min(len(idx), max_images)} images)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("index")(index_cmd)
    app.command("search")(search_cmd)
    app.command("map")(map_cmd)
