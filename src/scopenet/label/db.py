"""Database schema of the labelling service (SQLAlchemy 2.0 ORM) and engine set-up.

Any SQLAlchemy URL works (``sqlite:///labels.db`` by default, ``postgresql://user@host/db`` ...).
Every query goes through the ORM or bound parameters; no SQL is built from strings.

For SQLite the engine switches the database to WAL mode (readers never block the writer), sets a
busy timeout, enables foreign keys and starts every transaction with ``BEGIN IMMEDIATE`` when the
session asked for a write (see :func:`write_session`), so that concurrent writers queue on the
database lock instead of failing with "database is locked".
"""
from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint,
                        create_engine, delete, event)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.pool import StaticPool

from ..training.crowd import DEFAULT_CATEGORIES, slug  # noqa: F401  (the service's categories)

#: the six categories of the Gordon & Landon H:Si(100) study (Report §4.2)
ROLES = ("admin", "annotator")


def utcnow() -> datetime:
    """Timezone-naive UTC now (stored naive so SQLite and PostgreSQL compare alike)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True, index=True)
    #: bcrypt hash; None for accounts that cannot log in (e.g. imported Zooniverse volunteers)
    password_hash: Mapped[str | None] = mapped_column(String(100), nullable=True)
    role: Mapped[str] = mapped_column(String(20), default="annotator")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: where the account came from: "local", "invitation", "zooniverse"
    origin: Mapped[str] = mapped_column(String(20), default="local")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Invitation(Base):
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    role: Mapped[str] = mapped_column(String(20), default="annotator")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class LoginSession(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: sha256 of the random session token (the token itself only lives in the signed cookie)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: ordered list of category display names
    categories: Mapped[list] = mapped_column(JSON)
    multi_label: Mapped[bool] = mapped_column(Boolean, default=True)
    tutorial: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    images: Mapped[list["Image"]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                                 passive_deletes=True)

    @property
    def keys(self) -> list[str]:
        return [slug(c) for c in self.categories]


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    #: the name the file had on upload (display and export only, never used as a path)
    original_name: Mapped[str] = mapped_column(String(255))
    #: generated name of the stored original file inside the upload folder
    stored_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    #: generated name of the rendered PNG shown to annotators
    png_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: category this image illustrates on the tutorial page (excluded from classification)
    example_for: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: external id (Zooniverse subject id) when imported
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    project: Mapped[Project] = relationship(back_populates="images")


class Classification(Base):
    """One classification event: one annotator's answer for one image."""

    __tablename__ = "classifications"
    __table_args__ = (UniqueConstraint("user_id", "image_id", name="uq_classification_user_image"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    #: {category display name: bool}
    answers: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: e.g. the Zooniverse classification_id
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    user: Mapped[User] = relationship()
    image: Mapped[Image] = relationship()


class Skip(Base):
    """An image an annotator chose to skip (it is not shown to them again)."""

    __tablename__ = "skips"
    __table_args__ = (UniqueConstraint("user_id", "image_id", name="uq_skip_user_image"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LoginFailures(Base):
    """Failed log-ins of one throttle key (see :class:`~scopenet.label.security.LoginThrottle`)."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: the throttle clock's seconds (epoch seconds by default)
    last_failure: Mapped[float] = mapped_column(Float, default=0.0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0, index=True)


# --------------------------------------------------------------------------------------- engine


def make_engine(database_url: str = "sqlite:///labels.db", busy_timeout: float = 30.0, **kwargs: Any) -> Engine:
    """Create an engine for ``database_url`` and create the tables if they are missing.

    SQLite gets WAL mode, a busy timeout (``busy_timeout`` seconds, 30 by default), foreign keys,
    and ``BEGIN IMMEDIATE`` for sessions opened with :func:`write_session`. An in-memory SQLite URL
    shares one connection.
    """
    is_sqlite = database_url.startswith("sqlite")
    if is_sqlite:
        kwargs.setdefault("connect_args", {})["check_same_thread"] = False
        if database_url in ("sqlite://", "sqlite:///:memory:"):
            kwargs.setdefault("poolclass", StaticPool)
    engine = create_engine(database_url, **kwargs)
    if is_sqlite:
        _configure_sqlite(engine, busy_timeout)
    Base.metadata.create_all(engine)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout: float = 30.0) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised through every test
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite's own is too late)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={max(0, int(busy_timeout * 1000))}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - exercised through every test
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextlib.contextmanager
def write_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction takes the write lock at once on SQLite (no-op elsewhere).

    Commits on success, rolls back on error.
    """
    with factory() as s:
        s.connection(execution_options={"sqlite_immediate": True})
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


T = TypeVar("T")


def retry_locked(fn: Callable[[], T], attempts: int = 20, delay: float = 0.05) -> T:
    """Call ``fn`` again when the database reports a transient lock (SQLite under heavy load)."""
    for i in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if not is_locked_error(exc) or i == attempts - 1:
                raise
            time.sleep(delay * (1 + i))
    raise AssertionError("unreachable")  # pragma: no cover


def is_locked_error(exc: BaseException) -> bool:
    """True for the transient "database is locked/busy" error of SQLite."""
    msg = str(exc).lower()
    return isinstance(exc, OperationalError) and ("locked" in msg or "busy" in msg)


class SqlThrottleStore:
    """Log-in throttle counters in the ``login_failures`` table (they outlive a restart and are shared
    by every process serving the database). Every change is one short write transaction, retried
    while the database is busy."""

    def __init__(self, factory: sessionmaker[Session]):
        self.factory = factory

    @staticmethod
    def _record(row: LoginFailures | None):
        from .security import ThrottleRecord

        return None if row is None else ThrottleRecord(row.failures, row.last_failure, row.locked_until)

    def get(self, key: str):
        with self.factory() as s:
            return self._record(s.get(LoginFailures, key))

    def update(self, key: str, fn) -> None:
        if fn(None) is None and self.get(key) is None:
            return  # nothing to delete: no write transaction (a log-in clears a key that is mostly absent)

        def work() -> None:
            with write_session(self.factory) as s:
                row = s.get(LoginFailures, key, with_for_update=True)  # a row lock on PostgreSQL
                new = fn(self._record(row))
                if new is None:
                    if row is not None:
                        s.delete(row)
                    return
                if row is None:
                    row = LoginFailures(key=key)
                    s.add(row)
                row.failures, row.last_failure, row.locked_until = new.failures, new.last_failure, new.locked_until

        for attempt in range(3):
            try:
                return retry_locked(work)
            except IntegrityError:  # another process inserted the same key first: count on its row
                if attempt == 2:
                    raise

    def prune(self, forgotten_before: float) -> None:
        def work() -> None:
            with write_session(self.factory) as s:
                s.execute(delete(LoginFailures).where(LoginFailures.last_failure < forgotten_before,
                                                      LoginFailures.locked_until < forgotten_before))

        retry_locked(work)

    def __len__(self) -> int:
        from sqlalchemy import func, select

        with self.factory() as s:
            return int(s.scalar(select(func.count()).select_from(LoginFailures)) or 0)
