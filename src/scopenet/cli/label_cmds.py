"""``scopenet label ...``: run the crowd-labelling service and work with its database."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import user_errors

label_app = typer.Typer(help="Crowd-labelling service: serve, accounts, Zooniverse import, export, aggregation.",
                        no_args_is_help=True)

DB_OPT = typer.Option("sqlite:///labels.db", "--db", help="Database URL (sqlite:///file.db, postgresql://...).")


def _session(db: str):
    from ..label.db import make_engine, session_factory

    return session_factory(make_engine(db))


def _bind(host: str, port: int):
    """A listening socket on (host, port), or an InputError naming the port (busy, or not allowed)."""
    import socket

    from ..errors import InputError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"cannot listen on {host}:{port}: unknown address ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "it is in use" if exc.errno in (48, 98, 10048) else (exc.strerror or str(exc))
        raise InputError(f"cannot listen on port {port} of {host}: {why}") from None
    sock.set_inheritable(True)
    return sock


@label_app.command("serve")
def serve(db: str = DB_OPT,
          host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for all interfaces)."),
          port: int = typer.Option(8000, help="TCP port."),
          upload_dir: Path = typer.Option(Path("label-uploads"), help="Folder for uploaded files and PNGs."),
          max_upload_mb: float = typer.Option(64.0, help="Size limit per uploaded file, MiB."),
          max_megapixels: float = typer.Option(64.0, help="Pixel limit per uploaded image, Mpx (from the "
                                               "header, before decoding)."),
          render_timeout: float = typer.Option(30.0, help="Seconds one uploaded file may take to render."),
          render_memory_mb: float = typer.Option(4096.0, help="Memory one upload's rendering may use, MiB."),
          trusted_proxy: Optional[list[str]] = typer.Option(None, "--trusted-proxy", help="Address or network "
                                                            "of a reverse proxy whose X-Forwarded-For names "
                                                            "the client (repeatable; default: none)."),
          secret_key: Optional[str] = typer.Option(None, envvar="SCOPENET_LABEL_SECRET",
                                                   help="Key signing session cookies (default: random)."),
          session_hours: float = typer.Option(8.0, help="How long a login lasts, hours.")):
    """Run the labelling web app."""
    from datetime import timedelta

    import uvicorn

    from ..label.app import create_app

    with user_errors():
        sock = _bind(host, port)  # before anything else: a busy port is one line, not a traceback
        try:
            app = create_app(db, secret_key=secret_key, upload_dir=upload_dir,
                             max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                             session_ttl=timedelta(hours=session_hours), trusted_proxies=trusted_proxy or (),
                             max_pixels=int(max_megapixels * 1e6) or None, render_timeout=render_timeout,
                             render_memory=int(render_memory_mb * 1024 * 1024) or None)
        except BaseException:
            sock.close()
            raise
    from sqlalchemy import select

    from ..label.db import User

    with app.state.Session() as s:
        if s.scalar(select(User.id).where(User.role == "admin")) is None:
            typer.echo(f"no administrator yet: create one with `scopenet label create-admin NAME --db {db}`")
    typer.echo(f"scopenet label: http://{host}:{port}/  (database {db})")
    # uvicorn's own proxy-header handling is off: it would trust X-Forwarded-For from 127.0.0.1;
    # the app reads the header only from --trusted-proxy addresses
    config = uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


@label_app.command("create-admin")
def create_admin(username: str = typer.Argument(..., help="User name of the new administrator."),
                 password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                              help="Password (prompted when not given)."),
                 db: str = DB_OPT):
    """Create an administrator account."""
    from ..label import service as svc
    from ..label.db import write_session

    with user_errors(), write_session(_session(db)) as s:
        svc.create_user(s, username, password, role="admin")
    typer.echo(f"administrator {username!r} created")


@label_app.command("invite")
def invite(role: str = typer.Option("annotator", help="annotator or admin"), db: str = DB_OPT,
           base_url: str = typer.Option("http://127.0.0.1:8000", help="Address of the running service."),
           days: float = typer.Option(14.0, help="Days until the invitation expires.")):
    """Print a single-use sign-up link."""
    from datetime import timedelta

    from ..label import service as svc
    from ..label.db import write_session

    with user_errors(), write_session(_session(db)) as s:
        token = svc.create_invitation(s, role, ttl=timedelta(days=days))
    typer.echo(f"{base_url.rstrip('/')}/signup?token={token}")


@label_app.command("create-project")
def create_project(name: str = typer.Argument(...), db: str = DB_OPT,
                   categories: Optional[str] = typer.Option(None, help="Comma-separated categories "
                                                            "(default: the six H:Si(100) categories)."),
                   single_label: bool = typer.Option(False, "--single-label", help="Exactly one category per image."),
                   tutorial: Optional[Path] = typer.Option(None, help="Text file with the tutorial text.")):
    """Create a project."""
    from ..label import service as svc
    from ..label.db import write_session

    with user_errors(), write_session(_session(db)) as s:
        text = tutorial.read_text(encoding="utf-8") if tutorial else ""
        p = svc.create_project(s, name, categories, multi_label=not single_label, tutorial=text)
        typer.echo(f"project {p.name!r} (id {p.id}): {', '.join(p.categories)}")


@label_app.command("import-zooniverse")
def import_zooniverse(csv: Path = typer.Argument(..., help="Zooniverse classification export (CSV)."),
                      project: str = typer.Option(..., help="Project name (created when missing)."),
                      db: str = DB_OPT,
                      categories: Optional[str] = typer.Option(None, help="Categories of a new project, "
                                                               "comma-separated, in answer order."),
                      task: str = typer.Option("T0", help="Task key of the question."),
                      workflow_id: Optional[str] = typer.Option(None, help="Only this workflow's rows."),
                      ignore_unknown: bool = typer.Option(False, help="Drop answers matching no category.")):
    """Import a Zooniverse classification export into a project."""
    from sqlalchemy import select

    from ..label import service as svc
    from ..label.db import Project, write_session
    from ..label.zooniverse import import_zooniverse as _import

    with user_errors(), write_session(_session(db)) as s:
        p = s.scalar(select(Project).where(Project.name == project))
        if p is None:
            p = svc.create_project(s, project, categories)
        rep = _import(s, p, csv, task=task, workflow_id=workflow_id, ignore_unknown=ignore_unknown)
    typer.echo(str(rep))


def _write_table(df, out: Path, overwrite: bool) -> None:
    from .._fileutil import atomic_output
    from ..errors import WriteError
    from ..label.service import csv_safe

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise WriteError(out, "the output must end in .csv or .json")
    with atomic_output(out, overwrite=overwrite) as tmp:
        if suffix == ".csv":
            csv_safe(df).to_csv(tmp, index=False)  # no cell a spreadsheet would run as a formula
        else:
            df.to_json(tmp, orient="records", indent=1)


@label_app.command("export")
def export(project: str = typer.Option(..., help="Project name."), db: str = DB_OPT,
           output: Path = typer.Option(..., "-o", "--output", help="out.csv or out.json"),
           kind: str = typer.Option("events", help="events (raw classifications) or scores (aggregated)."),
           min_agreement: Optional[float] = typer.Option(None, help="For scores: drop images below this "
                                                         "mean agreement."),
           overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output.")):
    """Export a project's classification events or aggregated scores."""
    from ..errors import InputError
    from ..label import service as svc

    with user_errors():
        if kind not in ("events", "scores"):
            raise InputError(f"--kind is events or scores, not {kind!r}")
        with _session(db)() as s:
            p = svc.project_by_name(s, project)
            df = svc.events_frame(s, p) if kind == "events" else svc.aggregate_project(s, p, min_agreement)
        _write_table(df, output, overwrite)
    typer.echo(f"{len(df)} rows -> {output}")


