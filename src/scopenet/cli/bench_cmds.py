"""``scopenet bench NAME [OPTIONS]``: run a benchmark and print its comparison table.

The benchmarks are those of :data:`scopenet.tasks._bench.REGISTRY` (the registry
``benchmarks/run_all.py`` runs too). Each has its own options besides the shared
``--quick --images --out --json --threads --seed`` (``scopenet bench NAME --help`` shows them);
``scopenet bench --help`` lists the benchmarks.
"""
from __future__ import annotations

import typer

from ..tasks._bench import REGISTRY, load_bench


def _listing() -> str:
    w = max(len(n) for n in REGISTRY)
    lines = ["Usage: scopenet bench NAME [OPTIONS]", "",
             "Run a benchmark and print its table (model, classical baselines and the unprocessed input).",
             "Shared options: --quick --images DIR --out FILE.md --json FILE.json --threads N --seed N;",
             "'scopenet bench NAME --help' shows a benchmark's own options.", "", "Benchmarks:"]
    lines += [f"  {n:<{w}}  {e.summary}" + ("  [from a scopenet checkout]" if e.in_repository else "")
              for n, e in REGISTRY.items()]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command(
        "bench",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )
    def bench(ctx: typer.Context, name: str = typer.Argument(None, metavar="NAME",
                                                             help=f"one of: {', '.join(REGISTRY)}")):
        """Run a benchmark (denoise, inpaint, superres, classify...) and print its table; extra options go to it."""
        if name in (None, "--help", "-h", "help"):
            typer.echo(_listing())
            raise typer.Exit(0 if name is not None else 2)
        if name not in REGISTRY:
            typer.secho(f"error: unknown benchmark {name!r}; choose from {', '.join(REGISTRY)}", fg="red", err=True)
            raise typer.Exit(2)
        try:
            mod = load_bench(name)
        except ModuleNotFoundError as exc:
            hint = " (run it from a scopenet checkout)" if REGISTRY[name].in_repository else ""
            typer.secho(f"error: the {name} benchmark is not available{hint} ({exc})", fg="red", err=True)
            raise typer.Exit(2) from None
        raise typer.Exit(int(mod.main(list(ctx.args)) or 0))
