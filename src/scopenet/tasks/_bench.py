"""The shared bench harness: one registry, one set of options, one timed loop, one table writer.

Every benchmark (``scopenet bench NAME``, ``python -m benchmarks.run_all``) is a :class:`BenchSpec`:
its description, its task-specific options and a ``run(args, report)`` function that loads the
data, scores the methods (the model, the classical baselines and the unprocessed input) with
:func:`timed_loop` and metrics from :mod:`scopenet.metrics`, and hands :class:`Table` objects to the
:class:`Report`. The harness owns what every bench shares:

- the options ``--quick --images --out --json --threads --seed`` (:meth:`BenchSpec.parser`);
- the table writer: markdown (``--out``, and stdout when it is not a terminal) and a rich table on a
  terminal whose cells fold instead of truncating (:class:`Table`);
- the summary rule: a model is compared with the best of *all* other rows, the unprocessed input
  included (:func:`compare_with_best`);
- ``--json``: the bench's raw results plus every table (:meth:`Report.write`);
- :data:`REGISTRY`, read by both the CLI and ``benchmarks/run_all.py``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BenchEntry", "REGISTRY", "load_bench", "BenchSpec", "Report", "Table", "timed_loop", "timed",
           "image_scores", "card_field", "best_of", "compare_with_best", "mean_sd", "SHARED_OPTIONS"]

SHARED_OPTIONS = ("--quick", "--images", "--out", "--json", "--threads", "--seed")


# ----------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class BenchEntry:
    """One registered benchmark: the module whose ``main(argv) -> int`` runs it, and its arguments
    for ``run_all`` (``quick``: the default smoke run; ``full``: the full protocol)."""

    name: str
    module: str
    summary: str
    quick: tuple[str, ...] = ("--quick",)
    full: tuple[str, ...] = ()

    @property
    def in_repository(self) -> bool:
        """True for benchmarks that live in the checkout's ``benchmarks/`` folder, not in the package."""
        return self.module.startswith("benchmarks.")


REGISTRY: dict[str, BenchEntry] = {e.name: e for e in (
    BenchEntry("denoise", "scopenet.tasks.denoise.bench", "denoisers vs filters and the noisy input (Ede ch. 6)"),
    BenchEntry("inpaint", "scopenet.tasks.inpaint.bench", "sparse-scan completion vs interpolation"),
    BenchEntry("superres", "scopenet.tasks.superres.bench", "super-resolution of coarse scans vs interpolation"),
    BenchEntry("classify", "scopenet.tasks.classify.bench", "tip-state classifiers vs pixel baselines"),
    BenchEntry("segment", "scopenet.tasks.segment.bench", "particle segmentation vs Otsu and local thresholds"),
    BenchEntry("track", "scopenet.tasks.track.bench", "particle tracking and drift correction on simulated movies"),
    BenchEntry("atoms", "scopenet.tasks.atoms.bench", "atom finding on held-out crystals vs LoG and atomap-style maxima"),
    BenchEntry("atoms-abtem", "scopenet.tasks.atoms.bench_abtem", "atom finding on abTEM-simulated HAADF images "
               "(a second simulator)"),
    BenchEntry("atoms-real", "scopenet.tasks.atoms.bench_real", "atom finding on real HAADF-STEM crops against "
               "columns a person marked (needs ../shared)"),
    BenchEntry("adaptive-scan", "scopenet.tasks.adaptive_scan.bench", "RL-steered scan paths vs fixed spiral and grid"),
    BenchEntry("exitwave", "scopenet.tasks.exitwave.bench", "exit-wave phase from the amplitude vs random phases "
               "(Ede ch. 7)"),
    BenchEntry("embed", "scopenet.tasks.embed.bench", "micrograph search: VAE codes vs PCA and pixels, speed"),
    BenchEntry("autopilot", "scopenet.autopilot.bench", "tip conditioning: actions to a good tip, agent vs random "
               "and the best fixed sequence"),
    BenchEntry("batch", "scopenet.scale.bench", "images/s with 1 and 2 Dask workers, memory per worker on a huge image"),
    BenchEntry("simulate", "benchmarks.bench_simulate", "throughput of the synthetic-data generators"),
    BenchEntry("simulate-spm", "benchmarks.bench_simulate_spm", "throughput of the SPM simulator"),
    BenchEntry("alrc", "benchmarks.bench_alrc", "ALRC experiment of Ede & Beanland (2020), table 1"),
)}