@label_app.command("aggregate")
def aggregate(events: Optional[Path] = typer.Argument(None, help="Events CSV (from `label export`) or, with "
                                                      "--zooniverse, a Zooniverse export."),
              project: Optional[str] = typer.Option(None, help="Aggregate this project of --db instead."),
              db: str = DB_OPT,
              zooniverse: bool = typer.Option(False, "--zooniverse", help="EVENTS is a Zooniverse export."),
              categories: Optional[str] = typer.Option(None, help="Comma-separated categories (default: the six)."),
              output: Path = typer.Option(..., "-o", "--output", help="scores.csv or scores.json"),
              min_agreement: float = typer.Option(0.40, help="Drop images below this mean agreement (0 keeps all)."),
              overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output.")):
    """Mean scores, agreements 2|x-0.5| and counts per image; drop images below --min-agreement."""
    import pandas as pd

    from ..errors import InputError, ReadError
    from ..label import service as svc
    from ..training.crowd.aggregate import aggregate_events, filter_by_agreement

    with user_errors():
        cats = svc.parse_categories(categories)
        if project is not None:
            with _session(db)() as s:
                scores = svc.aggregate_project(s, svc.project_by_name(s, project))
        elif events is not None:
            if zooniverse:
                from ..training.crowd.zooniverse import read_zooniverse_export

                ev = read_zooniverse_export(events, cats)
            else:
                if not events.is_file():
                    raise ReadError(events, "no such file")
                ev = pd.read_csv(events)
            scores = aggregate_events(ev, cats, image_col="image")
        else:
            raise InputError("give an EVENTS file or --project")
        kept = filter_by_agreement(scores, min_agreement)
        _write_table(kept, output, overwrite)
    mean_agree = float(scores["agree_mean"].mean()) if len(scores) else float("nan")
    typer.echo(f"{len(scores)} images, mean agreement {mean_agree:.3f}; {len(kept)} kept with agreement "
               f">= {min_agreement:.2f} -> {output}")


def register(app: typer.Typer) -> None:
    """Add the ``label`` command group to the app."""
    app.add_typer(label_app, name="label")
