"""What the labelling service does, independent of the web layer: accounts, projects, uploads,
the per-annotator image queue, classification events, export and aggregation.

Every function takes an open ORM :class:`~sqlalchemy.orm.Session`; the caller commits.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Mapping, Sequence

import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from ..errors import InputError, ReadError, ScopenetError
from ..training.crowd.aggregate import aggregate_events
from .db import (DEFAULT_CATEGORIES, ROLES, Classification, Image, Invitation, LoginSession, Project, Skip,
                 User, slug, utcnow)
from .security import DEFAULT_ROUNDS, MIN_PASSWORD_LENGTH, hash_password, new_token, token_hash

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{2,80}$")
#: MATRIX parameter/index files: needed beside a .Z_mtrx data file, not images themselves
COMPANION_SUFFIXES = (".mtrx",)


# ----------------------------------------------------------------------------------- accounts


def validate_username(username: str) -> str:
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise InputError("user names are 2-80 characters: letters, digits and _ . @ + -")
    return username


def create_user(s: Session, username: str, password: str | None, role: str = "annotator",
                rounds: int = DEFAULT_ROUNDS, origin: str = "local") -> User:
    """Add an account; the password is stored only as a bcrypt hash (None: cannot log in)."""
    username = validate_username(username)
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    if s.scalar(select(User.id).where(User.username == username)) is not None:
        raise InputError(f"the user name {username!r} is taken")
    user = User(username=username, password_hash=None if password is None else hash_password(password, rounds),
                role=role, origin=origin)
    s.add(user)
    s.flush()
    return user


def user_by_name(s: Session, username: str) -> User | None:
    return s.scalar(select(User).where(User.username == username))


def create_invitation(s: Session, role: str = "annotator", created_by: User | None = None,
                      ttl: timedelta = timedelta(days=14)) -> str:
    """A single-use invitation token (returned once; the database keeps only its hash)."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    token = new_token()
    s.add(Invitation(token_hash=token_hash(token), role=role, created_by=created_by.id if created_by else None,
                     expires_at=utcnow() + ttl))
    s.flush()
    return token


def valid_invitation(s: Session, token: str) -> Invitation | None:
    inv = s.scalar(select(Invitation).where(Invitation.token_hash == token_hash(token or "")))
    if inv is None or inv.used_at is not None or inv.expires_at <= utcnow():
        return None
    return inv


def accept_invitation(s: Session, token: str, username: str, password: str,
                      rounds: int = DEFAULT_ROUNDS) -> User:
    inv = valid_invitation(s, token)
    if inv is None:
        raise InputError("this invitation is unknown, used or expired")
    user = create_user(s, username, password, role=inv.role, rounds=rounds, origin="invitation")
    inv.used_by, inv.used_at = user.id, utcnow()
    return user


def start_session(s: Session, user: User, ttl: timedelta) -> str:
    """Open a login session; returns the token for the cookie (the DB stores its hash)."""
    token = new_token()
    s.add(LoginSession(token_hash=token_hash(token), user_id=user.id, expires_at=utcnow() + ttl))
    s.flush()
    return token


def session_user(s: Session, token: str | None) -> User | None:
    """The user of a live session, or None for unknown/expired tokens (expired rows are removed)."""
    if not token:
        return None
    ls = s.scalar(select(LoginSession).where(LoginSession.token_hash == token_hash(token)))
    if ls is None:
        return None
    if ls.expires_at <= utcnow():
        s.delete(ls)
        return None
    return ls.user


def end_session(s: Session, token: str | None) -> None:
    if token:
        s.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash(token)))


# ----------------------------------------------------------------------------------- projects


def parse_categories(text: str | Sequence[str] | None) -> list[str]:
    """Category names from a list or from text with one name per line or comma-separated."""
    if text is None:
        return list(DEFAULT_CATEGORIES)
    items = re.split(r"[\n,]", text) if isinstance(text, str) else list(text)
    cats = [c.strip() for c in items if c and c.strip()]
    if not cats:
        return list(DEFAULT_CATEGORIES)
    keys = [slug(c) for c in cats]
    if len(set(keys)) != len(keys):
        raise InputError(f"category names must differ (after lower-casing): {cats}")
    if len(cats) > 20:
        raise InputError("at most 20 categories per project")
    return cats


