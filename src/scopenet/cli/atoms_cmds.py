"""CLI command: ``scopenet atoms IMAGE... -o positions.csv [--overlay DIR] [--model NAME] [--tta N]
[--lattice-prior] [--dark-columns] [--no-second-look]``.

Every image's atoms (:func:`scopenet.find_atoms`) go into one CSV table, one row per atom, with the
columns ``file``, ``frame`` (for stacks), ``x``, ``y`` (px; x = column, y = row, pixel centres at
integers), ``x_m``, ``y_m`` (metres, empty when the file has no pixel size), ``sigma_px``, ``class``,
``confidence`` and the rest of the table (intensity, neighbour distance, strain). ``--overlay DIR`` also
writes ``DIR/<stem>-atoms.png`` (the image with its atoms coloured by class). ``--lattice-prior`` pulls each
position towards the midpoints of its same-class neighbour pairs (:func:`~scopenet.tasks.atoms.postprocess.lattice_prior`:
smaller errors on a regular lattice, but single-column displacements within about 3 sigma are shrunk too).
A scanning-probe topograph is levelled first (``AtomsConfig.level_topographs``), and so is its overlay.
``--dark-columns`` is for images whose columns are dark on a bright background (bright-field or ABF-STEM): the
image is turned over first (``AtomsConfig.dark_columns``). ``--no-second-look`` skips the search for columns the
network missed (``residual_contrast=None``, the model's version 6). The CSV is written to a
temporary name and renamed, and an existing one is kept unless ``--overwrite``. A file that cannot be
read is reported at the end and the others are still done (exit code 1 if any failed)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import check_absent, check_writable, pick_image, quiet_option, run_batch, signal_option, user_errors


def overlay_png(image, table, path: Path, overwrite: bool = False, title: str = "", warning: str = "") -> Path:
    """Write a PNG of ``image`` (2-D) with the atoms of ``table`` marked, coloured by class; ``warning`` (the
    out-of-distribution flag's reasons) is written on it in orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .._fileutil import atomic_output

    a = np.asarray(getattr(image, "data", image), float)
    h, w = a.shape
    fig = plt.figure(figsize=(6, 6 * h / w), dpi=max(100, min(300, int(max(h, w) / 6))))
    ax = fig.add_axes([0, 0, 1, 1])
    lo, hi = np.percentile(a, [0.5, 99.5])
    ax.imshow(a, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    if len(table):
        ms = float(np.clip(200.0 / max(h, w) * 8, 1.0, 6.0))
        for c, colour in zip(sorted(table["class"].unique()), ("tab:red", "tab:cyan", "tab:orange", "tab:green")):
            t = table[table["class"] == c]
            ax.plot(t["x"], t["y"], "+", color=colour, ms=ms, mew=0.8, label=f"class {c} ({len(t)})")
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    if title:
        ax.text(0.01, 0.01, title, transform=ax.transAxes, color="yellow", fontsize=7, va="bottom")
    if warning:
        import textwrap

        ax.text(0.01, 0.99, "\n".join(textwrap.wrap(f"unlike the training data: {warning}", 90)),
                transform=ax.transAxes, color="orange", fontsize=7, va="top",
                bbox={"facecolor": "black", "alpha": 0.6, "linewidth": 0})
    ax.set_axis_off()
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def atoms_cmd(
    inputs: List[Path] = typer.Argument(..., metavar="IMAGE...", help="Atomic-resolution images (any format "
                                        "scopenet reads): HAADF/ADF-STEM or SPM, bright atoms "
                                        "(dark ones with --dark-columns)."),
    output: Path = typer.Option(..., "--output", "-o", help="CSV file for the atom positions of every image."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Folder for one overlay PNG per image."),
    model: str = typer.Option("default", "--model", "-m", help="Installed model name or saved model path."),
    signal: Optional[str] = signal_option(),
    tta: int = typer.Option(1, "--tta", min=1, max=8, help="Flipped/rotated views averaged in the heatmap."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.01, max=0.99,
                                              help="Heatmap threshold (default: the model's)."),
    lattice_prior: bool = typer.Option(False, "--lattice-prior", help="Combine each position with its same-class "
                                       "neighbours' prediction (regular lattices; shrinks small single-column "
                                       "displacements)."),
    dark_columns: bool = typer.Option(False, "--dark-columns", help="The columns are dark on a bright background "
                                      "(bright-field or annular bright-field STEM): the image is turned over first."),
    no_second_look: bool = typer.Option(False, "--no-second-look", help="Do not look for columns the network missed "
                                        "in the image less the fitted atoms (faint partners of bright columns)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing CSV and overlays."),
    quiet: bool = quiet_option(),
):
    """Find atoms: sub-pixel positions, uncertainty, class and strain per atom, as one CSV table."""
    import pandas as pd

    import scopenet as sn

    from .._fileutil import atomic_output
    from ..tasks.atoms.model import is_topograph

    with user_errors():
        if output.suffix.lower() != ".csv":
            from ..errors import InputError

            raise InputError(f"{output}: the output must be a .csv file")
        check_writable(output)
        check_absent(output, overwrite)
        if overlay is not None:
            check_writable(overlay, folder=True)
            overlay.mkdir(parents=True, exist_ok=True)
        est = sn.AtomFinder.pretrained(model)
        if threshold is not None:
            est.config.threshold = threshold
        if lattice_prior:
            est.config.lattice_prior = True
        if dark_columns:
            est.config.dark_columns = True
        if no_second_look:
            est.config.residual_contrast = None

    tables: list = []

    def one(src: Path):
        img = pick_image(src, signal, quiet=quiet)
        res = est.predict(img, tta=tta)
        frames = res if isinstance(res, list) else [res]
        for i, df in enumerate(frames):
            df = df.copy()
            df.insert(0, "frame", i)
            df.insert(0, "file", str(src))
            tables.append(df)
            flag = " (looks unlike the training data: " + "; ".join(df.attrs.get("ood_reasons", [])) + ")" \
                if df.attrs.get("ood") else ""
            if not quiet:
                typer.echo(f"{src}{f' frame {i}' if len(frames) > 1 else ''}: {len(df)} atoms{flag}")
            if overlay is not None:
                o = overlay / f"{src.stem}{f'-{i}' if len(frames) > 1 else ''}-atoms.png"
                check_absent(o, overwrite)
                frame = img[i] if len(frames) > 1 else img
                if est.config.level_topographs and is_topograph(frame):  # show what the atoms were found in
                    frame = sn.flatten(frame, method="auto")
                overlay_png(frame, df, o, overwrite=overwrite, title=f"{src.name}: {len(df)} atoms",
                            warning="; ".join(df.attrs.get("ood_reasons", [])) if df.attrs.get("ood") else "")

    def write():
        if not tables:
            return
        with user_errors():
            out = pd.concat(tables, ignore_index=True)
            with atomic_output(output, overwrite=overwrite) as tmp:
                out.to_csv(tmp, index=False)
        if not quiet:
            typer.echo(f"wrote {output} ({len(out)} atoms from {len(tables)} image(s), model {est.name})")

    try:
        run_batch(list(inputs), one, description="atoms", quiet=quiet)
    except typer.Exit:
        write()  # the images that worked are still written; the exit code says some failed
        raise
    write()


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("atoms")(atoms_cmd)
