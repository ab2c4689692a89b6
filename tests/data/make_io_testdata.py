"""Write the small files of ``tests/data/io/`` (run ``python tests/data/make_io_testdata.py``).

* ``generated.hspy``: a HyperSpy 3.3 file (6 x 8 float32 image, y/x calibrated 0.5/0.25 nm, offsets
  2.0/-1.0 nm), written with h5py in the layout of RosettaSciIO's hspy writer, so the reader tests
  (and the fuzz tests of ``tests/io/test_bad_input.py``) have a HyperSpy sample without HyperSpy.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "io"


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.io.test_hspy import YX, hspy_file

    OUT.mkdir(exist_ok=True)
    hspy_file(OUT / "generated.hspy", np.arange(48, dtype=np.float32).reshape(6, 8), YX)


if __name__ == "__main__":
    main()