def create_project(s: Session, name: str, categories: Sequence[str] | str | None = None,
                   multi_label: bool = True, tutorial: str = "") -> Project:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InputError("a project needs a name of 1-200 characters")
    if s.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise InputError(f"a project named {name!r} exists already")
    p = Project(name=name, categories=parse_categories(categories), multi_label=bool(multi_label),
                tutorial=tutorial or "")
    s.add(p)
    s.flush()
    return p


def project_by_name(s: Session, name: str) -> Project:
    p = s.scalar(select(Project).where(Project.name == name))
    if p is None:
        names = s.scalars(select(Project.name).order_by(Project.name)).all()
        raise InputError(f"no project named {name!r}; projects: {', '.join(names) or '(none)'}")
    return p


def _queue_filter(project: Project):
    return (Image.project_id == project.id, Image.png_name.is_not(None), Image.example_for.is_(None))


def next_image(s: Session, user: User, project: Project) -> Image | None:
    """A random image of the project this user has neither classified nor skipped (None: done)."""
    done = select(Classification.image_id).where(Classification.user_id == user.id)
    skipped = select(Skip.image_id).where(Skip.user_id == user.id)
    q = (select(Image).where(*_queue_filter(project), Image.id.not_in(done), Image.id.not_in(skipped))
         .order_by(func.random()).limit(1))
    return s.scalar(q)


def progress(s: Session, user: User, project: Project) -> tuple[int, int]:
    """(images this user has answered or skipped, images to classify in the project)."""
    total = s.scalar(select(func.count(Image.id)).where(*_queue_filter(project))) or 0
    done = select(Classification.image_id).where(Classification.user_id == user.id)
    skipped = select(Skip.image_id).where(Skip.user_id == user.id)
    n = s.scalar(select(func.count(Image.id)).where(*_queue_filter(project),
                                                    Image.id.in_(done) | Image.id.in_(skipped))) or 0
    return int(n), int(total)


class AlreadyAnswered(InputError):
    """The annotator has answered or skipped this image before; the first action stands."""


def normalise_answers(project: Project, answers: Mapping[str, object] | Iterable[str]) -> dict[str, bool]:
    """``{category: bool}`` for every project category from a mapping or a list of ticked names/keys.

    Raises
    ------
    InputError
        For an unknown category, or not exactly one category in a single-label project.
    """
    by_key = {slug(c): c for c in project.categories}
    if isinstance(answers, Mapping):
        ticked = [k for k, v in answers.items() if v in (True, 1, "1", "true", "on", "yes")]
        unknown = [k for k in answers if slug(str(k)) not in by_key]
    else:
        ticked = list(answers)
        unknown = [k for k in ticked if slug(str(k)) not in by_key]
    if unknown:
        raise InputError(f"unknown categories {unknown}; this project has {project.categories}")
    chosen = {by_key[slug(str(k))] for k in ticked}
    if not project.multi_label and len(chosen) != 1:
        raise InputError(f"this project takes exactly one category per image, got {len(chosen)}")
    return {c: c in chosen for c in project.categories}


def record_classification(s: Session, user: User, image: Image, answers, external_id: str | None = None,
                          created_at=None) -> Classification:
    """Store one classification event.

    Raises
    ------
    AlreadyAnswered
        If the user skipped the image before. A second answer is rejected by the database's
        unique (user, image) constraint (:class:`sqlalchemy.exc.IntegrityError`).
    """
    if s.scalar(select(Skip.id).where(Skip.user_id == user.id, Skip.image_id == image.id)) is not None:
        raise AlreadyAnswered("you skipped this image")
    c = Classification(user_id=user.id, image_id=image.id, answers=normalise_answers(image.project, answers),
                       external_id=external_id)
    if created_at is not None:
        c.created_at = created_at
    s.add(c)
    s.flush()
    return c


