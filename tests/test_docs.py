"""The documentation site builds in strict mode (``mkdocs build --strict``), as CI builds it through ``make test``.

Strict mode turns every warning into a failure: a broken link or anchor between pages, a page missing from
the navigation, an API reference entry (``::: scopenet...``) that no longer resolves, a model-table marker
for a task without an installed model.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TASKS = ("denoise", "inpaint", "superres", "classify", "atoms", "segment", "track", "exitwave", "embed", "autopilot",
         "adaptive-scan")


def _missing_tools() -> list[str]:
    mods = {"mkdocs": "mkdocs", "material": "mkdocs-material", "mkdocstrings": "mkdocstrings",
            "mkdocstrings_handlers.python": "mkdocstrings-python"}
    missing = []
    for mod, dist in mods.items():
        try:
            found = importlib.util.find_spec(mod) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is absent
            found = False
        if not found:
            missing.append(dist)
    return missing


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    # no --quiet: it silences the warnings that strict mode counts, and the build would pass regardless
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out


def test_site_builds_in_strict_mode(site):
    assert (site / "index.html").is_file()
    for page in ("getting-started", "architecture", *(f"tasks/{t}" for t in TASKS)):
        assert (site / page / "index.html").is_file(), page


def test_architecture_page_describes_the_contracts(site):
    html = (site / "architecture" / "index.html").read_text(encoding="utf-8")
    for word in ("Estimator", "ModelCard", "map_images", "predict_tiled", "BenchSpec", "importlinter"):
        assert word in html, word


def test_task_pages_have_a_figure_and_the_model_table(site):
    from scopenet.weights import list_models

    for task in TASKS:
        html = (site / "tasks" / task / "index.html").read_text(encoding="utf-8")
        assert f"figures/{task}.png" in html
        assert (site / "figures" / f"{task}.png").is_file()
        for m in list_models():
            if m.task == task:
                assert m.name in html, (task, m.name)


def test_api_reference_is_generated_from_docstrings(site):
    html = (site / "reference" / "estimator" / "index.html").read_text(encoding="utf-8")
    assert "history_" in html and "pretrained" in html  # rendered from Estimator's docstrings
    assert ":class:<code>" not in html  # Sphinx roles are shown as code (docs/hooks/scopenet_hooks.py)


def test_committed_figures_are_small():
    figs = sorted((DOCS / "figures").glob("*.png"))
    assert figs, "docs/figures/ is empty: run python docs/make_figures.py"
    for f in figs:
        assert f.stat().st_size < 200_000, f"{f.name} is {f.stat().st_size // 1024} KB (keep figures < 200 KB)"
