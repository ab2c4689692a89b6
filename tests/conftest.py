"""Shared test fixtures: paths to generated test data and to the real files in ../shared."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
SHARED = Path(os.environ.get("SCOPENET_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"


def shared_path(*parts: str) -> Path:
    """Path inside ../shared, or skip the test with a reason when it is not there."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (the shared data folder beside the repo is absent)")
    return p


@pytest.fixture
def fixtures_dir() -> Path:
    return shared_path("fixtures")


@pytest.fixture
def shared_data_dir() -> Path:
    return shared_path("data")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
