"""One sanitiser for everything scopenet's writers store as JSON (metadata, provenance).

Instrument readers hand over metadata as the file's library returns it: ``bytes`` (Igor headers,
TIA/EMD attributes), numpy scalars and arrays (``np.bytes_``, structured ``np.void``, object
arrays), ``datetime`` objects, nested tuples, strings holding undecodable bytes, NaN/inf and
arbitrary library objects. :func:`jsonable` turns any of that into plain JSON types, so that every
writer (TIFF, HDF5, NPY sidecar) can always store it; it never raises.

Conversions
-----------
* ``dict``-like -> ``dict`` with ``str`` keys (bytes keys decoded); ``list``/``tuple`` -> ``list``;
  ``set`` -> sorted ``list``;
* ``bytes`` -> the UTF-8 text when it decodes (trailing NUL padding removed), else the marker
  string ``"base64:<data>"`` (:data:`BYTES_MARKER`); more than :data:`MAX_BYTES` bytes become
  ``"<N bytes>"``;
* numpy scalars -> the Python number/bool/str; arrays of at most :data:`MAX_ARRAY` values -> nested
  lists (converted recursively), bigger ones ``"<array shape=... dtype=...>"``;
* ``float`` NaN/inf stay floats (Python's JSON writes ``NaN``/``Infinity`` and reads them back);
  complex -> ``"(1+2j)"``;
* ``datetime``/``date``/``time``/``np.datetime64`` -> ISO 8601 text; ``timedelta`` -> seconds;
* ``str`` with lone surrogates (bytes decoded with ``surrogateescape``) -> the bytes as ``\\x..``;
* ``Path``, ``Enum``, ``UUID``, ``Decimal``... and anything else -> ``str``/``repr`` (cut at
  :data:`MAX_REPR` characters); nesting deeper than :data:`MAX_DEPTH` or a reference cycle ->
  a ``"<...>"`` note.
"""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import enum
import fractions
import json
import uuid
from collections.abc import Mapping
from os import PathLike
from typing import Any

import numpy as np

#: prefix of bytes that are not UTF-8 text, stored base64-encoded.
BYTES_MARKER = "base64:"
#: arrays with more values than this are stored as a short description.
MAX_ARRAY = 64
#: byte strings longer than this are stored as a short description.
MAX_BYTES = 4096
#: object reprs are cut to this many characters.
MAX_REPR = 1000
MAX_DEPTH = 64


def _text(s: str) -> str:
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:  # lone surrogates: undecodable bytes smuggled into a str
        return s.encode("utf-8", "surrogateescape" if _only_escapes(s) else "backslashreplace") \
            .decode("utf-8", "backslashreplace")


def _only_escapes(s: str) -> bool:
    try:
        s.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False


def _bytes(b: bytes) -> str:
    if len(b) > MAX_BYTES:
        return f"<{len(b)} bytes>"
    try:
        return _text(b.rstrip(b"\x00").decode("utf-8"))
    except UnicodeDecodeError:
        return BYTES_MARKER + base64.b64encode(b).decode("ascii")


def _key(k: Any) -> str:
    if isinstance(k, str):
        return _text(k)
    if isinstance(k, (bytes, bytearray, np.bytes_)):
        return _bytes(bytes(k))
    v = jsonable(k)
    return v if isinstance(v, str) else json.dumps(v, allow_nan=True)


def _repr(obj: Any) -> str:
    try:
        r = repr(obj)
    except Exception:  # a broken __repr__ must not stop a write
        r = f"<unrepresentable {type(obj).__name__}>"
    r = _text(r)
    return r if len(r) <= MAX_REPR else r[:MAX_REPR] + "...>"


def jsonable(obj: Any, _depth: int = 0, _seen: frozenset = frozenset()) -> Any:
    """``obj`` made of JSON types only (dict with str keys, list, str, int, float, bool, None).

    Never raises; see the module docstring for the conversions.

    Examples
    --------
    >>> jsonable({"a": np.float32(1.5), b"k": (b"v", b"\\xff"), "t": np.arange(2)})
    {'a': 1.5, 'k': ['v', 'base64:/w=='], 't': [0, 1]}
    """
    if obj is None or type(obj) in (bool, int):
        return obj
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value, _depth + 1, _seen) if _depth <= MAX_DEPTH else _repr(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return _text(str(obj))
    if _depth > MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _bytes(bytes(obj))
    if isinstance(obj, np.generic):
        return _numpy_scalar(obj, _depth, _seen)
    if isinstance(obj, np.ndarray):
        if obj.ndim == 0:
            return jsonable(obj[()], _depth + 1, _seen)
        if obj.size > MAX_ARRAY:
            return f"<array shape={obj.shape} dtype={obj.dtype}>"
        return jsonable(obj.tolist(), _depth + 1, _seen)
    if isinstance(obj, (Mapping, list, tuple, set, frozenset)):
        if id(obj) in _seen:
            return "<reference cycle>"
        seen = _seen | {id(obj)}
        if isinstance(obj, Mapping):
            try:
                items = list(obj.items())
            except Exception:
                return _repr(obj)
            return {_key(k): jsonable(v, _depth + 1, seen) for k, v in items}
        vals = [jsonable(v, _depth + 1, seen) for v in obj]
        if isinstance(obj, (set, frozenset)):
            vals.sort(key=lambda v: json.dumps(v, sort_keys=True, allow_nan=True))
        return vals
    if isinstance(obj, complex):
        return str(obj)
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if isinstance(obj, _dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, (PathLike, uuid.UUID, decimal.Decimal, fractions.Fraction)):
        try:
            return _text(str(obj))
        except Exception:
            return _repr(obj)
    as_dict = getattr(obj, "as_dictionary", None)  # HyperSpy DictionaryTreeBrowser
    if callable(as_dict) and not isinstance(obj, type):
        try:
            return jsonable(as_dict(), _depth + 1, _seen)
        except Exception:
            pass
    return _repr(obj)


def _numpy_scalar(obj: np.generic, depth: int, seen: frozenset) -> Any:
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.complexfloating):
        return str(complex(obj))
    if isinstance(obj, np.str_):
        return _text(str(obj))
    if isinstance(obj, np.bytes_):
        return _bytes(bytes(obj))
    if isinstance(obj, (np.datetime64, np.timedelta64)):
        return str(obj)
    if isinstance(obj, np.void):
        if obj.dtype.names:
            return {_key(n): jsonable(obj[n], depth + 1, seen) for n in obj.dtype.names}
        return _bytes(bytes(obj))
    try:
        return jsonable(obj.item(), depth + 1, seen)
    except Exception:
        return _repr(obj)


def dumps(obj: Any, **kwargs) -> str:
    """``json.dumps(jsonable(obj))``: 7-bit ASCII text that any writer can store; never fails on content."""
    kwargs.setdefault("ensure_ascii", True)
    return json.dumps(jsonable(obj), allow_nan=True, **kwargs)
