"""Bad input for every registered reader: each failure is a ReadError that names the file.

Covers, for every format in ``scopenet.io.registry.FORMATS`` (so formats registered later are
covered automatically): zero-byte files, random bytes and truncated files with each supported
extension, a PNG renamed ``.sxm``, an unsupported extension, a directory and a missing file; then
hypothesis fuzzing (bounded) with random bytes and mutated/truncated real headers, checking that
no exception other than ReadError escapes and that no read hangs.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scopenet.io  # noqa: F401  (registers the formats)
from scopenet.errors import ReadError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.io import registry

from ..conftest import FIXTURES, TEST_DATA

registry._load_builtin_formats()
READERS = [f for f in registry.FORMATS if f.reader is not None]
EXTENSIONS = sorted({e for f in READERS for e in f.extensions})
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
READ_TIMEOUT_S = 10


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail (instead of hanging the suite) when a read takes longer than ``seconds``."""
    def handler(signum, frame):
        raise TimeoutError(f"read did not finish in {seconds} s (hang on corrupt input?)")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def read_expect_only_readerror(path: Path) -> None:
    """Read ``path``: success is allowed, a ReadError must name the file, nothing else may escape."""
    with time_limit(READ_TIMEOUT_S):
        try:
            images = registry.read_all(path)
        except ReadError as exc:
            assert path.name in str(exc), f"ReadError does not name the file: {exc}"
            return
    assert images and all(isinstance(m, Micrograph) for m in images)


def assert_readerror(path: Path, match: str | None = None) -> ReadError:
    with time_limit(READ_TIMEOUT_S), pytest.raises(ReadError) as info:
        registry.read_all(path)
    assert path.name in str(info.value)
    if match:
        assert re.search(match, str(info.value), re.IGNORECASE), str(info.value)
    return info.value


def png_bytes(h: int = 4, w: int = 5) -> bytes:
    """A valid 8-bit greyscale PNG, built by hand (no imaging library needed)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\0" + bytes(range(r * w, r * w + w)) for r in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ----------------------------------------------------------------------------- sample files
def _claims(path: Path, fmt: registry.Format) -> bool:
    if fmt.magic is None:
        return False
    with open(path, "rb") as fh:
        try:
            return bool(fmt.magic(fh.read(512)))
        except Exception:
            return False


def _smallest(root: Path, fmt: registry.Format) -> Path | None:
    """The smallest file under ``root`` with one of the format's extensions or its magic bytes."""
    if not root.is_dir():
        return None
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".py")]
    by_ext = [p for p in files if p.suffix.lower() in fmt.extensions]
    found = by_ext or [p for p in files if _claims(p, fmt)]
    return min(found, key=lambda p: p.stat().st_size) if found else None


def sample_file(fmt: registry.Format, dest: Path) -> Path:
    """A valid file of ``fmt`` copied into ``dest`` (with companion files), or skip.

    Looks in tests/data first, then writes one with the format's writer, then uses the smallest
    matching file of ../shared/fixtures.
    """
    src = _smallest(TEST_DATA, fmt)
    if src is None and fmt.writer is not None:
        img = Micrograph(np.arange(48, dtype=np.float32).reshape(6, 8),
                         axes=[Axis("y", 6, 0.5, unit="nm"), Axis("x", 8, 0.5, unit="nm")])
        out = dest / f"sample{fmt.extensions[0]}"
        fmt.writer(img, out)
        return out
    if src is None:
        src = _smallest(FIXTURES, fmt)
    if src is None:
        pytest.skip(f"no sample file for format {fmt.name} (tests/data and ../shared/fixtures lack one)")
    out = dest / src.name
    shutil.copyfile(src, out)
    if "--" in src.name:  # Omicron MATRIX: the index file belongs beside the data file
        idx = src.with_name(src.name[:src.name.rindex("--")] + "_0001.mtrx")
        if idx.exists():
            shutil.copyfile(idx, dest / idx.name)
    if src.suffix.lower() == ".emi":  # TIA: the .ser data file belongs beside the .emi
        for ser in src.parent.glob(src.stem + "_*.ser"):
            shutil.copyfile(ser, dest / ser.name)
    return out


FORMAT_IDS = [f.name for f in READERS]


