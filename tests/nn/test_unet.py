import numpy as np
import pytest
import torch

from scopenet.errors import InputError
from scopenet.nn import UNet, architecture_names, architecture_of, build_architecture, register_architecture

torch.set_num_threads(1)


@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (1, 1, 27, 41), (1, 1, 5, 9)])
def test_unet_keeps_spatial_shape(shape):
    net = UNet(depth=2, base_channels=4, out_channels=3)
    y = net(torch.randn(shape))
    assert y.shape == (shape[0], 3, *shape[2:])


def test_residual_output_is_identity_when_head_is_zero():
    net = UNet(depth=1, base_channels=4, residual=True, norm="none")
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    x = torch.randn(1, 1, 16, 16)
    assert torch.equal(net(x), x)


def test_unet_is_translation_equivariant_in_interior():
    # a fully convolutional net: shifting by a multiple of 2**depth shifts the output far from the edges
    torch.manual_seed(0)
    net = UNet(depth=2, base_channels=4, norm="none").eval()
    x = torch.randn(1, 1, 64, 64)
    y = net(x)
    y_shift = net(torch.roll(x, shifts=4, dims=-1))
    np.testing.assert_allclose(y_shift[..., 20:44, 24:44].detach(), y[..., 20:44, 20:40].detach(), atol=1e-5)


def test_registry_rebuilds_from_config():
    net = UNet(depth=1, base_channels=4, residual=True, norm="batch")
    arch = architecture_of(net)
    assert arch == {"name": "unet", "config": net.config}
    rebuilt = build_architecture(arch["name"], arch["config"])
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in net.parameters()]
    assert "unet" in architecture_names()


def test_registry_errors():
    with pytest.raises(InputError, match="unknown architecture"):
        build_architecture("nope")
    with pytest.raises(InputError, match="cannot build"):
        build_architecture("unet", {"bogus": 1})
    with pytest.raises(InputError, match="already registered"):
        register_architecture("unet", lambda: None)
    with pytest.raises(InputError):
        UNet(in_channels=1, out_channels=2, residual=True)
    with pytest.raises(InputError):
        UNet(norm="layer")
    with pytest.raises(InputError):
        architecture_of(torch.nn.Linear(2, 2))
