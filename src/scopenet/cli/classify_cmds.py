"""CLI command: ``scopenet classify IMAGES... [--model NAME] [--signal S] [--cam DIR] [-o out.csv]``.

The table goes to stdout; ``-o FILE.csv`` also writes the results as CSV (``-o -``: CSV on stdout
instead of the table). A file that cannot be read is reported at the end and the others are still
classified (exit code 1 if any failed). A 3-D stack (e.g. a ``scopenet simulate spm`` shard) gives one
row per frame, named ``file[k]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import (check_absent, check_writable, finish_failures, pick_image, progress, quiet_option,
                      signal_option, user_errors)
from ._common import error_message as _error_message


def _frames(path: Path, signal: Optional[str], quiet: bool) -> list[tuple[str, "object"]]:
    """``(name, 2-D array)`` for the chosen image of ``path``: one, or one per frame of a stack."""
    import numpy as np

    from ..errors import ReadError

    img = pick_image(path, signal, quiet=quiet)
    data = np.asarray(img.data, dtype=np.float64)
    if data.ndim == 3:
        frames = [(f"{path}[{k}]", data[k]) for k in range(data.shape[0])]
    else:
        frames = [(str(path), data)]
    for _, a in frames:
        if a.ndim != 2 or min(a.shape) < 2:
            raise ReadError(path, f"not a 2-D image (shape {np.shape(img.data)})")
        if not np.isfinite(a).any():
            raise ReadError(path, "image has no finite pixel")
    return frames


def cam_png(image, cam, path: Path, title: str = "") -> Path:
    """Write the (resized, standardised) input beside its CAM overlay as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._fileutil import atomic_output

    fig, ax = plt.subplots(1, 2, figsize=(5, 2.6), dpi=100)
    for a in ax:
        a.imshow(image, cmap="gray")
        a.axis("off")
    ax[1].imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    ax[0].set_title("input", fontsize=8)
    ax[1].set_title(title, fontsize=8)
    fig.tight_layout()
    try:
        with atomic_output(path, overwrite=True) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path


def _cam_name(name: str) -> str:
    """``dir/scan.sxm`` -> ``scan``; ``dir/shard.npz[3]`` -> ``shard-3``."""
    if name.endswith("]") and "[" in name:
        base, k = name[:-1].rsplit("[", 1)
        return f"{Path(base).stem}-{k}"
    return Path(name).stem


def classify_cmd(
    images: List[Path] = typer.Argument(..., help="Image files (any format scopenet reads; .npz stacks too)."),
    model: str = typer.Option("hsi-six", "--model", "-m",
                              help="Pretrained name (hsi-six, good-bad) or a saved model."),
    cam: Optional[Path] = typer.Option(None, "--cam", help="Folder for class-activation-map PNGs."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o",
        help="CSV file for the results (default: none, the table is printed); '-' prints CSV to stdout."),
    signal: Optional[str] = signal_option(),
    threshold: Optional[float] = typer.Option(
        None, help="Decision threshold for multi-label models (default: each category's from the model card)."),
    tta: Optional[int] = typer.Option(
        None, "--tta", min=1, max=8,
        help="Average over this many flips/rotations of each image (8 = all; N x the time). Default: the model card's."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing CSV (CAM images are always replaced)."),
    domain_check: bool = typer.Option(True, "--domain-check/--no-domain-check",
                                      help="Answer 'unknown' for images outside the model's training domain."),
    quiet: bool = quiet_option(),
):
    """Judge tip state / image quality of SPM images; print a table (and write CSV with -o).

    The models cover H:Si(100) STM topographs: hsi-six (default) real scans, six crowd-labelled
    categories; hsi-six-sim and hsi-six-sim-fast the same categories trained on simulated scans;
    good-bad a good/bad tip verdict trained on simulated scans. Images far from a model's training
    images (other surfaces, other channels, electron micrographs) are labelled 'unknown', with the
    reason in the CSV; the check catches about half of such images, so read every answer on other
    surfaces with care.
    """
    import numpy as np
    import pandas as pd

    import scopenet as sn

    from .._fileutil import atomic_output

    to_stdout = output is not None and str(output) == "-"
    csv_path = None if output is None or to_stdout else output
    with user_errors():
        # every output location is checked before any work: nothing is written if one cannot be
        check_absent(csv_path, overwrite)
        check_writable(csv_path)
        check_writable(cam, folder=True)
        clf = sn.TipClassifier.pretrained(model) if "/" not in model and not model.endswith(".json") \
            else sn.TipClassifier.load(Path(model))

    rows, frames, failures = [], [], []
    with progress(len(images), "classify", quiet) as step:
        for p in images:
            step(p.name, 0)
            try:
                fr = _frames(p, signal, quiet)
                df = sn.classify([a for _, a in fr], clf, threshold=threshold, tta=tta, check_domain=domain_check)
                df.insert(0, "file", [n for n, _ in fr])
                rows.append(df)
                frames.extend(fr)
            except (typer.Exit, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - reported at the end; the other files go on
                failures.append((str(p), _error_message(exc)))
            step()

    with user_errors():
        if rows:
            df = pd.concat(rows, ignore_index=True)
            if csv_path is not None:
                with atomic_output(csv_path, overwrite=overwrite) as tmp:
                    df.to_csv(tmp, index=False, float_format="%.4f")
            if cam is not None:
                from ..tasks.classify.preprocess import prepare

                cam.mkdir(parents=True, exist_ok=True)
                X = prepare([a for _, a in frames], clf.config.size, clf.config.flatten)
                probs = df[clf.categories].to_numpy()
                target = [int(np.argmax(p)) for p in probs]
                if "bad_blurry" in clf.categories:  # "why was it judged bad": explain Bad/Blurry
                    target = [clf.categories.index("bad_blurry")] * len(X)
                elif "bad" in clf.categories:
                    target = [clf.categories.index("bad")] * len(X)
                for i, (name, _) in enumerate(frames):
                    label = clf.categories[target[i]]
                    png = cam / f"{_cam_name(name)}-cam-{label}.png"
                    m = clf.cam(X[i:i + 1], target[i], inputs_prepared=True)[0]
                    cam_png(X[i, 0], m, png, f"{label} p={probs[i, target[i]]:.2f}")
            if to_stdout:
                typer.echo(df.to_csv(index=False, float_format="%.4f"), nl=False)
            else:
                from rich.console import Console
                from rich.table import Table

                table = Table(title=f"scopenet classify ({model})", title_justify="left")
                table.add_column("file", overflow="fold", ratio=3)
                for c in clf.categories:
                    table.add_column(c, justify="right", overflow="fold")
                table.add_column("labels", overflow="fold", ratio=1)
                for _, row in df.iterrows():
                    table.add_row(str(row["file"]), *[f"{row[c]:.2f}" for c in clf.categories],
                                  str(row["labels"]) if isinstance(row["labels"], str) else "")
                Console(soft_wrap=False).print(table)
                n_out = int((~df["in_domain"].astype(bool)).sum())
                if n_out:
                    chk = clf.domain_check
                    typer.echo(f"{n_out} of {len(df)} image(s) labelled 'unknown': outside the training domain of "
                               f"{clf.name} ({chk.surfaces if chk is not None else 'its training images'})")
                wrote = [str(x) for x in (csv_path,) if x is not None]
                if cam is not None:
                    wrote.append(f"CAM images in {cam}")
                if wrote:
                    typer.echo("wrote " + " and ".join(wrote))
    if failures:
        finish_failures(len(images), failures)


def register(app: typer.Typer) -> None:
    """Add ``scopenet classify`` to the app."""
    app.command("classify")(classify_cmd)
