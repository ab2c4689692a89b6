"""Helpers shared by the CLI modules.

* :func:`user_errors` turns scopenet errors and ``OSError`` into a one-line message and exit code 1;
* :func:`run_batch` runs one piece of work per input file, goes on after a failure, shows a progress
  bar on a terminal and ends with ``"2 of 3 files done; failed: c.ser: <reason>"`` and exit code 1;
* :func:`check_writable` refuses an output location that cannot be written before any work is done;
* :func:`read_images` / :func:`pick_image` read a file (``.npz`` arrays included) and choose its image
  signal by ``--signal`` (index or title, as ``scopenet info`` lists them) or, by default, the image
  the file says is one (a HAADF/BF image before EDS element maps and spectra).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

import typer

from ..errors import InputError, ReadError, ScopenetError, WriteError

T = TypeVar("T")

#: help text of the shared options
SIGNAL_HELP = ("Image to use in a multi-image file: its index or title as `scopenet info` lists them "
               "(e.g. 0, HAADF, Z). Default: the image signal (HAADF/BF before element maps; SPM: the first).")
QUIET_HELP = "No progress bar and no per-file notes on stderr."


def signal_option():
    """``--signal/--channel/-c``: which image of a multi-image file."""
    return typer.Option(None, "--signal", "--channel", "-c", help=SIGNAL_HELP)


def quiet_option():
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP)


# ---------------------------------------------------------------------------------- messages
def error_message(exc: BaseException) -> str:
    """One line for the user: the scopenet message (in CLI words), or the path and reason of an OSError."""
    if isinstance(exc, ScopenetError):
        msg = str(exc)
    elif isinstance(exc, OSError):
        name = exc.filename
        reason = exc.strerror or str(exc)
        if name is None:
            msg = reason
        else:
            p = Path(os.fsdecode(name))
            if ".partial" in p.name and p.name.startswith("."):  # the temporary file beside an output
                msg = f"cannot write into {p.parent}: {reason}"
            else:
                msg = f"{p}: {reason}"
            if exc.filename2 is not None:
                msg += f" (-> {os.fsdecode(exc.filename2)})"
    else:
        msg = f"{type(exc).__name__}: {exc}"
    # the library names its keyword; on the command line the switch is what to pass
    msg = msg.replace("overwrite=True", "--overwrite")
    return " ".join(msg.split("\n"))


def note(text: str, quiet: bool = False) -> None:
    """A remark on stderr (which signal was used ...), left out with ``--quiet``."""
    if not quiet:
        typer.echo(text, err=True)


@contextlib.contextmanager
def user_errors():
    """Turn scopenet errors and OSErrors into a one-line red message and exit code 1 (no traceback)."""
    try:
        yield
    except (ScopenetError, OSError) as exc:
        typer.secho(f"error: {error_message(exc)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:  # pragma: no cover
        typer.secho("interrupted", err=True)
        sys.exit(130)


# ---------------------------------------------------------------------------------- outputs
def check_writable(path: Path | None, folder: bool = False) -> None:
    """Raise :class:`WriteError` unless ``path`` (a file, or a folder with ``folder=True``) can be created.

    Checked before any work, so that a bad output location costs nothing and writes nothing: the
    nearest existing folder on the way must be a folder, and a file must be creatable in it.
    """
    if path is None:
        return
    path = Path(path)
    if path.is_dir() and not folder:
        raise WriteError(path, "is a folder (give a file name)")
    if path.exists() and folder and not path.is_dir():
        raise WriteError(path, "exists and is not a folder")
    d = path if folder else path.parent
    d = Path(os.path.abspath(d))
    while not d.exists() and d != d.parent:
        d = d.parent
    if not d.is_dir():
        raise WriteError(path, f"{d} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=d, prefix=".scopenet-write-check-"):
            pass
    except OSError as exc:
        raise WriteError(path, f"the folder {d} is not writable ({exc.strerror or exc})") from None


def check_absent(path: Path | None, overwrite: bool) -> None:
    """Refuse an existing output unless ``--overwrite``."""
    if path is not None and not overwrite and Path(path).exists():
        raise WriteError(path, "file exists (pass --overwrite to replace it)")


def output_targets(inputs: Sequence[Path], output: Path, tag: str, ext: str) -> tuple[list[tuple[Path, Path]], bool]:
    """Pair each input with its output: one input and ``-o`` with an extension (not a folder) is that
    file; otherwise ``-o`` is a folder and each output is ``<stem><tag><ext>`` inside it.

    Returns the pairs and whether ``-o`` is a folder. Nothing is created here; an output file of a format
    scopenet cannot write is refused now, before any work.
    """
    inputs = [Path(p) for p in inputs]
    if len(inputs) == 1 and not output.is_dir() and output.suffix:
        from ..io.registry import find_format, supported_extensions

        if output.suffix.lower() != ".zarr" and find_format(output, for_writing=True) is None:
            raise WriteError(output, f"no writer for extension '{output.suffix}'; scopenet writes "
                                     f"{', '.join(supported_extensions(for_writing=True))}")
        return [(inputs[0], output)], False
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: with several inputs, -o must be a folder")
    pairs = [(p, output / f"{p.stem}{tag}{ext}") for p in inputs]
    seen: dict[Path, Path] = {}
    for p, o in pairs:
        if o in seen and seen[o] != p:
            raise InputError(f"{seen[o]} and {p} would both write {o}; rename one of them")
        seen[o] = p
    return pairs, True


# ---------------------------------------------------------------------------------- batches
def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


@contextlib.contextmanager
def progress(total: int, description: str, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """A progress bar over ``total`` steps on stderr when it is a terminal (and not ``quiet``).

    Yields ``step(label, advance=1)``: ``step(name, 0)`` names the item now being worked on,
    ``step()`` counts one done. A no-op when nothing is shown (piped output, ``--quiet``, one step).
    """
    if total < 2 or not show_progress(quiet):
        yield lambda label=None, advance=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), TextColumn("{task.fields[item]}"),
                   console=Console(stderr=True), transient=True,
                   redirect_stdout=sys.stdout.isatty(), redirect_stderr=True)
    with bar:
        task = bar.add_task(description, total=total, item="")

        def step(label: str | None = None, advance: int = 1) -> None:
            bar.update(task, advance=advance, **({} if label is None else {"item": label}))

        yield step


def run_batch(items: Sequence[T], work: Callable[[T], Any], *, description: str = "files",
              name: Callable[[T], str] = str, quiet: bool = False, what: str = "file") -> list[Any]:
    """Call ``work(item)`` for every item; a failure is kept and the batch goes on.

    At the end, with any failure, print ``"k of n files done; failed: NAME: reason"`` on stderr (one
    line per failure when there are several) and exit with code 1. A single item that fails gives
    the plain ``error: reason`` line. Returns the results of the items that succeeded. With the
    environment variable ``SCOPENET_DEBUG`` set, an unexpected exception (not a scopenet error or an
    ``OSError``) is raised with its traceback instead.
    """
    results: list[Any] = []
    failures: list[tuple[str, str]] = []
    with progress(len(items), description, quiet) as step:
        for item in items:
            step(Path(name(item)).name, 0)
            try:
                results.append(work(item))
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of one file is reported, the rest go on
                if os.environ.get("SCOPENET_DEBUG") and not isinstance(exc, (ScopenetError, OSError)):
                    raise  # a bug, not bad input: the traceback is wanted
                failures.append((name(item), error_message(exc)))
            step()
    if failures:
        finish_failures(len(items), failures, what)
    return results


def finish_failures(total: int, failures: list[tuple[str, str]], what: str = "file") -> None:
    """Report the failures of a batch and exit 1."""
    def line(n: str, msg: str) -> str:
        return msg if n in msg else f"{n}: {msg}"

    if total == 1 and len(failures) == 1:
        text = f"error: {failures[0][1] if failures[0][0] in failures[0][1] else line(*failures[0])}"
    else:
        head = f"{total - len(failures)} of {total} {what}s done; failed:"
        if len(failures) == 1:
            text = f"{head} {line(*failures[0])}"
        else:
            text = "\n".join([head, *(f"  {line(n, m)}" for n, m in failures)])
    typer.secho(text, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


# ---------------------------------------------------------------------------------- reading
def _read_npz(path: Path):
    """Every image array of an ``.npz`` (e.g. the shards of ``scopenet simulate``) as Micrographs."""
    import json

    import numpy as np

    from ..image.micrograph import Axis, Micrograph

    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise ReadError(path, f"not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    images = []
    with z:
        keys = list(z.files)
        px = None
        if "params_json" in keys:  # scopenet simulate spm: calibrated when every image has the same pixel size
            with contextlib.suppress(Exception):
                sizes = {float(json.loads(str(q))["pixel_size_m"]) for q in z["params_json"].reshape(-1)}
                px = sizes.pop() if len(sizes) == 1 else None
        for k in keys:
            a = z[k]
            if a.dtype.kind not in "biuf" or a.ndim not in (2, 3) or min(a.shape[-2:]) < 8:
                continue
            data = a.astype(np.float32)
            axes = []
            if px is not None and a.ndim == 3 and k == "images":
                axes = [Axis("frame", a.shape[0], 1.0, 0.0, ""),
                        Axis("y", a.shape[1], px * 1e9, 0.0, "nm"), Axis("x", a.shape[2], px * 1e9, 0.0, "nm")]
            images.append(Micrograph(data, axes=axes, signal=k, source=path))
    if not images:
        raise ReadError(path, "the .npz archive holds no 2-D image or 3-D stack "
                              f"(arrays: {', '.join(keys) or 'none'})")
    return images


def read_images(path: Path) -> list:
    """Every image in ``path`` (``sn.read_all``); ``.npz`` archives are read here, one image per array."""
    import scopenet as sn

    path = Path(path)
    if path.suffix.lower() == ".npz" and path.is_file():
        from ..io.registry import find_format

        if find_format(path) is None:
            return _read_npz(path)
    return sn.read_all(path)


_ELEMENTS = set(
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr Rb Sr Y "
    "Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re "
    "Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr".split())
_MAP_WORDS = re.compile(r"\b(EDS|EDX|EELS|XEDS|map|spectr\w*|line ?scan|profile|plot)\b", re.I)
_IMAGE_WORDS = re.compile(r"(HA-?ADF|\bA?DF\d*\b|\bA?BF\b|i?DPC|\bB?SE\b|image|\bS?TEM\b|camera|ceta)", re.I)


def _detector_type(img) -> str:
    """The type of detector a Velox signal was recorded with ("ScanningDetector", "AnalyticalDetector" ...)."""
    md = img.metadata if isinstance(img.metadata, dict) else {}
    br = md.get("BinaryResult")
    dets = md.get("Detectors")
    if not isinstance(br, dict) or not isinstance(dets, dict):
        return ""
    name = str(br.get("Detector") or "")
    if not name:
        return ""
    for d in dets.values():
        if isinstance(d, dict) and str(d.get("DetectorName") or "").startswith(name):
            return str(d.get("DetectorType") or "")
    return ""


def image_rank(img) -> int:
    """2: an image signal (HAADF, BF, a camera image); 1: unknown; 0: an element map, spectrum or plot."""
    if img.scan_direction:  # scanning probe: every channel is an image; the reader puts topography first
        return 1
    det = _detector_type(img).lower()
    title = str(img.signal or "").strip()
    if "analytical" in det or title in _ELEMENTS or _MAP_WORDS.search(title):
        return 0
    if det in ("scanningdetector", "imagingdetector") or _IMAGE_WORDS.search(title):
        return 2
    return 1


def describe(img, index: int) -> str:
    """``#4 HAADF``, ``#1 Z (backward/up)``: an image as ``--signal`` and ``scopenet info`` name it."""
    d = f" ({img.scan_direction})" if img.scan_direction else ""
    return f"#{index} {img.signal}{d}"


