"""The shared bench harness (scopenet.tasks._bench): table writer, shared options, JSON, timed loop,
and the rule that a model is compared with the best of all other rows, the unprocessed input included."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.metrics.image import mse, psnr, rms, ssim
from scopenet.tasks._bench import (
    REGISTRY,
    SHARED_OPTIONS,
    BenchSpec,
    Report,
    Table,
    best_of,
    compare_with_best,
    image_scores,
    timed_loop,
)

LONG = ["session_2019-03-14_Si111_7x7_sample_B_scan_000417_forward_topography.sxm",
        "session_2019-03-14_Si111_7x7_sample_B_scan_000417_backward_topography.sxm"]


def test_markdown_writer_is_compact_escapes_pipes_and_keeps_names_whole():
    t = Table(["file", "RMS", "n"], title="t", notes=["- a note"])
    t.add(LONG[0], 0.12345, 3)
    t.add("a|b", float("nan"), np.int64(2))
    md = t.markdown()
    assert md.splitlines()[:4] == ["### t", "", "| file | RMS | n |", "|---|---|---|"]
    assert f"| {LONG[0]} | 0.123 | 3 |" in md  # floats by float_format, never shortened
    assert "| a\\|b | - | 2 |" in md  # a pipe in a cell does not split it; NaN prints as '-'
    assert md.endswith("- a note")


def test_terminal_writer_folds_long_names_instead_of_truncating():
    from rich.console import Console

    t = Table(["file", "RMS"])
    for i, name in enumerate(LONG):
        t.add(name, 0.1 * i)
    buf = io.StringIO()
    Console(file=buf, width=60, color_system=None).print(t.rich(60))
    text = buf.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 60
    # folded: each name is whole when its cell's lines are joined
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.count("│") >= 3)
    for name in LONG:
        assert name in cells


def test_report_prints_markdown_when_piped_and_writes_out_and_json(tmp_path, capsys):
    rep = Report("x", terminal=False)
    rep.line("header")
    rep.data.update({"results": {"a": np.array([1.0, 2.0]), "b": np.float32(0.5), "c": float("inf")}})
    rep.table(Table(["m", "v"], [["a", 1.0]], title="T"))
    out = capsys.readouterr().out
    assert "header" in out and "| m | v |" in out and "| a | 1.000 |" in out
    rep.write(tmp_path / "r.md", tmp_path / "r.json")
    assert (tmp_path / "r.md").read_text() == rep.markdown()
    js = json.loads((tmp_path / "r.json").read_text())
    assert js["bench"] == "x" and js["results"] == {"a": [1.0, 2.0], "b": 0.5, "c": None}
    assert js["tables"] == [{"title": "T", "columns": ["m", "v"], "rows": [["a", "1.000"]], "notes": []}]


def test_shared_options_are_handled_once_by_the_spec(tmp_path):
    import torch

    seen = {}

    def run(a, report):
        seen.update(vars(a))
        report.data["k"] = 1
        report.table(Table(["a"], [[1]]))
        return 0

    spec = BenchSpec("t", "test bench", run, lambda p: p.add_argument("--mine", type=int, default=5), seed=3)
    helptext = spec.parser().format_help()
    for opt in (*SHARED_OPTIONS, "--mine"):
        assert opt in helptext
    n = torch.get_num_threads()
    try:
        rc = spec.main(["--quick", "--images", str(tmp_path), "--threads", "1", "--json", str(tmp_path / "o.json"),
                        "--out", str(tmp_path / "o.md")], report=Report("t", echo=False))
        assert rc == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(n)
    assert seen["quick"] and seen["images"] == tmp_path and seen["seed"] == 3 and seen["mine"] == 5
    assert json.loads((tmp_path / "o.json").read_text())["k"] == 1
    assert "| a |" in (tmp_path / "o.md").read_text()

    def bad(a, report):
        raise InputError("no images")

    assert BenchSpec("t", "", bad).main([], report=Report("t", echo=False)) == 2


def test_timed_loop_times_scores_limits_and_sees_outputs():
    ex = [(np.full((8, 8), float(i)), np.zeros((8, 8))) for i in range(3)]
    seen = []
    res = timed_loop(ex, lambda i, e: {"id": lambda x: x, **({"half": lambda x: x / 2} if i else {})},
                     lambda out, e: {"rms": rms(e[1], out)}, limits={"half": 2},
                     on_output=lambda name, out, e: seen.append(name))
    assert res["id"]["rms"] == [0.0, 1.0, 2.0] and res["half"]["rms"] == [0.5]  # example 1 only: limit 2
    assert len(res["id"]["time"]) == 3 and all(t >= 0 for t in res["id"]["time"])
    assert seen == ["id", "id", "half", "id"]


def test_image_scores_are_the_metrics_modules_per_image_means():
    rng = np.random.default_rng(0)
    t, o = rng.random((3, 32, 32)), rng.random((3, 32, 32))
    s = image_scores(t, o, ("mse", "rms", "psnr", "ssim"))
    assert s["rms"] == pytest.approx(np.mean([rms(a, b) for a, b in zip(t, o)]))
    assert s["psnr"] == pytest.approx(np.mean([psnr(a, b, data_range=1.0) for a, b in zip(t, o)]))
    assert s["ssim"] == pytest.approx(np.mean([ssim(a, b, data_range=1.0) for a, b in zip(t, o)]))
    assert image_scores(t[0], o[0] + 5, ("mse",), clip=(0, 1))["mse"] == pytest.approx(mse(t[0], np.ones((32, 32))))


def test_summary_compares_the_model_with_the_best_of_all_rows_the_input_included():
    # issue 18: at high dose the model beat every filter, but the unfiltered input was 8x better
    mse_high = {"unfiltered": 0.145, "gaussian": 3.119, "wavelet": 2.715, "model:x": 1.165}
    s = compare_with_best("model:x", mse_high, "MSE")
    assert "best other row unfiltered" in s and "worse than unfiltered" in s and "ratio 8.034" in s
    assert "higher" in s and "lower" not in s
    mse_low = {"unfiltered": 2.287, "gaussian": 2.725, "model:x": 1.581}
    s = compare_with_best("model:x", mse_low, "MSE")
    assert "best other row unfiltered" in s and "better than every other row" in s and "30.9% lower" in s
    auc = {"cnn": 0.80, "forest": 0.85, "logreg": 0.7}
    assert "worse than forest" in compare_with_best("cnn", auc, "AUC", lower_is_better=False)
    assert best_of({"a": float("nan"), "b": 2.0, "c": 1.0}, exclude=["c"]) == ("b", 2.0)


def test_denoise_bench_summary_names_the_unfiltered_input_when_it_is_best():
    from scopenet.tasks.denoise.bench import build_tables, run_benchmark

    yy, xx = np.mgrid[:64, :64] / 64
    crops = [(0.5 + 0.4 * np.sin(20 * xx) * np.cos(17 * yy)).astype(np.float32)]
    heavy_blur = {"model:blur": lambda x: np.full_like(x, x.mean())}  # worse than the noisy input at high dose
    res = run_benchmark(crops, heavy_blur, n=2, progress=False)
    assert list(res["high"]) == ["unfiltered", "model:blur"]
    notes = "\n".join(build_tables(res, ["model:blur"]).notes)
    high = [n for n in notes.splitlines() if n.startswith("- high dose")][0]
    assert "vs best other row unfiltered" in high and "worse than unfiltered" in high


def test_denoise_json_keeps_its_keys(tmp_path):
    import tifffile

    from scopenet.tasks.denoise.bench import main

    yy, xx = np.mgrid[:64, :64] / 64
    tifffile.imwrite(tmp_path / "a.tif", ((0.5 + 0.3 * np.sin(9 * xx)) * 1000).astype(np.uint16))
    js = tmp_path / "r.json"
    assert main(["--images", str(tmp_path), "--n", "1", "--model", "none", "--methods", "gaussian",
                 "--json", str(js), "--size", "64"]) == 0
    d = json.loads(js.read_text())
    assert {"desc", "n", "seed", "names", "results"} <= set(d)
    assert set(d["results"]) == {"low", "high"} and set(d["results"]["low"]) == {"unfiltered", "gaussian"}
    assert set(d["results"]["low"]["gaussian"]) == {"mse", "psnr", "ssim", "time"}


def test_one_registry_for_the_cli_and_run_all():
    from scopenet.cli import bench_cmds

    assert bench_cmds.REGISTRY is REGISTRY
    assert {"denoise", "inpaint", "superres", "classify", "simulate", "simulate-spm", "alrc"} <= set(REGISTRY)
    run_all = pytest.importorskip("benchmarks.run_all")
    assert run_all.REGISTRY is REGISTRY


def test_card_field_reads_flat_dict_cards_and_sectioned_model_cards():
    from types import SimpleNamespace

    from pydantic import BaseModel

    from scopenet.tasks._bench import card_field

    class Card(BaseModel):
        name: str
        training: dict = {}
        predict: dict = {}

    assert card_field(SimpleNamespace(card_={"name": "a", "init": [None]}), "init") == [None]
    est = SimpleNamespace(card=Card(name="b", training={"init": ["x"]}, predict={"sampling": "decimate"}))
    assert card_field(est, "name") == "b" and card_field(est, "init") == ["x"]
    assert card_field(est, "sampling") == "decimate" and card_field(est, "nope", 3) == 3


def test_run_all_runs_every_registered_entry_with_its_quick_arguments_and_goes_on_after_a_failure(
        monkeypatch, tmp_path, capsys):
    import sys
    import types

    from scopenet.tasks import _bench

    run_all = pytest.importorskip("benchmarks.run_all")
    seen = {}

    def fake(name, rc):
        mod = types.ModuleType(name)

        def main(argv):
            seen[name] = argv
            if rc == "raise":
                raise RuntimeError("boom")
            return rc
        mod.main = main
        monkeypatch.setitem(sys.modules, name, mod)

    fake("fake_ok", 0)
    fake("fake_bad", "raise")
    reg = run_all.REGISTRY  # the harness's own dict: run_all and load_bench read the same object
    saved = dict(reg)
    try:
        reg.clear()
        reg["bad"] = _bench.BenchEntry("bad", "fake_bad", "fails")
        reg["ok"] = _bench.BenchEntry("ok", "fake_ok", "passes")
        assert run_all.main(["--out", str(tmp_path)]) == 1
    finally:
        reg.clear()
        reg.update(saved)
    assert seen == {"fake_bad": ["--quick", "--out", str(tmp_path / "bad.md")],
                    "fake_ok": ["--quick", "--out", str(tmp_path / "ok.md")]}
    assert "failed: bad" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nope"])


def test_superres_bench_scores_a_user_folder_with_the_metrics_module(tmp_path):
    import tifffile

    from scopenet.tasks.superres import bench

    yy, xx = np.mgrid[:64, :64] / 64
    for i in range(2):
        tifffile.imwrite(tmp_path / f"scan_{i}.tif", (np.sin((9 + i) * xx) * np.cos(7 * yy)).astype(np.float32))
    js = tmp_path / "r.json"
    rep = Report("superres", echo=False)
    assert bench.SPEC.main(["--images", str(tmp_path), "--json", str(js)], report=rep) == 0
    res = json.loads(js.read_text())["results"]["images"]
    assert set(res) == {"4", "2"} and set(res["4"]) == {"nearest", "bilinear", "bicubic", "bicubic+blur", "model"}
    # PSNR is scopenet.metrics.psnr (data range 1) per image, averaged: not recomputed by hand
    (table,) = rep.tables()
    assert any(n.startswith("- crop 1/4 (x4): model RMS") and "best other row" in n for n in table.notes)
    fine = bench.unit(np.stack([tifffile.imread(tmp_path / f"scan_{i}.tif") for i in range(2)]))
    near = np.mean([psnr(f, bench.upsample(bench.coarsen(f, 4, "block_mean"), 4, "nearest", "block_mean"),
                         data_range=1.0) for f in fine])
    assert res["4"]["nearest"]["psnr"] == pytest.approx(near, rel=1e-6)
