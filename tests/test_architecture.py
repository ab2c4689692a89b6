"""The architecture of DESIGN.md holds: import contracts (import-linter) and a light ``import scopenet``.

The contracts live in ``[tool.importlinter]`` of pyproject.toml; run ``lint-imports`` to see them.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _env() -> dict[str, str]:
    """This checkout's sources first on the path, whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return env


def test_import_contracts_hold():
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    exe = Path(sys.executable).with_name("lint-imports.exe" if os.name == "nt" else "lint-imports")
    if not exe.exists():
        pytest.skip(f"import-linter is installed but {exe} is missing")
    proc = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"import contracts broken (lint-imports):\n{proc.stdout}\n{proc.stderr}"


def test_import_scopenet_does_not_import_torch_or_lightning():
    code = ("import sys, scopenet, scopenet.image, scopenet.image.spm, scopenet.image.em, scopenet.io; "
            "print(' '.join(m for m in ('torch', 'lightning', 'pytorch_lightning') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"import scopenet pulled in: {proc.stdout.strip()}"
