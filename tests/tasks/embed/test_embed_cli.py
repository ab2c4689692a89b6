"""``scopenet index / search / map`` through the real command."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

SCOPENET = str(Path(__file__).resolve().parents[3] / ".venv" / "bin" / "scopenet")


def _run(*args, cwd=None):
    return subprocess.run([SCOPENET, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.slow
def test_index_search_map(tmp_path, tiny_model, images):
    d = tmp_path / "coll"
    d.mkdir()
    for i, im in enumerate(images[:4]):
        np.save(d / f"img{i}.npy", im)
    r = _run("index", d, "-m", tiny_model, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "indexed 4 images" in r.stdout and (d / ".scopenet-index" / "index.json").exists()
    np.save(d / "img9.npy", images[5])  # the folder gains a file: the next run adds it only
    r = _run("index", d, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "1 added, 0 changed, 0 removed, 4 unchanged" in r.stdout
    r = _run("search", d / "img2.npy", "-i", d / ".scopenet-index", "--top", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [ln.split() for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("wrote")]
    assert len(lines) == 3 and lines[0][0] == "1" and float(lines[0][1]) == pytest.approx(0, abs=1e-3)
    assert lines[0][2].endswith("img2.npy") and float(lines[1][1]) >= float(lines[0][1])
    assert (tmp_path / "search-img2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = _run("search", d / "img2.npy", "-i", d / ".scopenet-index", cwd=tmp_path)  # sheet exists
    assert r.returncode == 1 and "--overwrite" in r.stderr
    r = _run("search", d / "img2.npy", "-i", d / ".scopenet-index", "--no-sheet", "--modality", "SEM")
    assert r.returncode == 0 and "no images match" in r.stdout
    r = _run("map", d / ".scopenet-index", "-o", tmp_path / "map.html", "--layout", "uniform", "--grid", "3")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "map.html").read_text().count("<circle") == 5
    r = _run("search", d / "img2.npy", "-i", tmp_path / "nothing")
    assert r.returncode == 1 and "not an index store" in r.stderr


def test_parse_length():
    from scopenet.cli.embed_cmds import parse_length
    from scopenet.errors import InputError

    assert parse_length("20nm") == pytest.approx(2e-8)
    assert parse_length("1.5 um") == pytest.approx(1.5e-6)
    assert parse_length("3e-9") == pytest.approx(3e-9)
    assert parse_length(None) is None
    with pytest.raises(InputError):
        parse_length("20 furlongs")


@pytest.mark.slow
def test_usearch_graph_settings_through_the_cli(tmp_path, tiny_model, images):
    pytest.importorskip("usearch")
    import json

    d = tmp_path / "coll"
    d.mkdir()
    for i, im in enumerate(images[:4]):
        np.save(d / f"img{i}.npy", im)
    store = d / ".scopenet-index"
    r = _run("index", d, "-m", tiny_model, "--quiet", "--expansion-search", "100")
    assert r.returncode == 1 and "add --usearch" in r.stderr
    r = _run("index", d, "-m", tiny_model, "--quiet", "--usearch", "--expansion-search", "100")
    assert r.returncode == 0, r.stderr
    assert "expansion_search 100" in r.stdout and (store / "vectors.usearch").exists()
    r = _run("index", d, "--quiet", "--usearch", "--expansion-search", "300")  # the stored default changes
    assert r.returncode == 0 and "HNSW graph set" in r.stdout, r.stdout + r.stderr
    assert json.loads((store / "index.json").read_text())["usearch"]["expansion_search"] == 300
    r = _run("search", d / "img2.npy", "-i", store, "--top", "3", "--no-sheet", "--backend", "usearch",
             "--expansion-search", "50")
    lines = [ln.split() for ln in r.stdout.splitlines()]
    assert r.returncode == 0 and len(lines) == 3, r.stderr
    assert lines[0][2].endswith("img2.npy") and float(lines[0][1]) == pytest.approx(0, abs=1e-3)
    r = _run("search", d / "img2.npy", "-i", store, "--no-sheet", "--backend", "usearch", "--expansion-search", "0")
    assert r.returncode == 1 and "expansion_search must be an integer >= 1" in r.stderr
