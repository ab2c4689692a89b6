"""Run the real ``scopenet`` command in a subprocess (not typer's in-process runner).

>>> r = scopenet("info", "scan.sxm")          # doctest: +SKIP
>>> r.returncode, r.stdout, r.stderr          # doctest: +SKIP
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

_SCRIPT = Path(sys.executable).with_name("scopenet")


def command() -> list[str]:
    """The installed ``scopenet`` console script beside this Python, else the same app through ``-c``."""
    if _SCRIPT.exists():
        return [str(_SCRIPT)]
    return [sys.executable, "-c", "from scopenet.cli.main import app; app(prog_name='scopenet')"]


def _env(extra: dict | None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("COLUMNS", None)
    env.pop("FORCE_COLOR", None)
    env.update(extra or {})
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def scopenet(*args, cwd: str | Path | None = None, env: dict | None = None, timeout: float = 600) -> Result:
    """``scopenet ARGS...`` with stdout and stderr piped (so: not a terminal)."""
    p = subprocess.run([*command(), *map(str, args)], cwd=cwd, env=_env(env), capture_output=True, text=True,
                       timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)


def scopenet_tty(*args, cwd: str | Path | None = None, env: dict | None = None, timeout: float = 600) -> Result:
    """``scopenet ARGS...`` with stderr on a pseudo-terminal (stdout piped), as in an interactive shell."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([*command(), *map(str, args)], cwd=cwd, env=_env({"TERM": "xterm", **(env or {})}),
                            stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not b:
                break
            chunks.append(b)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    out, _ = proc.communicate(timeout=timeout)
    t.join(timeout=10)
    os.close(master)
    return Result(proc.returncode, out, b"".join(chunks).decode("utf-8", "replace"))
