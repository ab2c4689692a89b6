"""Issue #19 item 7: outputs never race, killed writers leave nothing for long, full disks do not crash.

* two writers racing for the same new file: exactly one succeeds (exclusive create, not
  check-then-rename);
* ``kill -9`` during a write leaves a hidden ``.partial`` file; the next write into that folder
  removes it (writer process gone, or older than ``STALE_AFTER_S``);
* an ``.h5`` write that hits a full disk reports the disk error and exits normally (it used to
  print the error and then die with a segmentation fault, rc 139).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from scopenet import _fileutil
from scopenet._fileutil import STALE_AFTER_S, atomic_output, clean_stale_partials
from scopenet.errors import WriteError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.io import read, write

REPO = Path(__file__).resolve().parents[2]


def _img(value: float = 1.0) -> Micrograph:
    return Micrograph(np.full((8, 10), value, dtype=np.float32),
                      axes=[Axis("y", 8, 0.5, unit="nm"), Axis("x", 10, 0.5, unit="nm")])


def _run(code: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


# ------------------------------------------------------------------------------------ races
@pytest.mark.parametrize("ext", [".tif", ".h5", ".npy", ".png"])
def test_file_appearing_during_the_write_is_not_replaced(tmp_path, ext, monkeypatch):
    """The race, made deterministic: another writer finishes the same name while we write."""
    import scopenet.io.registry as R

    target = tmp_path / f"out{ext}"
    fmt = R.find_format(target, for_writing=True)
    real = fmt.writer

    def writer_racing(img, path, **kw):
        out = real(img, path, **kw)
        target.write_bytes(b"the other writer's file")
        return out

    monkeypatch.setattr(fmt, "writer", writer_racing)
    with pytest.raises(WriteError, match="exists"):
        write(_img(), target)
    assert target.read_bytes() == b"the other writer's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temporary file left


@pytest.mark.parametrize("ext", [".npy", ".tif"])
def test_concurrent_writers_exactly_one_wins(tmp_path, ext):
    rounds, writers = 6, 6
    for r in range(rounds):
        target = tmp_path / f"r{r}{ext}"
        barrier = threading.Barrier(writers)
        results: list = [None] * writers

        def go(i, barrier=barrier, target=target, results=results):
            barrier.wait()
            try:
                write(_img(float(i)), target)
                results[i] = "ok"
            except WriteError as exc:
                results[i] = str(exc)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [i for i, res in enumerate(results) if res == "ok"]
        assert len(winners) == 1, results
        assert all("exists" in res for res in results if res != "ok")
        assert float(read(target).data[0, 0]) == winners[0]  # the file is the winner's, whole
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_concurrent_cli_converts_exactly_one_wins(tmp_path):
    """Two ``scopenet convert`` processes into the same new path: one succeeds, one is refused."""
    src = tmp_path / "in.npy"
    np.save(src, np.arange(64, dtype=np.float32).reshape(8, 8))
    dst = tmp_path / "out.tif"
    code = f"""
        import sys, time
        from scopenet.cli.main import app
        time.sleep(max(0.0, {time.time() + 4.0!r} - time.time()))   # start together
        sys.argv = ["scopenet", "convert", {str(src)!r}, {str(dst)!r}]
        app()
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    rcs = sorted(p.returncode for p in procs)
    assert rcs[0] == 0 and rcs[1] != 0, (rcs, outs)
    assert any("exists" in out + err for out, err in outs)
    assert read(dst).shape == (8, 8)


# --------------------------------------------------------------------------- stale temp files
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_partials_are_cleaned_on_the_next_write(tmp_path):
    host = _fileutil._HOST
    dead = tmp_path / f".scan.scopenet-{host}-{_dead_pid()}-abcd1234.partial.tif"
    dead_side = tmp_path / f".scan.scopenet-{host}-{_dead_pid()}-abcd1234.partial.npy.json"
    live = tmp_path / f".scan.scopenet-{host}-{os.getpid()}-efgh5678.partial.tif"
    other_host = tmp_path / ".scan.scopenet-elsewhere-1-ijkl9012.partial.tif"
    old_other_host = tmp_path / ".scan.scopenet-elsewhere-1-mnop3456.partial.tif"
    legacy_old = tmp_path / ".scan.k2j4h5g6.partial.h5"
    legacy_new = tmp_path / ".scan.q1w2e3r4.partial.h5"
    unrelated = [tmp_path / ".hidden", tmp_path / "notes.partial.txt", tmp_path / ".config.partial"]
    for p in [dead, dead_side, live, other_host, old_other_host, legacy_old, legacy_new, *unrelated]:
        p.write_bytes(b"half")
    old = time.time() - STALE_AFTER_S - 60
    for p in (old_other_host, legacy_old, unrelated[0], unrelated[2]):
        os.utime(p, (old, old))
    write(_img(), tmp_path / "new.tif")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"new.tif", live.name, other_host.name, legacy_new.name, *(u.name for u in unrelated)}


