"""``scopenet bench TASK [OPTIONS]``: run a task's benchmark and print its comparison table.

Each task's ``scopenet.tasks.<task>.bench`` module provides ``main(argv: list[str]) -> int`` with its
own argparse options (``scopenet bench denoise --help`` shows them).
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

TASKS = {
    "denoise": "scopenet.tasks.denoise.bench",
    "inpaint": "scopenet.tasks.inpaint.bench",
    "superres": "scopenet.tasks.superres.bench",
    "classify": "scopenet.tasks.classify.bench",
    "simulate": "benchmarks.bench_simulate",
    "alrc": "benchmarks.bench_alrc",
}


def register(app: typer.Typer) -> None:
    @app.command(
        "bench",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    )
    def bench(ctx: typer.Context, task: str = typer.Argument(..., help=f"one of: {', '.join(TASKS)}")):
        """Run a benchmark (denoise, inpaint, classify...) and print its table; extra options go to it."""
        if task not in TASKS:
            typer.secho(f"error: unknown benchmark {task!r}; choose from {', '.join(TASKS)}", fg="red", err=True)
            raise typer.Exit(2)
        if TASKS[task].startswith("benchmarks.") and (Path.cwd() / "benchmarks").is_dir():
            # repository benchmarks live beside the package, not inside it: run them from a checkout
            sys.path.insert(0, str(Path.cwd()))
        try:
            mod = importlib.import_module(TASKS[task])
        except ModuleNotFoundError as exc:
            hint = " (run it from a scopenet checkout)" if TASKS[task].startswith("benchmarks.") else ""
            typer.secho(f"error: the {task} benchmark is not available{hint} ({exc})", fg="red", err=True)
            raise typer.Exit(2) from None
        raise typer.Exit(int(mod.main(list(ctx.args)) or 0))