def record_skip(s: Session, user: User, image: Image) -> None:
    """Remember that the user skipped the image (nothing happens if they answered or skipped it)."""
    answered = s.scalar(select(Classification.id).where(Classification.user_id == user.id,
                                                        Classification.image_id == image.id))
    if answered is None and s.scalar(select(Skip.id).where(Skip.user_id == user.id,
                                                           Skip.image_id == image.id)) is None:
        s.add(Skip(user_id=user.id, image_id=image.id))
        s.flush()


# ------------------------------------------------------------------------------------ uploads


def safe_name(name: str, max_len: int = 120) -> str:
    """A harmless base name for an uploaded file: no folders, no odd characters, no leading dot.

    >>> safe_name("../../x.png"), safe_name("C:\\\\a\\\\b c.sxm"), safe_name("..")
    ('x.png', 'b_c.sxm', 'upload')
    """
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")
    if not base.strip("._-"):
        base = "upload"
    if len(base) > max_len:
        stem, dot, suf = base.rpartition(".")
        base = (stem[: max_len - len(suf) - 1] + "." + suf) if dot and len(suf) < 16 else base[:max_len]
    return base


def _suffix(name: str) -> str:
    suf = Path(name).suffix.lower()
    return suf if re.fullmatch(r"\.[a-z0-9_]{1,15}", suf) else ""


@dataclass
class UploadResult:
    """Outcome of a batch upload: the images stored and the files refused, with reasons."""

    stored: list[Image] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def messages(self) -> list[str]:
        return [f"{name}: {reason}" for name, reason in self.refused]


def _copy_limited(src: BinaryIO, dst: Path, limit: int) -> tuple[int, str] | None:
    """Copy at most ``limit`` bytes; (size, sha256) or None when the source is larger."""
    h = hashlib.sha256()
    n = 0
    with open(dst, "wb") as out:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
            if n > limit:
                return None
            h.update(chunk)
            out.write(chunk)
    return n, h.hexdigest()


@dataclass
class PreparedUpload:
    """A file of a batch read and rendered, waiting for its database row."""

    display: str
    path: Path
    digest: str
    png: bytes
    width: int
    height: int


def _bad_name(original: str) -> str | None:
    if "\x00" in (original or ""):
        return "the file name contains a NUL byte"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in original or ""):
        return "the file name contains control characters"
    return None


def _shown(original: str) -> str:
    """The client's file name for display: its last path part, control characters escaped."""
    base = re.split(r"[\\/]", original or "")[-1] or "upload"
    return "".join(ch if ord(ch) >= 32 and ord(ch) != 127 else f"\\x{ord(ch):02x}" for ch in base)[:255]


def prepare_uploads(files: Sequence[tuple[str, BinaryIO]], batch: Path, max_bytes: int,
                    known_digests: Iterable[str] = (), render: Callable[[Path], tuple[bytes, int, int]] | None = None,
                    result: UploadResult | None = None) -> tuple[list[PreparedUpload], UploadResult]:
    """Copy a batch of uploads into the folder ``batch`` and render them; no database access.

    ``render(path) -> (png, width, height)`` raises a :class:`~scopenet.errors.ScopenetError` for a
    file it refuses (default: :func:`~scopenet.label.worker.render_checked`, in this process, with the
    default pixel limit; the web app passes its :class:`~scopenet.label.worker.RenderPool`).
    Files already known by their sha256 (``known_digests``), too large, empty, with NUL bytes or
    control characters in their name, or unreadable are refused in ``result``.
    """
    from .worker import render_checked

    render = render or render_checked
    result = result if result is not None else UploadResult()
    staged: list[tuple[str, Path, str]] = []
    used: set[str] = set()
    for original, fh in files:
        display = _shown(original)
        bad = _bad_name(original)
        if bad:
            result.refused.append((display, bad))
            continue
        name = safe_name(original)
        while name.lower() in used:
            name = f"_{name}"
        used.add(name.lower())
        got = _copy_limited(fh, batch / name, max_bytes)
        if got is None:
            result.refused.append((display, f"larger than the upload limit of {max_bytes:,} bytes"))
            continue
        size, digest = got
        if size == 0:
            result.refused.append((display, "the file is empty"))
            continue
        staged.append((display, batch / name, digest))
    data_suffixes = {p.suffix.lower() for _, p, _ in staged}
    has_matrix_data = any(suf.endswith("_mtrx") for suf in data_suffixes)
    seen = set(known_digests)
    prepared: list[PreparedUpload] = []
    for display, path, digest in staged:
        if path.suffix.lower() in COMPANION_SUFFIXES:
            if not has_matrix_data:
                result.refused.append((display, "a MATRIX index file without its *_mtrx data file in "
                                                "the same upload"))
            continue
        if digest in seen:
            result.refused.append((display, "the same file is in this project already"))
            continue
        try:
            png, width, height = render(path)
        except ReadError as exc:
            result.refused.append((display, exc.reason))
            continue
        except ScopenetError as exc:
            result.refused.append((display, str(exc)))
            continue
        except MemoryError:
            result.refused.append((display, "reading it runs out of memory"))
            continue
        except Exception as exc:  # an unexpected library failure must not sink the batch
            result.refused.append((display, f"cannot be read ({type(exc).__name__})"))
            continue
        seen.add(digest)
        prepared.append(PreparedUpload(display, path, digest, png, int(width), int(height)))
    return prepared, result