def pick_image(path: Path, signal: Optional[str] = None, direction: Optional[str] = None,
               quiet: bool = False, images: list | None = None):
    """The image of ``path`` chosen by ``--signal`` (index or title) and ``--direction``.

    Without ``--signal`` the image signal is chosen (:func:`image_rank`, the first of the best). When
    the file holds several images, the one used is named on stderr (unless ``quiet``).
    """
    path = Path(path)
    images = read_images(path) if images is None else images
    indexed = list(enumerate(images))
    listing = ", ".join(describe(m, i) for i, m in indexed)
    if signal is not None and re.fullmatch(r"-?\d+", signal.strip()):
        i = int(signal)
        if not -len(images) <= i < len(images):
            raise InputError(f"{path}: --signal {i} is out of range; the file holds {len(images)} "
                             f"image(s): {listing}")
        sel = [indexed[i]]
    else:
        sel = indexed
        if signal is not None:
            s = signal.strip().lower()
            sel = [(i, m) for i, m in sel if str(m.signal).lower() == s] or \
                  [(i, m) for i, m in sel if s in str(m.signal).lower()]
    if direction is not None:
        d = direction.lower()
        sel = [(i, m) for i, m in sel if m.scan_direction and (m.scan_direction.lower() == d
                                                                or m.scan_direction.lower().startswith(d))]
    if not sel:
        want = " ".join(x for x in (f"--signal {signal!r}" if signal is not None else "",
                                    f"--direction {direction!r}" if direction is not None else "") if x)
        raise InputError(f"{path}: no image matches {want}; available: {listing}")
    best = max(image_rank(m) for _, m in sel)
    i, img = next((i, m) for i, m in sel if image_rank(m) == best)
    if len(images) > 1:
        note(f"{path}: using image {describe(img, i)} of {len(images)} (--signal picks another; "
             "`scopenet info` lists them)", quiet)
    return img
