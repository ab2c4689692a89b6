"""`scopenet bench TASK` dispatches to each benchmark's own argument parser."""
from pathlib import Path

from typer.testing import CliRunner

from scopenet.cli.main import app

REPO = Path(__file__).resolve().parents[2]


def test_unknown_benchmark_names_the_choices():
    res = CliRunner().invoke(app, ["bench", "nope"])
    assert res.exit_code == 2
    assert "unknown benchmark 'nope'" in res.output and "denoise" in res.output


def test_repository_benchmark_runs_from_a_checkout(monkeypatch):
    monkeypatch.chdir(REPO)
    res = CliRunner().invoke(app, ["bench", "alrc", "--help"])
    assert res.exit_code == 0, res.output
    assert "--seeds" in res.output


def test_task_benchmark_options_reach_its_parser():
    res = CliRunner().invoke(app, ["bench", "denoise", "--help"])
    assert res.exit_code == 0, res.output
    assert "--images" in res.output


def test_superres_benchmark_is_dispatched():
    res = CliRunner().invoke(app, ["bench", "superres", "--help"])
    assert res.exit_code == 0, res.output
    assert "--n-sim" in res.output