def store_prepared(s: Session, project: Project, prepared: Sequence[PreparedUpload], upload_dir: Path,
                   example_for: str | None = None, result: UploadResult | None = None) -> UploadResult:
    """Move rendered uploads into ``upload_dir`` and add their rows (the caller commits).

    A file whose sha256 turned up in the project meanwhile (a concurrent upload) is refused as a
    duplicate. Files already moved are removed again when the transaction fails, so that only a
    crash can leave files without rows (:func:`remove_orphans` clears them at start-up).
    """
    upload_dir = Path(upload_dir)
    (upload_dir / "originals").mkdir(parents=True, exist_ok=True)
    (upload_dir / "png").mkdir(parents=True, exist_ok=True)
    result = result if result is not None else UploadResult()
    seen = set(s.scalars(select(Image.sha256).where(Image.project_id == project.id,
                                                    Image.sha256.is_not(None))).all())
    moved: list[Path] = []
    try:
        for item in prepared:
            if item.digest in seen:
                result.refused.append((item.display, "the same file is in this project already"))
                continue
            seen.add(item.digest)
            uid = uuid.uuid4().hex
            stored_name = uid + _suffix(item.path.name)
            png_name = uid + ".png"
            dest = upload_dir / "originals" / stored_name
            shutil.move(str(item.path), dest)
            moved.append(dest)
            moved.append(upload_dir / "png" / png_name)
            moved[-1].write_bytes(item.png)
            # an image imported from Zooniverse without pixels gets its file now
            img = s.scalar(select(Image).where(Image.project_id == project.id,
                                               Image.original_name == item.display, Image.png_name.is_(None)))
            if img is None:
                img = Image(project_id=project.id, original_name=item.display)
                s.add(img)
            img.stored_name, img.png_name, img.sha256 = stored_name, png_name, item.digest
            img.width, img.height, img.example_for = item.width, item.height, example_for
            s.flush()
            result.stored.append(img)
    except BaseException:
        for path in moved:
            path.unlink(missing_ok=True)
        raise
    return result


def _check_example(project: Project, example_for: str | None) -> None:
    if example_for is not None and example_for not in project.categories:
        raise InputError(f"unknown category {example_for!r}; this project has {project.categories}")


def _new_batch(upload_dir: Path) -> Path:
    batch = Path(upload_dir) / f"tmp-{uuid.uuid4().hex}"
    batch.mkdir(parents=True)
    return batch


