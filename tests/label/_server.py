"""Run the labelling app under uvicorn in a child process on a free loopback port."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(base: str, server: subprocess.Popen, startup_s: float = 60) -> None:
    """Poll ``base/login`` until the server answers 200; ``RuntimeError`` if it exits or takes too long."""
    import httpx

    deadline = time.monotonic() + startup_s
    while True:
        try:
            if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError("the server exited:\n" + server.stdout.read().decode())
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start within {startup_s} s")
        time.sleep(0.2)


def seed_database(url: str, passwords: dict[str, str], extra_projects: dict[str, list[str]] | None = None) -> None:
    """Users ``admin`` (an admin) and ``alice`` and the project ``HSi`` (plus ``extra_projects``: name ->
    categories) in the database at ``url``, for a server started on it."""
    from scopenet.label import service as svc
    from scopenet.label.db import make_engine, session_factory, write_session

    engine = make_engine(url)
    with write_session(session_factory(engine)) as s:
        svc.create_user(s, "admin", passwords["admin"], role="admin", rounds=4)
        svc.create_user(s, "alice", passwords["alice"], rounds=4)
        svc.create_project(s, "HSi")
        for name, cats in (extra_projects or {}).items():
            svc.create_project(s, name, categories=cats)
    engine.dispose()


@contextlib.contextmanager
def running_server(database_url: str, upload_dir: Path, startup_s: float = 60, app_kwargs: str = "",
                   setup: str = "") -> Iterator[str]:
    """Start ``uvicorn`` serving :func:`scopenet.label.create_app`; yield its base URL; stop it.

    ``app_kwargs``: more keyword arguments of ``create_app`` as Python source (``"max_pixels=10"``),
    after the statements ``setup`` (imports, say).
    """

    port = free_port()
    code = textwrap.dedent(f"""
        import uvicorn
        from scopenet.label import create_app
        {setup}
        app = create_app({database_url!r}, secret_key="test", upload_dir={str(upload_dir)!r}, {app_kwargs})
        uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning", backlog=512)
    """)
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server, startup_s)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            server.kill()
            server.wait()
