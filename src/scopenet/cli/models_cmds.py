"""CLI commands: ``scopenet models list`` and ``scopenet models export``."""
from __future__ import annotations

from pathlib import Path

import typer

from ._common import user_errors

models_app = typer.Typer(help="Installed pretrained models: list and export.", no_args_is_help=True)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def _headline(card) -> str:
    """The card's headline figure: value, then what it measures (else its first figure, named)."""
    h = card.metrics.headline
    if h is not None:
        return f"{h.value:.4g}  {h.label}"
    for k, v in card.metrics.values.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return f"{v:.4g}  {k}"
    return "-"


@models_app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")):
    """Show the installed models: name, task, version, headline figure and size (cached ones marked).

    The headline figure is the one each model card names (``metrics.headline``); every figure and the
    command that printed it are in the card (``scopenet models show NAME``).
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from ..weights import cache_dir, list_models

    with user_errors():
        models = list_models()
        if json_out:
            typer.echo(json.dumps([{"name": m.name, "task": m.task, "version": m.card.version,
                                    "architecture": m.architecture, "size_bytes": m.size_bytes, "source": m.source,
                                    "headline": m.headline.model_dump() if m.headline else None,
                                    "command": m.card.metrics.command} for m in models], indent=2))
            return
        console = Console()
        if not models:
            console.print(f"no models installed (looked in scopenet/weights and {cache_dir()})")
            return
        table = Table(title="scopenet models")
        table.add_column("name", no_wrap=True)
        table.add_column("task", overflow="fold")
        table.add_column("v", justify="right")
        table.add_column("headline figure", overflow="fold", ratio=1, min_width=16)
        table.add_column("size", no_wrap=True)
        for m in models:  # shipped models plain, the user's cached ones marked
            name = m.name if m.source == "shipped" else f"{m.name} ({m.source})"
            table.add_row(name, m.task or "-", str(m.card.version), _headline(m.card), _size(m.size_bytes))
        console.print(table)


@models_app.command("show")
def show_cmd(name: str = typer.Argument(..., help="Installed model name, or path of a saved model.")):
    """Print a model's card (JSON): architecture, settings, training, every metric and its command."""
    import json
    from pathlib import Path as _P

    from ..weights import find_model, read_card

    with user_errors():
        stem = _P(name) if ("/" in name or _P(name + ".json").exists()) else find_model(name)
        typer.echo(json.dumps(read_card(stem).to_dict(), indent=2))


@models_app.command("export")
def export_cmd(
    name: str = typer.Argument(..., help="Installed model name, or path of a saved model (stem or .safetensors)."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file (.onnx or .pt)."),
    size: int = typer.Option(64, help="Height and width of the example input used for tracing (pixels)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
):
    """Export a model to ONNX or TorchScript and check its outputs against PyTorch."""
    from ..errors import InputError
    from ..training.packaging import example_input, export_onnx, export_parity, export_torchscript, load_model

    with user_errors():
        if fmt not in ("onnx", "torchscript"):
            raise InputError(f"unknown export format {fmt!r}; use onnx or torchscript")
        model = load_model(name)
        x = example_input(model, size=size)
        (export_onnx if fmt == "onnx" else export_torchscript)(model, output, x, overwrite=overwrite)
        diff = export_parity(model, output, x)
        typer.echo(f"wrote {output} ({fmt}); max |difference| from PyTorch on a test input: {diff:.2e}")


def register(app: typer.Typer) -> None:
    """Add ``scopenet models ...`` to the app."""
    app.add_typer(models_app, name="models")
