"""Ede's atrous-xception: the shape of every stage, the ASPP branches, the helpers."""
from __future__ import annotations

import pytest
import torch

from scopenet.errors import InputError
from scopenet.nn import build_architecture
from scopenet.nn.xception import ASPP, AtrousXception, SeparableConv, freeze_batchnorm, l2_penalty


def _expected(size: int) -> dict[str, tuple[int, ...]]:
    s = size
    return {"stem": (1, 64, s // 2, s // 2), "block1": (1, 128, s // 4, s // 4), "block2": (1, 256, s // 8, s // 8),
            "block3": (1, 728, s // 16, s // 16), "middle": (1, 728, s // 16, s // 16),
            "aspp": (1, 256, s // 16, s // 16), "dec1": (1, 256, s // 4, s // 4), "dec2": (1, 128, s // 2, s // 2),
            "dec3": (1, 64, s, s), "out": (1, 1, s, s)}


def test_stage_shapes_small_input():
    net = AtrousXception().eval()
    with torch.no_grad():
        st = net.stages(torch.rand(1, 1, 64, 64))
    assert {k: tuple(v.shape) for k, v in st.items()} == _expected(64)


@pytest.mark.slow
def test_stage_shapes_512_as_in_the_paper():
    """512x512 -> 32x32x728 after the middle flow, 32x32x256 after ASPP, back to 512x512."""
    net = AtrousXception().eval()
    with torch.no_grad():
        st = net.stages(torch.rand(1, 1, 512, 512))
    assert {k: tuple(v.shape) for k, v in st.items()} == _expected(512)


def test_architecture_facts():
    net = AtrousXception()
    assert len(net.middle) == 11
    assert [b[0].dilation for b in net.aspp.branches[1:]] == [(6, 6), (12, 12), (18, 18)]
    assert net.aspp.branches[0][0].kernel_size == (1, 1)
    assert net.aspp.project[0].in_channels == 5 * 256 and net.aspp.project[0].out_channels == 256
    acts = {type(m).__name__ for m in net.modules()}
    assert "ReLU6" in acts and "ReLU" not in acts and "BatchNorm2d" in acts
    # depthwise separable: the depthwise conv has one group per channel
    sep = next(m for m in net.modules() if isinstance(m, SeparableConv))
    assert sep[0].groups == sep[0].in_channels
    assert isinstance(build_architecture("atrous-xception", {"middle_blocks": 2}), AtrousXception)


def test_aspp_image_level_branch_is_spatially_constant():
    aspp = ASPP(16, 8, (1, 2, 3)).eval()
    x = torch.rand(1, 16, 8, 8)
    with torch.no_grad():
        g = aspp.image_pool(x.mean(dim=(2, 3), keepdim=True))
    assert g.shape == (1, 8, 1, 1)
    with torch.no_grad():
        assert aspp(x).shape == (1, 8, 8, 8)


def test_helpers_and_errors():
    net = AtrousXception(middle_blocks=1)
    sq = sum((p ** 2).sum() for p in net.parameters())
    assert float(l2_penalty(net, 5e-5).detach()) == pytest.approx(5e-5 * float(torch.sqrt(sq).detach()), rel=1e-5)
    freeze_batchnorm(net)
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not bn.training and not bn.weight.requires_grad
    with pytest.raises(InputError):
        net(torch.rand(1, 1, 50, 64))
