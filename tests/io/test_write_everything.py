"""Issue #18: whatever scopenet reads, it can write, through every writer, and read back.

The metadata of real instrument files holds bytes, numpy scalars and arrays, nested tuples... Every
writer stores it through one sanitiser (:mod:`scopenet.io._jsonsafe`); these tests write every
fixture of ``../shared/fixtures`` (skipped when absent) and every generated file of ``tests/data``
as .tif, .h5, .npy and .png and read each back (data equal, calibration kept).
"""
from __future__ import annotations

import datetime as dt
import enum
import json
import math
from pathlib import Path

import numpy as np
import pytest

from scopenet.errors import ReadError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.io import read, read_all, write
from scopenet._jsonsafe import BYTES_MARKER, dumps, jsonable

from ..conftest import FIXTURES, TEST_DATA

#: fixtures that are not images by design (error cases, index files, spectra, unsupported formats).
NOT_IMAGES = {"README.md", "gwy/GwiddionReader_chip.gwy", "matrix/2014Mar01-093225_0001.mtrx",
              "matrix/no_index/2015Mar25-095231--29_3.Z_mtrx", "em/dm/EELS_SI.dm4",
              "spiepy/image_with_defects.dat"}
WRITERS = (".tif", ".h5", ".npy")


def _files(root: Path, skip_py: bool = False) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not (skip_py and p.suffix == ".py"))


FIXTURE_FILES = _files(FIXTURES) or ["<shared fixtures absent>"]
#: instrument-format files generated for the reader tests (other folders of tests/data hold other data).
GENERATED_FILES = [f for f in _files(TEST_DATA, skip_py=True) if f.split("/")[0] in ("em", "spm", "io")]


def _same_image(a: Micrograph, b: Micrograph) -> None:
    np.testing.assert_array_equal(b.data, np.asarray(a.data, dtype=np.float32))
    assert [(x.size, x.scale, x.offset, x.unit) for x in b.axes] == \
           [(x.size, x.scale, x.offset, x.unit) for x in a.axes]
    assert b.pixel_size == a.pixel_size and b.pixel_unit == a.pixel_unit
    assert (b.signal, b.signal_unit, b.scan_direction, b.modality) == \
           (a.signal, a.signal_unit, a.scan_direction, a.modality)
    assert b.metadata == jsonable(a.metadata) or _nan_equal(b.metadata, jsonable(a.metadata))


def _nan_equal(x, y) -> bool:
    return json.dumps(x, sort_keys=True) == json.dumps(y, sort_keys=True)


def _write_all(path: Path, out: Path) -> None:
    images = read_all(path)
    for i, img in enumerate(images):
        for ext in WRITERS:
            p = write(img, out / f"{i}{ext}")
            (back,) = read_all(p)
            _same_image(img, back)
    png = write(images[0], out / "0.png")  # a preview: check that it is a valid picture
    from PIL import Image

    with Image.open(png) as im:
        im.verify()


@pytest.mark.shared
@pytest.mark.parametrize("rel", FIXTURE_FILES)
def test_every_fixture_through_every_writer(tmp_path, rel):
    if not FIXTURES.is_dir():
        pytest.skip(f"needs {FIXTURES} (the shared data folder beside the repo is absent)")
    if rel in NOT_IMAGES:
        with pytest.raises(ReadError):  # documented error cases / not images: nothing to write
            read_all(FIXTURES / rel)
        return
    _write_all(FIXTURES / rel, tmp_path)


@pytest.mark.parametrize("rel", GENERATED_FILES)
def test_every_generated_file_through_every_writer(tmp_path, rel):
    p = TEST_DATA / rel
    if p.suffix == ".mtrx":
        pytest.skip("a MATRIX index file, read with its data file")
    _write_all(p, tmp_path)


# ------------------------------------------------------------------------------- the sanitiser
class Colour(enum.Enum):
    RED = 1


class Opaque:
    def __repr__(self):
        return "<Opaque thing>"


class BrokenRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