def ingest_uploads(s: Session, project: Project, files: Sequence[tuple[str, BinaryIO]], upload_dir: Path,
                   max_bytes: int, example_for: str | None = None,
                   render: Callable[[Path], tuple[bytes, int, int]] | None = None) -> UploadResult:
    """Store a batch of uploaded files as images of ``project``, within the session ``s``.

    Every file is read with :func:`scopenet.read` and rendered to PNG (X-flattened, robust
    percentiles). The original and the PNG are stored under generated names inside ``upload_dir``;
    the client's file name is kept for display only. A file that is too large, over the pixel
    limit, unreadable, a duplicate, or not an image is refused with a reason and the rest of the
    batch goes in. MATRIX ``*.mtrx`` index files are used for the ``*_mtrx`` data files of the same
    batch. (The web app renders outside its transaction: :func:`upload_files`.)

    Parameters
    ----------
    files : sequence of (original file name, binary file object)
    max_bytes : int
        Size limit per file.
    example_for : str, optional
        Mark the images as tutorial examples of this category.
    render : callable, optional
        ``render(path) -> (png, width, height)``; see :func:`prepare_uploads`.
    """
    _check_example(project, example_for)
    batch = _new_batch(upload_dir)
    try:
        known = s.scalars(select(Image.sha256).where(Image.project_id == project.id, Image.sha256.is_not(None)))
        prepared, result = prepare_uploads(files, batch, max_bytes, known.all(), render)
        return store_prepared(s, project, prepared, upload_dir, example_for, result)
    finally:
        shutil.rmtree(batch, ignore_errors=True)


def upload_files(factory: sessionmaker[Session], project_id: int, files: Sequence[tuple[str, BinaryIO]],
                 upload_dir: Path, max_bytes: int, example_for: str | None = None,
                 render: Callable[[Path], tuple[bytes, int, int]] | None = None) -> UploadResult:
    """:func:`ingest_uploads` for the web app: read and render with no transaction open, then write
    the rows in one short transaction (retried while the database is busy).

    Raises
    ------
    LookupError
        When the project does not exist (or was deleted meanwhile).
    InputError
        For an unknown ``example_for`` category.
    """
    from .db import retry_locked, write_session

    with factory() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise LookupError("no such project")
        _check_example(project, example_for)
        known = s.scalars(select(Image.sha256).where(Image.project_id == project.id,
                                                     Image.sha256.is_not(None))).all()
    batch = _new_batch(upload_dir)
    try:
        prepared, refused = prepare_uploads(files, batch, max_bytes, known, render)

        def write() -> UploadResult:
            result = UploadResult(refused=list(refused.refused))
            with write_session(factory) as s:
                project = s.get(Project, project_id)
                if project is None:
                    raise LookupError("no such project")
                return store_prepared(s, project, prepared, upload_dir, example_for, result)

        return retry_locked(write)
    finally:
        shutil.rmtree(batch, ignore_errors=True)


def remove_orphans(s: Session, upload_dir: Path, older_than: float = 0.0) -> dict[str, int]:
    """Delete what a crash during an upload can leave in ``upload_dir``: ``tmp-<uuid>`` batch folders
    and stored originals/PNGs that no image row names.

    Only entries last modified more than ``older_than`` seconds ago are touched (another process
    serving the same folder may be uploading right now). Returns counts per kind.
    """
    import time

    upload_dir = Path(upload_dir)
    cutoff = time.time() - older_than
    out = {"batches": 0, "originals": 0, "png": 0}
    if not upload_dir.is_dir():
        return out
    for d in upload_dir.glob("tmp-*"):
        if d.is_dir() and re.fullmatch(r"tmp-[0-9a-f]{32}", d.name) and d.stat().st_mtime < cutoff:
            shutil.rmtree(d, ignore_errors=True)
            out["batches"] += 1
    names = {"originals": set(s.scalars(select(Image.stored_name).where(Image.stored_name.is_not(None))).all()),
             "png": set(s.scalars(select(Image.png_name).where(Image.png_name.is_not(None))).all())}
    for sub, keep in names.items():
        folder = upload_dir / sub
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            # only names the service generates: uuid hex + suffix
            if (f.is_file() and f.name not in keep and re.fullmatch(r"[0-9a-f]{32}(\.[a-z0-9_]{1,15})?", f.name)
                    and f.stat().st_mtime < cutoff):
                f.unlink(missing_ok=True)
                out[sub] += 1
    return out


