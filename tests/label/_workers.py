"""Renderers for the worker-process tests (module-level so that spawned workers can import them)."""
from __future__ import annotations

import os
import time
from pathlib import Path


def slow_render(path: Path):
    """Hangs on files whose name contains "hang"; renders the others normally."""
    if "hang" in Path(path).name:
        time.sleep(3600)
    from scopenet.label.render import render_file

    return render_file(path)


def hog_render(path: Path):
    """Allocates 2 GiB."""
    import numpy as np

    big = np.ones(1 << 28)  # 2 GiB of float64
    return b"", int(big.size), 1


def pid_render(path: Path):
    """Refuses every file, naming the process that read it."""
    from scopenet.errors import InputError

    raise InputError(f"read by process {os.getpid()}")


def crash_render(path: Path):
    """Kills its own process."""
    os._exit(3)