def load_bench(name: str, root: Path | None = None):
    """Import the module of the registered benchmark ``name``.

    Repository benchmarks (``benchmarks.*``) live beside the package, not inside it: they are found
    from a checkout (``root``, default the current folder). Raises ``KeyError`` for an unknown name
    and ``ModuleNotFoundError`` when the module cannot be imported.
    """
    entry = REGISTRY[name]
    if entry.in_repository:
        root = Path.cwd() if root is None else Path(root)
        if (root / "benchmarks").is_dir() and str(root) not in sys.path:
            sys.path.insert(0, str(root))
    return importlib.import_module(entry.module)


# ------------------------------------------------------------------------------------------ tables
def _cell(v: Any, fmt: str = "{:.3f}") -> str:
    if isinstance(v, (float, np.floating)):
        return "-" if not math.isfinite(float(v)) else fmt.format(float(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return "-" if v is None else str(v)


@dataclass
class Table:
    """A titled table with one writer for markdown and for the terminal.

    ``rows`` hold strings or numbers (floats formatted with ``float_format``); ``notes`` are printed
    under the table. Markdown cells are never shortened; the terminal table folds long cells (file
    names stay whole, on several lines) instead of truncating them.
    """

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    title: str = ""
    notes: list[str] = field(default_factory=list)
    float_format: str = "{:.3f}"

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    def cells(self) -> list[list[str]]:
        return [[_cell(v, self.float_format) for v in r] for r in self.rows]

    def markdown(self) -> str:
        """``| a | b |`` rows under a ``|---|`` rule; the title (if any) as a ``###`` heading."""
        esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines = [f"### {self.title}", ""] if self.title else []
        lines += ["| " + " | ".join(esc(c) for c in self.columns) + " |", "|---" * len(self.columns) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in self.cells()]
        if self.notes:
            lines += [""] + list(self.notes)
        return "\n".join(lines)

    def rich(self, width: int | None = None):
        """The table as a ``rich.table.Table``: first column left, others right, every cell folding.

        With the console's ``width``, the row labels (methods, file names) keep up to 32 characters a
        line where the other columns' longest words still fit; longer labels fold, never truncate.
        """
        from rich.markup import escape
        from rich.table import Table as RichTable

        t = RichTable(title=escape(self.title) if self.title else None, title_justify="left")
        cells = self.cells()
        first = None
        if width and self.columns:
            word = lambda c: max((len(w) for w in str(c).split()), default=1)  # noqa: E731
            others = sum(max([word(self.columns[i])] + [word(r[i]) for r in cells if len(r) > i])
                         for i in range(1, len(self.columns)))
            room = width - 3 * len(self.columns) - 1 - others
            want = min(32, max([len(str(self.columns[0]))] + [len(r[0]) for r in cells if r]))
            first = max(1, min(want, room)) if room > 1 else None
        for i, c in enumerate(self.columns):
            t.add_column(escape(str(c)), justify="left" if i == 0 else "right", overflow="fold",
                         min_width=first if i == 0 else None)
        for r in cells:  # escape: labels such as "[[bad->bad, ...]]" are not rich markup
            t.add_row(*[escape(c) for c in r])
        return t

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": list(self.columns), "rows": self.cells(), "notes": list(self.notes)}

    def __str__(self) -> str:
        return self.markdown()


class Report:
    """What a bench prints: text lines and :class:`Table` objects, echoed as they come.

    Tables go to the terminal as rich tables (folded cells) when stdout is a terminal and as markdown
    otherwise (``terminal=`` overrides). :meth:`write` saves the whole report as markdown (``--out``)
    and the raw results plus the tables as JSON (``--json``).
    """

    def __init__(self, name: str, *, terminal: bool | None = None, console=None, echo: bool = True):
        self.name = name
        self.parts: list[str | Table] = []
        self.data: dict[str, Any] = {}
        self.echo = echo
        self._terminal = terminal
        self._console = console

    @property
    def terminal(self) -> bool:
        if self._terminal is not None:
            return self._terminal
        return bool(getattr(sys.stdout, "isatty", lambda: False)())

    def line(self, text: str = "") -> None:
        self.parts.append(text)
        if self.echo:
            print(text, flush=True)

    def table(self, table: Table) -> Table:
        self.parts.append(table)
        if self.echo:
            if self.terminal:
                from rich.console import Console

                con = self._console or Console()
                con.print(table.rich(con.width))
                for n in table.notes:
                    con.print(n, markup=False, highlight=False)
            else:
                print("\n" + table.markdown() + "\n", flush=True)
        return table

    def tables(self) -> list[Table]:
        return [p for p in self.parts if isinstance(p, Table)]

    def markdown(self) -> str:
        """The whole report: lines as they are, each table set off by one blank line."""
        import re

        text = "\n".join("\n" + p.markdown() + "\n" if isinstance(p, Table) else p for p in self.parts)
        return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"

    def write(self, out: Path | None = None, json_path: Path | None = None) -> None:
        """Write ``--out`` (markdown) and ``--json`` atomically; existing files are replaced."""
        from .._fileutil import atomic_output

        if out is not None:
            with atomic_output(Path(out), overwrite=True) as tmp:
                Path(tmp).write_text(self.markdown())
        if json_path is not None:
            payload = {"bench": self.name, **self.data, "tables": [t.to_dict() for t in self.tables()]}
            with atomic_output(Path(json_path), overwrite=True) as tmp:
                Path(tmp).write_text(json.dumps(_jsonable(payload)))


def _jsonable(o: Any) -> Any:
    if isinstance(o, Mapping):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if math.isfinite(f) else None
    if isinstance(o, Path):
        return str(o)
    return o


# ---------------------------------------------------------------------------------- the timed loop
def timed(fn: Callable, *args, **kwargs) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), wall seconds)``."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def timed_loop(examples: Iterable, methods: Mapping[str, Callable] | Callable[[int, Any], Mapping[str, Callable]],
               score: Callable[[Any, Any], Mapping[str, float]], *, results: dict | None = None,
               limits: Mapping[str, int] | None = None, inputs: Callable[[Any], tuple] = lambda ex: (ex[0],),
               on_output: Callable[[str, Any, Any], None] | None = None,
               progress: Callable[[int, Any, dict], None] | None = None) -> dict:
    """Run every method on every example, timing each call and scoring its output.

    Parameters
    ----------
    examples : iterable
        Anything; by default each example is ``(input, ...)`` and a method is called as
        ``fn(example[0])`` (``inputs(example)`` gives the positional arguments otherwise).
    methods : mapping name -> fn, or ``methods(i, example) -> mapping``
        The methods for each example (a callable lets some run on some examples only).
    score : ``score(output, example) -> {metric: value}``
        Usually :func:`image_scores` against the example's truth.
    limits : mapping name -> n, optional
        A method runs on its first ``n`` examples only (slow baselines).
    on_output : ``on_output(name, output, example)``, optional
        Sees each output (task-specific extras such as error profiles).
    results : dict, optional
        Appended to (several groups of examples may share one).

    Returns
    -------
    dict ``{method: {metric: [values...], "time": [seconds...]}}``, methods in first-run order.
    """
    res: dict = {} if results is None else results
    limits = limits or {}
    for i, ex in enumerate(examples):
        todo = methods(i, ex) if callable(methods) else methods
        for name, fn in todo.items():
            if i >= limits.get(name, math.inf):
                continue
            out, dt = timed(fn, *inputs(ex))
            r = res.setdefault(name, {})
            for k, v in score(out, ex).items():
                r.setdefault(k, []).append(float(v))
            r.setdefault("time", []).append(dt)
            if on_output is not None:
                on_output(name, out, ex)
        if progress is not None:
            progress(i, ex, todo)
    return res