def set_example(s: Session, img: Image, category: str | None) -> None:
    """Mark an image as a tutorial example of ``category`` (None: an image to classify again).

    An example leaves the annotators' queue; classification events it has are kept.

    Raises
    ------
    InputError
        For a category the project does not have, or an image without pixels (a Zooniverse
        subject whose file was never uploaded).
    """
    if category is not None:
        cats = img.project.categories
        if category not in cats:
            raise InputError(f"unknown category {category!r}; this project has {cats}")
        if not img.png_name:
            raise InputError(f"{img.original_name!r} has no pixels yet: upload its file first")
    img.example_for = category


def _remove_files(img: Image, upload_dir: Path) -> None:
    for sub, name in (("originals", img.stored_name), ("png", img.png_name)):
        if name:
            (Path(upload_dir) / sub / name).unlink(missing_ok=True)


def delete_image(s: Session, img: Image, upload_dir: Path) -> None:
    """Delete an image, its classification events and skips, and its stored files."""
    s.execute(delete(Classification).where(Classification.image_id == img.id))
    s.execute(delete(Skip).where(Skip.image_id == img.id))
    _remove_files(img, upload_dir)
    s.delete(img)


def delete_project(s: Session, project: Project, upload_dir: Path) -> None:
    """Delete a project with all its images, events and files."""
    for img in list(project.images):
        delete_image(s, img, upload_dir)
    s.delete(project)


# ------------------------------------------------------------------------- export, aggregation


def events_frame(s: Session, project: Project) -> pd.DataFrame:
    """One row per classification event of ``project``.

    Columns: ``event_id``, ``image_id``, ``image`` (original name), ``sha256``, ``user``,
    ``created_at`` (ISO 8601, UTC), ``external_id``, and one 0/1 column per category key.
    """
    rows = s.execute(select(Classification, Image, User.username)
                     .join(Image, Classification.image_id == Image.id)
                     .join(User, Classification.user_id == User.id)
                     .where(Image.project_id == project.id)
                     .order_by(Classification.id)).all()
    keys = project.keys
    recs = []
    for c, img, uname in rows:
        rec = {"event_id": c.id, "image_id": img.id, "image": img.original_name, "sha256": img.sha256,
               "user": uname, "created_at": c.created_at.isoformat() + "Z", "external_id": c.external_id}
        for cat, key in zip(project.categories, keys):
            rec[key] = int(bool(c.answers.get(cat, False)))
        recs.append(rec)
    cols = ["event_id", "image_id", "image", "sha256", "user", "created_at", "external_id", *keys]
    return pd.DataFrame(recs, columns=cols)


#: first characters that make a spreadsheet read a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells starting with ``= + - @`` (or a tab or carriage return)
    get a leading single quote, so that a spreadsheet shows them as text instead of running them
    as formulas (CSV injection). Numbers are left alone.

    >>> csv_safe(pd.DataFrame({"user": ["=cmd|' /C calc'!A0", "bob"], "n": [-1, 2]}))["user"].tolist()
    ["'=cmd|' /C calc'!A0", 'bob']
    """
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)
    out.columns = ["'" + c if isinstance(c, str) and c.startswith(FORMULA_STARTS) else c for c in out.columns]
    return out


def aggregate_project(s: Session, project: Project, min_agreement: float | None = None) -> pd.DataFrame:
    """Score table (:func:`~scopenet.training.crowd.aggregate.aggregate_events`) of a project's events, per image.

    Images are told apart by id (two uploads may share a name); ``name`` is the original name and
    ``image_id`` is added. ``min_agreement`` drops images below that mean agreement.
    """
    from ..training.crowd.aggregate import filter_by_agreement

    ev = events_frame(s, project)
    scores = aggregate_events(ev, project.categories, image_col="image_id")
    names = dict(zip(ev["image_id"], ev["image"]))
    scores.insert(0, "image_id", scores["name"].astype(int))
    scores["name"] = scores["image_id"].map(names)
    if min_agreement is not None:
        scores = filter_by_agreement(scores, min_agreement)
    return scores
