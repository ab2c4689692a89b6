"""HyperSpy ``.hspy`` / ``.hdf5`` files keep their axes calibration (they used to read as 1 x 1 px).

The files are written here with h5py in HyperSpy's layout (``/Experiments/<title>/data`` and one
``axis-<i>`` group per array dimension, as RosettaSciIO's hspy writer makes them), and once with
HyperSpy itself when it is installed.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from scopenet.io import find_format, read, read_all, supported_extensions, write


def hspy_file(path: Path, data: np.ndarray, axes: list[dict], title: str = "HAADF",
              quantity: str | None = "Intensity (counts)") -> Path:
    """A minimal HyperSpy 3.x file: ``axes`` in array order (name, scale, offset, units, navigate)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["file_format"] = "HyperSpy"
        f.attrs["file_format_version"] = "3.3"
        g = f.create_group(f"Experiments/{title}")
        g.attrs["package"] = "hyperspy"
        g.attrs["package_version"] = "2.5.0"
        g.create_group("attributes").attrs.update({"_lazy": False, "ragged": False})
        g.create_dataset("data", data=data)
        for i, (ax, n) in enumerate(zip(axes, data.shape)):
            a = g.create_group(f"axis-{i}")
            attrs = {"_type": "UniformDataAxis", "is_binned": False, "navigate": False, "size": n,
                     "offset": 0.0, **ax}
            if "axis" in attrs:  # a non-uniform axis: explicit coordinates
                a.create_dataset("axis", data=np.asarray(attrs.pop("axis")))
                attrs["_type"] = "DataAxis"
            for k, v in attrs.items():
                a.attrs[k] = v
        gen = g.create_group("metadata/General")
        gen.attrs["title"] = title
        sig = g.create_group("metadata/Signal")
        sig.attrs["signal_type"] = ""
        if quantity:
            sig.attrs["quantity"] = quantity
        g.create_group("original_metadata").attrs["Microscope"] = b"Titan\xff"
    return path


YX = [{"name": "y", "scale": 0.5, "offset": 2.0, "units": "nm"},
      {"name": "x", "scale": 0.25, "offset": -1.0, "units": "nm"}]


@pytest.mark.parametrize("name", ["image.hspy", "image.hdf5", "image.h5"])
def test_hspy_image_keeps_calibration(tmp_path, name):
    data = np.arange(48, dtype=np.float32).reshape(6, 8)
    p = hspy_file(tmp_path / name, data, YX)
    img = read(p)
    np.testing.assert_array_equal(img.data, data)
    assert [(a.name, a.size, a.scale, a.offset, a.unit) for a in img.axes] == \
           [("y", 6, 0.5, 2.0, "nm"), ("x", 8, 0.25, -1.0, "nm")]
    assert img.pixel_size == (0.5, 0.25) and img.pixel_unit == "nm"
    assert img.signal == "HAADF" and img.signal_unit == "counts"


def test_hspy_stack_keeps_navigation_axis(tmp_path):
    data = np.arange(3 * 6 * 8, dtype=np.float32).reshape(3, 6, 8)
    axes = [{"name": "defocus", "scale": 5.0, "offset": -5.0, "units": "nm", "navigate": True}] + YX
    img = read(hspy_file(tmp_path / "stack.hspy", data, axes))
    assert img.shape == (3, 6, 8)
    assert (img.axes[0].name, img.axes[0].scale, img.axes[0].offset, img.axes[0].unit) == \
           ("defocus", 5.0, -5.0, "nm")
    assert img.pixel_size == (0.5, 0.25)


def test_hspy_non_uniform_axis_warns_and_reads_uncalibrated(tmp_path):
    axes = [{"name": "y", "axis": [0.0, 1.0, 3.0, 7.0], "units": "nm"}, YX[1]]
    p = hspy_file(tmp_path / "nu.hspy", np.ones((4, 8), np.float32), axes)
    with pytest.warns(UserWarning, match="nu.hspy.*'y' is not uniform"):
        img = read(p)
    assert not img.axes[0].calibrated and img.axes[0].scale == 1.0
    assert img.axes[1].scale == 0.25 and img.axes[1].unit == "nm"


def test_hspy_is_a_read_only_extension(tmp_path):
    assert ".hspy" in supported_extensions() and ".hspy" not in supported_extensions(for_writing=True)
    bad = tmp_path / "noise.hspy"
    bad.write_bytes(b"not hdf5 at all" * 10)
    from scopenet.errors import ReadError

    with pytest.raises(ReadError, match="noise.hspy"):
        read_all(bad)
    assert find_format(tmp_path / "x.hspy").name == "HyperSpy"


def test_hspy_round_trip_through_scopenet_writers(tmp_path):
    p = hspy_file(tmp_path / "i.hspy", np.arange(20, dtype=np.float32).reshape(4, 5), YX)
    img = read(p)
    for ext in (".tif", ".h5", ".npy"):
        back = read(write(img, tmp_path / f"o{ext}"))
        assert back.axes == img.axes


def test_hspy_written_by_hyperspy(tmp_path):
    hs = pytest.importorskip("hyperspy.api")
    s = hs.signals.Signal2D(np.arange(48, dtype=np.float32).reshape(6, 8))
    for ax, (name, scale, offset) in zip(s.axes_manager.signal_axes, (("x", 0.25, 1.0), ("y", 0.5, 0.0))):
        ax.name, ax.scale, ax.offset, ax.units = name, scale, offset, "nm"
    s.metadata.General.title = "HAADF"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.save(tmp_path / "hs.hspy")
    img = read(tmp_path / "hs.hspy")
    assert img.pixel_size == (0.5, 0.25) and img.pixel_unit == "nm"
    assert img.axes[-1].offset == 1.0
    np.testing.assert_array_equal(img.data, s.data)