def image_scores(truth, out, metrics: Iterable[str] = ("rms", "psnr", "ssim"), data_range: float = 1.0,
                 clip: tuple[float, float] | None = None) -> dict[str, float]:
    """Image metrics from :mod:`scopenet.metrics.image` of ``out`` against ``truth``.

    A stack ``(N, H, W)`` gives the mean over its images of each per-image metric. ``clip`` clips
    ``out`` first. ``metrics``: any of ``mse``, ``rms``, ``psnr``, ``ssim`` (PSNR and SSIM with
    ``data_range``).
    """
    from ..metrics import image as M

    truth = np.asarray(truth)
    out = np.asarray(out)
    if clip is not None:
        out = np.clip(out, *clip)
    fns = {"mse": M.mse, "rms": M.rms, "psnr": lambda t, o: M.psnr(t, o, data_range=data_range),
           "ssim": lambda t, o: M.ssim(t, o, data_range=data_range)}
    pairs = list(zip(truth, out)) if truth.ndim == 3 else [(truth, out)]
    return {m: float(np.mean([fns[m](t, o) for t, o in pairs])) for m in metrics}


_CARD_SECTIONS = ("predict", "config", "training", "preprocessing", "notes")


def card_field(estimator, key: str, default: Any = None) -> Any:
    """``key`` of an estimator's model card, whichever shape the card has: a flat dict or a
    ``weights.ModelCard`` (held as ``card_`` or ``card``), the key at the top or in one of its sections
    (predict, config, training, preprocessing, notes); ``default`` when absent."""
    for attr in ("card_", "card"):
        card = getattr(estimator, attr, None)
        if card is None or callable(card):
            continue
        if not isinstance(card, Mapping):
            dump = getattr(card, "model_dump", None)
            card = dump() if callable(dump) else vars(card)
        for d in (card, *(card.get(s) for s in _CARD_SECTIONS)):
            if isinstance(d, Mapping) and d.get(key) is not None:
                return d[key]
    return default