# ------------------------------------------------------------------------- fixed bad inputs
def test_every_reader_registered():
    names = {f.name for f in READERS}
    assert {"nanonis-sxm", "omicron-matrix", "gwyddion", "igor-ibw", "bruker-nanoscope"} <= names


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_zero_byte_file(tmp_path, ext):
    p = tmp_path / f"empty{ext}"
    p.write_bytes(b"")
    assert_readerror(p, "empty")


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_random_bytes_with_each_extension(tmp_path, ext):
    p = tmp_path / f"noise{ext}"
    p.write_bytes(np.random.default_rng(len(ext)).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    assert_readerror(p)


@pytest.mark.parametrize("fmt", READERS, ids=FORMAT_IDS)
def test_truncated_to_a_third(tmp_path, fmt):
    p = sample_file(fmt, tmp_path)
    data = p.read_bytes()
    p.write_bytes(data[: max(1, len(data) // 3)])
    assert_readerror(p)


@pytest.mark.parametrize("fmt", READERS, ids=FORMAT_IDS)
def test_sample_files_themselves_read(tmp_path, fmt):
    """Sanity check of the samples the other tests corrupt."""
    p = sample_file(fmt, tmp_path)
    if p.suffix.lower() in (".emi",) and not list(tmp_path.glob("*.ser")):
        pytest.skip("TIA .emi sample without its .ser")
    assert registry.read_all(p)


def test_png_renamed_sxm(tmp_path):
    p = tmp_path / "picture.sxm"
    p.write_bytes(png_bytes())
    fmt = registry.find_format(p, p.read_bytes()[:512])
    if fmt is not None and ".png" in fmt.extensions:
        # a PNG reader recognises the content by its signature: reading by content is correct
        (img,) = registry.read_all(p)
        assert img.shape == (4, 5)
    else:
        assert_readerror(p, "nanonis|sxm")


def test_sxm_renamed_gwy_is_read_by_content(tmp_path):
    p = tmp_path / "scan.gwy"
    shutil.copyfile(TEST_DATA / "spm" / "generated_down.sxm", p)
    assert registry.read_all(p)[0].signal == "Z"


def test_unsupported_extension(tmp_path):
    p = tmp_path / "table.xyz"
    p.write_bytes(b"1 2 3\n4 5 6\n")
    assert_readerror(p, "unsupported")


@pytest.mark.parametrize("name", ["folder", "folder.sxm"])
def test_directory(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    assert_readerror(d, "directory")


def test_missing_file(tmp_path):
    assert_readerror(tmp_path / "nothing-here.sxm", "no such file")


# ------------------------------------------------------------------------------------ fuzzing
@pytest.mark.parametrize("ext", EXTENSIONS)
@FUZZ
@given(blob=st.binary(min_size=1, max_size=2048))
def test_fuzz_random_bytes(tmp_path, ext, blob):
    p = tmp_path / f"fuzz{ext}"
    p.write_bytes(blob)
    read_expect_only_readerror(p)


@st.composite
def mutations(draw, size: int):
    """A list of edits of a file of ``size`` bytes: truncations, byte flips, big numbers."""
    head = max(1, min(size, 4096))
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "flip", "number", "zero"]))
        pos = draw(st.integers(0, head - 1))
        if kind == "truncate":
            edits.append(("truncate", draw(st.integers(1, size)), 0))
        elif kind == "flip":
            edits.append(("flip", pos, draw(st.integers(1, 255))))
        elif kind == "zero":
            edits.append(("zero", pos, draw(st.integers(1, 16))))
        else:
            edits.append(("number", pos, draw(st.sampled_from([0, -1, 7, 65535, 10**9, 2**31 - 1, 2**32]))))
    return edits


def apply(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for kind, pos, arg in edits:
        if kind == "truncate":
            b = b[:pos]
        elif pos >= len(b):
            continue
        elif kind == "flip":
            b[pos] ^= arg
        elif kind == "zero":
            b[pos:pos + arg] = bytes(len(b[pos:pos + arg]))
        else:
            # text headers: replace the digit run at/after pos by a (huge) number;
            # binary headers: overwrite 4 bytes with the little-endian int32
            m = re.compile(rb"\d+").search(bytes(b), pos, min(len(b), pos + 200))
            if m:
                b[m.start():m.end()] = str(arg).encode()
            else:
                b[pos:pos + 4] = struct.pack("<I", arg % 2**32)[: len(b[pos:pos + 4])]
    return bytes(b) or b"\0"


@pytest.mark.parametrize("fmt", READERS, ids=FORMAT_IDS)
@FUZZ
@given(data=st.data())
def test_fuzz_mutated_headers(tmp_path, fmt, data):
    p = sample_file(fmt, tmp_path)
    original = p.read_bytes()
    p.write_bytes(apply(original, data.draw(mutations(len(original)))))
    read_expect_only_readerror(p)


def test_matrix_fuzzed_index(tmp_path):
    """The MATRIX index is parsed too: corrupt it and read the (intact) data file."""
    src = TEST_DATA / "spm"
    shutil.copyfile(src / "gen_full--1_1.Z_mtrx", tmp_path / "gen_full--1_1.Z_mtrx")
    index = (src / "gen_full_0001.mtrx").read_bytes()

    @FUZZ
    @given(edits=mutations(len(index)))
    def run(edits):
        (tmp_path / "gen_full_0001.mtrx").write_bytes(apply(index, edits))
        read_expect_only_readerror(tmp_path / "gen_full--1_1.Z_mtrx")

    run()


@pytest.mark.parametrize("name, pattern", [
    ("generated_down.sxm", rb"(       16       12)"),
    ("generated.001", rb"Number of lines: (6)"),
])
@pytest.mark.parametrize("claim", [10**5, 10**9, 2**31 - 1])
def test_header_claiming_huge_image_is_refused(tmp_path, name, pattern, claim):
    data = (TEST_DATA / "spm" / name).read_bytes()
    m = re.search(pattern, data)
    new = (f"{claim} {claim}" if b" " in m.group(1).strip() else str(claim)).encode()
    p = tmp_path / name
    p.write_bytes(data[:m.start(1)] + new + data[m.end(1):])
    assert_readerror(p, "implausible|truncated|corrupt")


# ------------------------------------------------------------------ issue #19: readers never hang
def _next_ifd_pointer(data: bytes, ifd: int) -> int:
    """Byte position of the next-IFD offset of the (classic, little-endian) IFD at ``ifd``."""
    (n,) = struct.unpack("<H", data[ifd:ifd + 2])
    return ifd + 2 + 12 * n


@pytest.mark.shared
@pytest.mark.timeout(20)
def test_tiff_with_looping_page_chain_fixture(tmp_path):
    """Issue #19 item 1: byte 130 of mask-3.tif set to 0x80 made ``sn.read`` loop forever."""
    from ..conftest import shared_path

    data = bytearray(shared_path("fixtures", "partial-stem", "mask-3.tif").read_bytes())
    assert _next_ifd_pointer(bytes(data), 8) == 130
    data[130] = 0x80
    p = tmp_path / "mask-3.tif"
    p.write_bytes(bytes(data))
    assert_readerror(p, "loops")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pages", [1, 3])
def test_tiff_with_looping_page_chain(tmp_path, pages):
    """The same damage on a generated plain TIFF: the last next-IFD offset points 2 bytes back, at
    an 'IFD' with 0 tags whose next offset is itself (tifffile's series loop never ended)."""
    import tifffile

    p = tmp_path / "plain.tif"
    data = np.arange(pages * 256, dtype=np.float32).reshape(pages, 16, 16)
    tifffile.imwrite(p, data if pages > 1 else data[0], metadata=None)
    raw = bytearray(p.read_bytes())
    (ifd,) = struct.unpack("<I", raw[4:8])
    while True:
        pos = _next_ifd_pointer(bytes(raw), ifd)
        (nxt,) = struct.unpack("<I", raw[pos:pos + 4])
        if nxt == 0:
            break
        ifd = nxt
    assert raw[pos - 2:pos] == b"\0\0"
    raw[pos:pos + 4] = struct.pack("<I", pos - 2)
    p.write_bytes(bytes(raw))
    assert_readerror(p, "loops")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("edit, match", [
    ("first_ifd_outside", "outside the file"),
    ("next_ifd_outside", "outside the file"),
    ("many_tags", "declares 60000 tags"),
    ("tags_past_end", "run past the end"),
])
def test_tiff_ifd_bounds_checked_before_decoding(tmp_path, edit, match):
    data = bytearray((TEST_DATA / "em" / "generated_plain.tif").read_bytes())
    (first,) = struct.unpack("<I", data[4:8])
    if edit == "first_ifd_outside":
        data[4:8] = struct.pack("<I", len(data) + 100)
    elif edit == "next_ifd_outside":
        pos = _next_ifd_pointer(bytes(data), first)
        data[pos:pos + 4] = struct.pack("<I", 2**31)
    elif edit == "many_tags":
        data[first:first + 2] = struct.pack("<H", 60000)
    else:
        data[first:first + 2] = struct.pack("<H", (len(data) - first) // 12 + 1)
    p = tmp_path / "bad.tif"
    p.write_bytes(bytes(data))
    assert_readerror(p, match)


# ------------------------------------- issue #19 item 4: truncated headers, sidecars and indexes
def _calibration(images) -> list:
    return [(m.shape, m.signal, m.scan_direction, [(a.size, a.scale, a.offset, a.unit) for a in m.axes])
            for m in images]


CUTS = 24


@pytest.mark.parametrize("fmt", READERS, ids=FORMAT_IDS)
def test_cut_file_or_companion_is_readerror_or_exact(tmp_path, fmt):
    """A file, its index or its sidecar cut short at any of CUTS lengths: either a ReadError naming
    the file, or exactly the calibration of the intact file (never a silently different one)."""
    main = sample_file(fmt, tmp_path)
    try:
        ref = _calibration(registry.read_all(main))
    except ReadError:
        pytest.skip("the sample alone is not readable (e.g. a TIA .emi without its .ser)")
    for victim in sorted(p for p in tmp_path.iterdir() if p.is_file()):
        intact = victim.read_bytes()
        for k in range(1, CUTS):
            victim.write_bytes(intact[: len(intact) * k // CUTS])
            with time_limit(READ_TIMEOUT_S):
                try:
                    got = _calibration(registry.read_all(main))
                except ReadError as exc:
                    assert main.name in str(exc), str(exc)
                    continue
            assert got == ref, f"{victim.name} cut to {len(intact) * k // CUTS} bytes read with another calibration"
        victim.write_bytes(intact)


def _matrix_pair(dest: Path, prefix: str = "gen_full") -> tuple[Path, Path]:
    src = TEST_DATA / "spm"
    data, idx = dest / f"{prefix}--1_1.Z_mtrx", dest / f"{prefix}_0001.mtrx"
    shutil.copyfile(src / data.name, data)
    shutil.copyfile(src / idx.name, idx)
    return data, idx


@pytest.mark.parametrize("keep", [13, 40, 100, 0.5, 0.9, -1])
def test_matrix_truncated_index_is_readerror(tmp_path, keep):
    data, idx = _matrix_pair(tmp_path)
    raw = idx.read_bytes()
    n = keep if isinstance(keep, int) and keep > 0 else (len(raw) - 1 if keep == -1 else int(len(raw) * keep))
    idx.write_bytes(raw[:n])
    assert_readerror(data, "index")


def test_matrix_index_of_another_data_file_is_readerror(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mk", TEST_DATA / "make_spm_testdata.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    data, idx = _matrix_pair(tmp_path)
    idx.write_bytes(mk.mtrx_index_bytes("gen_full--1_2.Z_mtrx", points=8, lines=10, width=2e-9, height=2.5e-9))
    assert_readerror(data, "no entry for this data file")
    # the right entry but a raster smaller than the data: the index does not match the data file
    idx.write_bytes(mk.mtrx_index_bytes(data.name, points=4, lines=5, width=2e-9, height=2.5e-9))
    assert_readerror(data, "more than the .* scan its index")
    idx.write_bytes(mk.mtrx_index_bytes(data.name, points=8, lines=10, width=0.0, height=2.5e-9))
    assert_readerror(data, "impossible scan")


@pytest.mark.shared
def test_matrix_fixture_cut_index_never_gives_a_wrong_pixel_size(tmp_path):
    """Issue #19 item 4: 7 of 10 cut lengths of the real index read with a wrong pixel size."""
    from ..conftest import shared_path

    folder = shared_path("fixtures", "matrix")
    data = tmp_path / "2014Mar01-093225--7_100.Z_mtrx"
    shutil.copyfile(folder / data.name, data)
    index = (folder / "2014Mar01-093225_0001.mtrx").read_bytes()
    outcomes = []
    for k in range(1, 11):
        (tmp_path / "2014Mar01-093225_0001.mtrx").write_bytes(index[: len(index) * k // 10])
        try:
            img = registry.read_all(data)[0]
        except ReadError as exc:
            assert data.name in str(exc)
            outcomes.append("error")
            continue
        assert img.pixel_size == (pytest.approx(1.4e-8 / 300, rel=1e-9),) * 2, f"cut {k}/10"
        outcomes.append("exact")
    assert outcomes[-1] == "exact" and outcomes[:8] == ["error"] * 8  # the entry is at 89 % of the file


@pytest.mark.parametrize("scan_range", ["0.000000E+0           2.000000E-9", "nan nan", "-2.0E-9 2.0E-9"])
def test_sxm_impossible_scan_range_is_readerror(tmp_path, scan_range):
    raw = (TEST_DATA / "spm" / "generated_down.sxm").read_bytes()
    m = re.search(rb":SCAN_RANGE:\n([^\n]*)\n", raw)
    p = tmp_path / "range.sxm"
    p.write_bytes(raw[:m.start(1)] + scan_range.encode() + raw[m.end(1):])
    assert_readerror(p, "SCAN_RANGE")
