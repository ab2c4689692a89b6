"""Models as files: safetensors + card round trip, registry of installed models, ONNX/TorchScript parity, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scopenet.errors import InputError, ReadError, WriteError
from scopenet.nn import UNet
from scopenet.training.packaging import (example_input, export_onnx, export_parity, export_torchscript,
                                         load_model, read_card, save_model)

torch.set_num_threads(1)


@pytest.fixture
def net():
    torch.manual_seed(0)
    return UNet(depth=2, base_channels=4, residual=True, norm="group").eval()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SCOPENET_WEIGHTS_DIR", str(d))
    return d


def test_save_load_round_trip(tmp_path, net):
    w, c = save_model(tmp_path / "m", net, {"task": "denoise", "metrics": {"psnr": 30.5}, "training_data": "synthetic"})
    assert w.name == "m.safetensors" and c.name == "m.json"
    card = json.loads(c.read_text())
    assert card["architecture"] == {"name": "unet", "config": net.config}
    assert card["task"] == "denoise" and card["metrics"]["values"] == {"psnr": 30.5}  # the ModelCard schema
    assert card["n_parameters"] == sum(p.numel() for p in net.parameters())
    assert {"scopenet_version", "created", "name"} <= card.keys()
    loaded = load_model(tmp_path / "m.safetensors")
    x = torch.randn(2, 1, 20, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert loaded.scopenet_card.metrics.values["psnr"] == 30.5
    assert read_card(tmp_path / "m").task == "denoise"


def test_save_refuses_to_overwrite_and_rejects_bad_cards(tmp_path, net):
    save_model(tmp_path / "m", net, {})
    with pytest.raises(WriteError, match="exists"):
        save_model(tmp_path / "m", net, {})
    save_model(tmp_path / "m", net, {"task": "x"}, overwrite=True)
    assert read_card(tmp_path / "m").task == "x"
    with pytest.raises(InputError):
        save_model(tmp_path / "lin", torch.nn.Linear(2, 2), {})  # no architecture to record
    with pytest.raises(InputError, match="JSON"):
        save_model(tmp_path / "bad", net, {"metrics": {"f": object()}})
    assert not (tmp_path / "bad.safetensors").exists()


def test_load_errors_name_the_file(tmp_path, net):
    with pytest.raises(ReadError, match="no saved model"):
        load_model(tmp_path / "missing")
    save_model(tmp_path / "m", net, {})
    # wrong architecture config: weights do not fit
    card = json.loads((tmp_path / "m.json").read_text())
    card["architecture"]["config"]["base_channels"] = 8
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ReadError, match="do not fit"):
        load_model(tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ReadError, match="JSON"):
        load_model(tmp_path / "m")
    save_model(tmp_path / "t", net, {})
    (tmp_path / "t.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ReadError, match="safetensors"):
        load_model(tmp_path / "t")


def test_installed_models_and_pretrained(cache, net):
    from scopenet.weights import find_model, list_models, pretrained

    assert [m.name for m in list_models() if m.source == "cache"] == []
    save_model(cache / "tiny-denoiser", net, {"task": "denoise", "metrics": {"val_psnr": 28.0}})
    (cache / "orphan.json").write_text("{}")  # no weights: ignored
    models = {m.name: m for m in list_models()}
    assert "tiny-denoiser" in models and "orphan" not in models
    m = models["tiny-denoiser"]
    assert (m.task, m.architecture, m.source) == ("denoise", "unet", "cache")
    assert m.size_bytes == (cache / "tiny-denoiser.safetensors").stat().st_size
    assert find_model("tiny-denoiser") == cache / "tiny-denoiser"
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(pretrained("tiny-denoiser")(x), net(x))
        assert torch.equal(load_model("tiny-denoiser")(x), net(x))  # load_model accepts names too
    with pytest.raises(InputError, match="tiny-denoiser"):
        pretrained("nope")


def test_onnx_export_parity(tmp_path, net):
    x = example_input(net, size=32)
    assert x.shape == (1, 1, 32, 32)
    p = export_onnx(net, tmp_path / "m.onnx", x)
    assert export_parity(net, p, x) < 1e-4
    import onnxruntime as ort

    # the batch axis is dynamic
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    xb = torch.randn(3, 1, 32, 32)
    out = sess.run(None, {"input": xb.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, net(xb).numpy(), atol=1e-4)
    with pytest.raises(WriteError):
        export_onnx(net, p, x)


def test_torchscript_export_parity(tmp_path, net):
    x = example_input(net, size=24)
    p = export_torchscript(net, tmp_path / "m.pt", x)
    assert export_parity(net, p, x) < 1e-5
    loaded = torch.jit.load(str(p))
    xb = torch.randn(2, 1, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded(xb), net(xb))


def test_models_cli_list_and_export(cache, tmp_path, net):
    from scopenet.cli.main import app

    runner = CliRunner()
    save_model(cache / "tiny", net, {"task": "denoise", "metrics": {"val_psnr": 27.5}})
    r = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "tiny (cache)" in r.output and "denoise" in r.output and "27.5  val_psnr" in r.output
    r = runner.invoke(app, ["models", "show", "tiny"])
    assert r.exit_code == 0 and '"name": "unet"' in r.output
    out = tmp_path / "tiny.onnx"
    r = runner.invoke(app, ["models", "export", "tiny", "--format", "onnx", "-o", str(out), "--size", "16"])
    assert r.exit_code == 0, r.output
    assert out.is_file() and "difference" in r.output
    r = runner.invoke(app, ["models", "export", "tiny", "--format", "torchscript", "-o", str(tmp_path / "t.pt")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["models", "export", "tiny", "--format", "tflite", "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and "unknown export format" in r.output
    r = runner.invoke(app, ["models", "export", "absent", "-o", str(tmp_path / "y.onnx")])
    assert r.exit_code == 1 and "no installed model" in r.output