@pytest.mark.timeout(120)
def test_kill_9_during_a_write_leaves_nothing_after_the_next_write(tmp_path):
    code = f"""
        import sys, time
        from scopenet._fileutil import atomic_output
        with atomic_output({str(tmp_path / "big.tif")!r}) as tmp:
            tmp.write_bytes(b"half written")
            print(tmp, flush=True)
            time.sleep(120)
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        partial = Path(proc.stdout.readline().strip())
        assert partial.exists() and partial.name.startswith(".big.") and ".partial" in partial.name
        assert clean_stale_partials(tmp_path) == []  # its writer is alive: left alone
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs
        proc.wait()
    assert partial.exists()
    write(_img(), tmp_path / "other.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.npy", "other.npy.json"]


# ------------------------------------------------------------------------------- full disk
_FULL_DISK = """
    import errno, io, sys
    import numpy as np
    import scopenet.io.hdf5_io as H
    from scopenet.errors import WriteError
    from scopenet.image.micrograph import Micrograph

    LIMIT = {limit}

    class FullDisk(io.FileIO):
        def write(self, b):
            room = LIMIT - self.tell()
            if room <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(memoryview(b)[:room])

    H.open = lambda path, mode, buffering=-1: FullDisk(path, mode.replace("b", ""))
    import scopenet as sn
    img = Micrograph(np.random.default_rng(0).random((256, 256)).astype(np.float32))
    try:
        sn.write(img, sys.argv[1], compression={compression!r})
    except WriteError as exc:
        print("error:", exc)
        sys.exit(1)
    print("written")
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("limit", [100, 3000, 40_000, 200_000])
@pytest.mark.parametrize("compression", ["gzip", None])
def test_h5_on_a_full_disk_reports_and_exits_cleanly(tmp_path, limit, compression):
    out = tmp_path / "out.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(_FULL_DISK.format(limit=limit,
                                                                               compression=compression)),
                        str(out)], capture_output=True, text=True, timeout=100, env=env)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr[-2000:])  # not 139 (SIGSEGV) / 135
    assert "No space left on device" in r.stdout and "out.h5" in r.stdout
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_h5_full_disk_in_process(tmp_path, monkeypatch):
    import errno
    import io

    import scopenet.io.hdf5_io as H

    class FullDisk(io.FileIO):
        def write(self, b):
            if self.tell() > 5000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(b)

    monkeypatch.setattr(H, "open", lambda path, mode, buffering=-1: FullDisk(path, mode.replace("b", "")),
                        raising=False)
    img = Micrograph(np.random.default_rng(1).random((128, 128)).astype(np.float32))
    with pytest.raises(WriteError, match="out.h5.*No space left on device"):
        write(img, tmp_path / "out.h5")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    back = read(write(img, tmp_path / "out.h5"))  # the writer works again once there is room
    np.testing.assert_array_equal(back.data, img.data)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as a stand-in for a full disk")
@pytest.mark.timeout(120)
def test_cli_convert_to_h5_past_the_file_size_limit_exits_1(tmp_path):
    """The real file system refuses the write (EFBIG under RLIMIT_FSIZE), as a full disk would."""
    src = tmp_path / "in.npy"
    np.save(src, np.random.default_rng(2).random((256, 256)).astype(np.float32))
    out = tmp_path / "out" / "o.h5"
    code = f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        from scopenet.cli.main import app
        sys.argv = ["scopenet", "convert", {str(src)!r}, {str(out)!r}]
        app()
    """
    r = _run(code, timeout=100)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr[-2000:])
    assert "File too large" in r.stdout + r.stderr
    assert "Exception ignored" not in r.stderr
    assert list(out.parent.iterdir()) == []


def test_atomic_output_without_hard_links_still_exclusive(tmp_path, monkeypatch):
    """File systems without hard links (FAT, some shares): the name is reserved with O_EXCL."""
    def no_link(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    target = tmp_path / "a.bin"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(WriteError, match="exists"):
        with atomic_output(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"mine")
            (tmp_path / "b.bin").write_bytes(b"theirs")
    assert (tmp_path / "b.bin").read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]
