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


def _flat_numbers(m: dict, prefix: str = ""):
    """(key, value) for the scalar numbers of a possibly nested metrics dict, depth-first."""
    for k, v in m.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            yield key, v
        elif isinstance(v, dict):
            yield from _flat_numbers(v, prefix=f"{key}.")


def _metrics(m: dict, limit: int = 2) -> str:
    """A short summary of a model card's first metrics (the full card is in its JSON)."""
    parts = [f"{k}={v:.4g}" for k, v in list(_flat_numbers(m or {}))[:limit]]
    return "\n".join(parts) or "-"


@models_app.command("list")
def list_cmd():
    """Show the installed models: name, task, architecture, size and metrics."""
    from rich.console import Console
    from rich.table import Table

    from ..weights import cache_dir, list_models

    with user_errors():
        models = list_models()
        console = Console()
        if not models:
            console.print(f"no models installed (looked in scopenet/weights and {cache_dir()})")
            return
        table = Table(title="scopenet models")
        for col in ("name", "task", "architecture", "size", "metrics", "source"):
            table.add_column(col, no_wrap=col != "metrics", overflow="fold")
        for m in models:
            table.add_row(m.name, m.task or "-", m.architecture, _size(m.size_bytes), _metrics(m.metrics), m.source)
        console.print(table)


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
