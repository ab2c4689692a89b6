"""CLI command: ``scopenet classify IMAGES... [--model NAME] [--cam DIR] [-o out.csv]``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import user_errors


def _read_2d(path: Path):
    """The first 2-D frame of an image file as an array (``ReadError`` naming the file otherwise)."""
    import numpy as np

    from .. import io as sio
    from ..errors import ReadError

    img = sio.read(path)
    data = np.asarray(img.data, dtype=np.float64)
    while data.ndim > 2:
        data = data[0]
    if data.ndim != 2 or min(data.shape) < 2:
        raise ReadError(path, f"not a 2-D image (shape {np.shape(img.data)})")
    if not np.isfinite(data).any():
        raise ReadError(path, "image has no finite pixel")
    return data


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
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def classify_cmd(
    images: List[Path] = typer.Argument(..., help="Image files (any format scopenet reads)."),
    model: str = typer.Option("hsi-six", "--model", "-m", help="Pretrained name (hsi-six, good-bad) or a saved model."),
    cam: Optional[Path] = typer.Option(None, "--cam", help="Folder for class-activation-map PNGs."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="CSV file for the results."),
    threshold: Optional[float] = typer.Option(
        None, help="Decision threshold for multi-label models (default: each category's from the model card)."),
    tta: Optional[int] = typer.Option(
        None, "--tta", min=1, max=8,
        help="Average over this many flips/rotations of each image (8 = all; N x the time). Default: the model card's."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing CSV."),
):
    """Judge tip state / image quality of SPM images; print a table and write CSV."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from .._fileutil import atomic_output
    from ..errors import WriteError
    from ..tasks.classify import TipClassifier, classify
    from ..tasks.classify.preprocess import prepare

    with user_errors():
        out = output or Path("classify.csv")
        if out.exists() and not overwrite:
            raise WriteError(out, "file exists (pass --overwrite to replace it)")
        clf = TipClassifier.pretrained(model) if "/" not in model and not model.endswith(".json") \
            else TipClassifier.load(Path(model))
        arrays = [_read_2d(p) for p in images]  # any unreadable file stops here, before anything is written
        df = classify(arrays, clf, threshold=threshold, tta=tta)
        df.insert(0, "file", [str(p) for p in images])
        with atomic_output(out, overwrite=overwrite) as tmp:
            df.to_csv(tmp, index=False, float_format="%.4f")

        if cam is not None:
            cam.mkdir(parents=True, exist_ok=True)
            X = prepare(arrays, clf.config.size, clf.config.flatten)
            probs = df[clf.categories].to_numpy()
            target = [int(np.argmax(p)) for p in probs]
            if "bad_blurry" in clf.categories:  # "why was it judged bad": explain Bad/Blurry
                target = [clf.categories.index("bad_blurry")] * len(X)
            elif "bad" in clf.categories:
                target = [clf.categories.index("bad")] * len(X)
            for i, p in enumerate(images):
                m = clf.cam(X[i:i + 1], target[i], inputs_prepared=True)[0]
                name = clf.categories[target[i]]
                cam_png(X[i, 0], m, cam / f"{p.stem}-cam-{name}.png", f"{name} p={probs[i, target[i]]:.2f}")

        table = Table(title=f"scopenet classify ({model})")
        table.add_column("file")
        for c in clf.categories:
            table.add_column(c, justify="right")
        table.add_column("labels")
        for _, row in df.iterrows():
            table.add_row(Path(row["file"]).name, *[f"{row[c]:.2f}" for c in clf.categories], row["labels"])
        Console().print(table)
        typer.echo(f"wrote {out}" + (f" and CAM images in {cam}" if cam is not None else ""))


def register(app: typer.Typer) -> None:
    """Add ``scopenet classify`` to the app."""
    app.command("classify")(classify_cmd)
