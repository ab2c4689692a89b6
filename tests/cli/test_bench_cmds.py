"""`scopenet bench NAME` dispatches to each registered benchmark's own parser; `scopenet bench --help` lists them."""
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from scopenet.cli.main import app
from scopenet.tasks._bench import REGISTRY, SHARED_OPTIONS

REPO = Path(__file__).resolve().parents[2]


def _scopenet() -> list[str]:
    exe = Path(sys.executable).with_name("scopenet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "scopenet.cli.main"]


def _run(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.Popen([*_scopenet(), *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def test_unknown_benchmark_names_the_choices():
    res = CliRunner().invoke(app, ["bench", "nope"])
    assert res.exit_code == 2
    assert "unknown benchmark 'nope'" in res.output and "denoise" in res.output


def test_bench_help_lists_every_benchmark_in_a_real_subprocess():
    p = _run("bench", "--help")
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    for name in REGISTRY:
        assert f"  {name} " in out
    assert "scopenet bench NAME --help" in out


def test_bench_without_a_name_lists_them_and_fails():
    res = CliRunner().invoke(app, ["bench"])
    assert res.exit_code == 2 and "superres" in res.output


def test_every_registered_benchmark_is_reachable_with_the_shared_options():
    # one real `scopenet bench NAME --help` per registered benchmark, from the checkout (repository benches)
    for name in REGISTRY:
        p = _run("bench", name, "--help")
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, f"{name}: {out}"
        assert f"scopenet bench {name}" in out, out
        for opt in SHARED_OPTIONS:
            assert opt in out, f"{name} lacks {opt}"


def test_task_specific_options_reach_its_parser():
    for name, opt in (("denoise", "--max-slow"), ("inpaint", "--fourier"), ("superres", "--n-sim"),
                      ("classify", "--no-cv")):
        res = CliRunner().invoke(app, ["bench", name, "--help"])
        assert res.exit_code == 0, res.output
        assert opt in res.output, name


def test_repository_benchmark_runs_from_a_checkout(monkeypatch):
    monkeypatch.chdir(REPO)
    res = CliRunner().invoke(app, ["bench", "alrc", "--help"])
    assert res.exit_code == 0, res.output
    assert "--seeds" in res.output
