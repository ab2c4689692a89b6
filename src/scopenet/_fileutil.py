"""Safe output: write to a temporary name in the same folder, put it in place when complete.

* The temporary file is ``.<stem>.scopenet-<host>-<pid>-<random>.partial<suffix>`` beside the
  output, so a crash never leaves a half-written file under the final name.
* Without ``overwrite`` the finished file is put in place with an exclusive create (a hard link,
  which fails when the name exists), so two writers racing for the same new name cannot both
  succeed: the second gets :class:`~scopenet.errors.WriteError` "file exists". On a file system
  without hard links the name is reserved with ``O_CREAT | O_EXCL`` first, then replaced.
* Temporary files left by writers that were killed (``kill -9``, power loss) are removed by the
  next write into the same folder (scanned at most every :data:`CLEAN_EVERY_S` per process):
  those whose writer process (on this host) is gone, and any untouched for :data:`STALE_AFTER_S`.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .errors import WriteError

#: a temporary output untouched for this long is abandoned, whoever wrote it.
STALE_AFTER_S = 15 * 60
#: a folder is scanned for stale temporary outputs at most this often per process (batch writes).
CLEAN_EVERY_S = 60.0
_last_clean: dict[str, float] = {}
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname() or "host")[:32] or "host"
#: ``.<stem>.scopenet-<host>-<pid>-<random>.partial<suffix>[<companion>]``
_OURS = re.compile(r"^\..*\.scopenet-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[A-Za-z0-9_]+\.partial")
#: temporary names of earlier scopenet versions: ``.<stem>.<8 random of mkstemp>.partial<suffix>``
_LEGACY = re.compile(r"^\..*\.[a-z0-9_]{8}\.partial(\.[A-Za-z0-9]+)+$")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's live process
        return True
    except OSError:
        return True
    return True


def is_stale_partial(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary output of a scopenet writer that can no longer finish it."""
    name = path.name
    m = _OURS.match(name)
    if m is None and not _LEGACY.match(name):
        return False
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    if m is not None and m.group("host") == _HOST:
        pid = int(m.group("pid"))
        return pid != os.getpid() and not _pid_alive(pid)
    return False


def clean_stale_partials(folder: str | Path) -> list[Path]:
    """Remove the temporary outputs in ``folder`` left by killed writers; return what was removed.

    Never raises: a file that cannot be removed (permissions, a race with another cleaner) stays.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        if not e.name.startswith(".") or ".partial" not in e.name:
            continue
        p = Path(e.path)
        try:
            if not e.is_file(follow_symlinks=False) or not is_stale_partial(p, now):
                continue
            p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed


def _put_in_place_exclusively(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless ``path`` exists, atomically; raise WriteError if it does."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise WriteError(path, "file exists (pass overwrite=True to replace it); another "
                               "process may have written it meanwhile") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK,
                             errno.ENOSYS, errno.EACCES):
            raise
        # no hard links here (FAT, some network shares): reserve the name, then replace it
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            raise WriteError(path, "file exists (pass overwrite=True to replace it); "
                                   "another process may have written it meanwhile") from None
        os.close(fd)
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; put it in place as ``path`` only if the block succeeds.

    An existing ``path`` is never replaced unless ``overwrite`` is true (checked before the work
    and again, atomically, when the file is put in place), and a failure inside the block leaves no
    partial file behind. Stale temporary files of killed writers in the folder are removed first.

    Examples
    --------
    >>> with atomic_output("out.tif") as tmp:          # doctest: +SKIP
    ...     tifffile.imwrite(tmp, data)
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(path, "is a directory")
    if path.exists() and not overwrite:
        raise WriteError(path, "file exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.path.abspath(path.parent)
    if time.monotonic() - _last_clean.get(folder, -CLEAN_EVERY_S) >= CLEAN_EVERY_S:
        _last_clean[folder] = time.monotonic()
        clean_stale_partials(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.scopenet-{_HOST}-{os.getpid()}-",
                               suffix=".partial" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the output the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        if overwrite:
            os.replace(tmp_path, path)
        else:
            _put_in_place_exclusively(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