# ------------------------------------------------------------------------------ summaries and stats
def mean_sd(v: Iterable[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    """``"mean ± sd"`` (sample sd; 0 for one value), ``-`` for none."""
    a = np.asarray(list(v), np.float64) * scale
    if a.size == 0:
        return "-"
    return (fmt + " ± " + fmt).format(a.mean(), a.std(ddof=1) if a.size > 1 else 0.0)


def best_of(scores: Mapping[str, float], lower_is_better: bool = True, exclude: Iterable[str] = ()) -> tuple[str, float]:
    """The best ``(name, value)`` of ``scores`` leaving out ``exclude`` (NaNs never win)."""
    ex = set(exclude)
    cand = {k: float(v) for k, v in scores.items() if k not in ex and np.isfinite(v)}
    if not cand:
        raise ValueError("no rows to compare with")
    k = (min if lower_is_better else max)(cand, key=cand.get)
    return k, cand[k]


def compare_with_best(model: str, scores: Mapping[str, float], metric: str, *, lower_is_better: bool = True,
                      exclude: Iterable[str] = (), scale: float = 1.0, unit: str = "", fmt: str = "{:.3f}") -> str:
    """One sentence comparing ``model``'s ``metric`` with the best of *all* other rows.

    The rows compared with include the unprocessed input and every baseline (``exclude`` drops
    e.g. the model's own variants). Says "lower"/"higher" and whether the model beats that row.
    """
    mine = float(scores[model])
    name, best = best_of(scores, lower_is_better, exclude={model, *exclude})
    ratio = mine / best if best else math.inf
    change = (ratio - 1) * 100
    better = mine < best if lower_is_better else mine > best
    word = "lower" if change < 0 else "higher"
    f = lambda v: fmt.format(v * scale) + unit  # noqa: E731
    verdict = "better than every other row" if better else ("ties with " if mine == best else "worse than ") + name
    return (f"{model} {metric} {f(mine)} vs best other row {name} {f(best)}: ratio {ratio:.3f} "
            f"({abs(change):.1f}% {word}; {verdict})")


# ------------------------------------------------------------------------------------ spec and main
@dataclass
class BenchSpec:
    """A benchmark on the harness.

    ``run(args, report) -> int`` does the task's work. ``add_options(parser)`` adds the task's own
    options; the shared ones are added here once. ``quick``, ``images``, ``seed`` and ``threads``
    describe what the shared options mean for this bench (their help text and defaults).
    """

    name: str
    description: str
    run: Callable[[argparse.Namespace, Report], int]
    add_options: Callable[[argparse.ArgumentParser], None] | None = None
    quick: str = "a small, fast run"
    images: str = "folder of images (any format scopenet reads) instead of the default data"
    seed: int | None = 0
    threads: int | None = None
    out_help: str = "also write the report (markdown) here"
    json_help: str = "also write the raw results and the tables (JSON) here"

    def parser(self) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=f"scopenet bench {self.name}", description=self.description,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        g = p.add_argument_group("shared bench options")
        g.add_argument("--quick", action="store_true", help=self.quick)
        g.add_argument("--images", type=Path, default=None, help=self.images)
        g.add_argument("--out", type=Path, default=None, help=self.out_help)
        g.add_argument("--json", type=Path, default=None, help=self.json_help)
        g.add_argument("--threads", type=int, default=self.threads,
                       help="torch threads" + (f" (default {self.threads})" if self.threads else " (default: torch's)"))
        g.add_argument("--seed", type=int, default=self.seed,
                       help="random seed (default " + ("the bench's held-out seed" if self.seed is None
                                                       else str(self.seed)) + ")")
        if self.add_options is not None:
            self.add_options(p.add_argument_group(f"{self.name} options"))
        return p

    def main(self, argv: list[str] | None = None, *, report: Report | None = None) -> int:
        """Parse ``argv``, set the threads, run, write ``--out``/``--json``; returns the exit code."""
        from ..errors import ScopenetError

        a = self.parser().parse_args(argv)
        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        rep = report or Report(self.name)
        try:
            rc = int(self.run(a, rep) or 0)
        except ScopenetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if rc == 0 or rep.parts:
            rep.write(a.out, a.json)
        return rc
