"""``scopenet track``: the real command in a subprocess."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scopenet as sn
from scopenet.image.micrograph import Micrograph
from scopenet.simulate.em.movies import simulate_movie

from ...cli._run import scopenet


@pytest.mark.slow
def test_track_cli_writes_tracks_and_msd_and_refuses_to_overwrite(tmp_path):
    m = simulate_movie(n_frames=6, size=96, n_particles=3, step=0.5, drift=(0.5, -0.4), drift_jitter=0.1, seed=3)
    movie = tmp_path / "movie.npy"
    np.save(movie, m.frames)
    out = tmp_path / "tracks.csv"
    r = scopenet("track", movie, "-o", out, "--msd", tmp_path / "msd.csv", "--minmass", "4")
    assert r.returncode == 0, r.output[-2000:]
    df = pd.read_csv(out)
    assert list(df.columns[:6]) == ["frame", "particle", "x", "y", "vx", "vy"]
    assert df.particle.nunique() == 3 and len(df) == 18
    assert "3 tracks" in r.stdout
    md = pd.read_csv(tmp_path / "msd.csv")
    assert md.lag.tolist()[:2] == [1, 2]
    r = scopenet("track", movie, "-o", out)
    assert r.returncode != 0 and "exists" in r.output


@pytest.mark.slow  # two command starts
def test_track_cli_errors(tmp_path):
    sn.write(Micrograph(np.zeros((16, 16), np.float32)), tmp_path / "one.tif")
    r = scopenet("track", tmp_path / "one.tif", "-o", tmp_path / "t.csv")
    assert r.returncode != 0 and "stack" in r.output and "Traceback" not in r.output
    r = scopenet("track", tmp_path / "one.tif", "-o", tmp_path / "t.csv", "--drift", "sideways")
    assert r.returncode != 0 and "--drift" in r.output