NASTY = {
    "bytes_utf8": b"TalosF200X\x00\x00",
    "bytes_binary": b"\xff\xfe\x00\x01",
    "np_bytes": np.bytes_(b"ERIC"),
    "np_bytes_array": np.array([b"a", b"\xff"]),
    "np_str": np.str_("µm"),
    "np_scalars": [np.float32(1.5), np.int64(7), np.uint8(3), np.bool_(True), np.complex64(1 + 2j)],
    "small_array": np.arange(4).reshape(2, 2),
    "big_array": np.zeros(1000),
    "object_array": np.array([b"x", 1, None], dtype=object),
    "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "S3")]),
    "void_scalar": np.zeros(1, dtype=[("a", "<f4"), ("b", "S2")])[0],
    "nested": {"t": (1, (b"k", [np.float64(2.5)])), 3: "int key", b"bk": "bytes key", (1, 2): "tuple key"},
    "surrogates": b"caf\xe9".decode("utf-8", "surrogateescape"),
    "nan": float("nan"), "inf": float("inf"), "ninf": np.float32(-np.inf),
    "when": dt.datetime(2015, 7, 20, 12, 30, tzinfo=dt.timezone.utc), "day": dt.date(2014, 3, 1),
    "np_when": np.datetime64("2019-05-14T20:50:13"), "span": dt.timedelta(seconds=1.5),
    "path": Path("/data/x.dm3"), "set": {3, 1, 2}, "enum": Colour.RED,
    "opaque": Opaque(), "broken": BrokenRepr(), "cls": Opaque, "func": len,
    "complex": 1 - 1j, "big_bytes": b"\xff" * 10_000,
}


def test_jsonable_never_fails_and_is_strict_json_types():
    out = jsonable(NASTY)
    text = json.dumps(out, ensure_ascii=True, allow_nan=True)  # would raise on any non-JSON type
    assert text.isascii()
    assert out["bytes_utf8"] == "TalosF200X"
    assert out["bytes_binary"] == BYTES_MARKER + "//4AAQ=="
    assert out["np_bytes"] == "ERIC" and out["np_bytes_array"] == ["a", BYTES_MARKER + "/w=="]
    assert out["np_str"] == "µm"
    assert out["np_scalars"] == [1.5, 7, 3, True, "(1+2j)"]
    assert out["small_array"] == [[0, 1], [2, 3]] and "shape=(1000,)" in out["big_array"]
    assert out["object_array"] == ["x", 1, None]
    assert out["structured"] == [[0, ""], [0, ""]] and out["void_scalar"] == {"a": 0.0, "b": ""}
    assert out["nested"] == {"t": [1, ["k", [2.5]]], "3": "int key", "bk": "bytes key",
                             "[1, 2]": "tuple key"}
    assert out["surrogates"] == "caf\\xe9"
    assert math.isnan(out["nan"]) and out["inf"] == math.inf and out["ninf"] == -math.inf
    assert out["when"] == "2015-07-20T12:30:00+00:00" and out["day"] == "2014-03-01"
    assert out["np_when"] == "2019-05-14T20:50:13" and out["span"] == 1.5
    assert out["path"] == "/data/x.dm3" and out["set"] == [1, 2, 3] and out["enum"] == 1
    assert out["opaque"] == "<Opaque thing>" and out["broken"] == "<unrepresentable BrokenRepr>"
    assert "Opaque" in out["cls"] and "len" in out["func"]
    assert out["complex"] == "(1-1j)" and out["big_bytes"] == "<10000 bytes>"
    assert json.loads(dumps(NASTY))["np_bytes"] == "ERIC"


def test_jsonable_cycles_and_depth():
    d: dict = {"a": 1}
    d["self"] = d
    out = jsonable(d)
    assert out["self"] == "<reference cycle>"
    deep: list = []
    cur = deep
    for _ in range(200):
        cur.append([])
        cur = cur[0]
    json.dumps(jsonable(deep))


@pytest.mark.parametrize("ext", WRITERS + (".png",))
def test_nasty_metadata_through_every_writer(tmp_path, ext):
    img = Micrograph(np.arange(12, dtype=np.float32).reshape(3, 4),
                     axes=[Axis("y", 3, 0.5, unit="nm"), Axis("x", 4, 0.25, unit="nm")],
                     signal=b"caf\xe9".decode("utf-8", "surrogateescape"), metadata=dict(NASTY))
    p = write(img, tmp_path / f"nasty{ext}")
    if ext == ".png":
        return
    back = read(p)
    np.testing.assert_array_equal(back.data, img.data)
    assert back.pixel_size == (0.5, 0.25) and back.pixel_unit == "nm"
    assert back.signal == "caf\\xe9"
    assert back.metadata["np_bytes"] == "ERIC" and back.metadata["bytes_binary"] == BYTES_MARKER + "//4AAQ=="
    assert math.isnan(back.metadata["nan"]) and back.metadata["inf"] == math.inf
