"""Tests for engine/layers.py: the layer inventory and the default CAM layer."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

from engine.errors import InspectorError
from engine.layers import (
    dummy_input,
    format_inventory,
    get_module,
    layer_inventory,
    unknown_layer_message,
)
from engine.tokens import GridLayout
from tests.conftest import make_torchvision


@pytest.mark.parametrize(
    ("arch", "default", "shape"),
    [
        ("resnet18", "layer4", (512, 4, 4)),
        ("densenet121", "features", (1024, 4, 4)),
        ("vgg11", "features", (512, 4, 4)),
        ("mobilenet_v3_large", "features", (960, 4, 4)),
        ("convnext_tiny", "features", (768, 4, 4)),
    ],
)
def test_default_layer_is_last_spatial_block(arch: str, default: str, shape: tuple) -> None:
    model = make_torchvision(arch)
    inventory = layer_inventory(model, (128, 128))
    assert inventory.default_layer == default
    assert inventory.get(default).output_shape == shape
    assert not any(m._forward_hooks for m in model.modules())


def test_inventory_rows() -> None:
    model = make_torchvision("resnet18")
    inventory = layer_inventory(model, (96, 128))
    fc = inventory.get("fc")
    assert (fc.type_name, fc.output_shape, fc.parameters) == ("Linear", (6,), 512 * 6 + 6)
    assert not fc.spatial
    assert inventory.get("layer3.1.conv2").output_shape == (256, 6, 8)
    assert inventory.get("layer3").parameters == sum(p.numel() for p in model.layer3.parameters())
    table = format_inventory(inventory)
    marked = [line.split()[0] for line in table.splitlines() if "<- default" in line]
    assert marked == ["layer4"]


def test_unknown_layer_suggests() -> None:
    model = make_torchvision("resnet18")
    with pytest.raises(InspectorError, match="did you mean"):
        get_module(model, "layer5")
    with pytest.raises(InspectorError):
        layer_inventory(model, (64, 64)).get("nope")


@functools.cache
def _cnn(arch: str) -> nn.Module:
    return make_torchvision(arch)


@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "mobilenet_v3_large", "vgg11"])
@pytest.mark.parametrize("size", [(128, 128), (160, 320), (150, 210), (97, 131)])
def test_conv_outputs_are_read_as_nchw(arch: str, size: tuple[int, int]) -> None:
    # Channel counts such as 64 at 64x64 or 512 next to 5x7 must not pass for NHWC maps.
    inventory = layer_inventory(_cnn(arch), size)
    maps = [i for i in inventory.layers if i.output_shape and len(i.output_shape) == 3]
    assert len(maps) > 10
    assert [i.name for i in maps if i.grid.kind != "nchw"] == []
    assert not [
        i.name
        for i in inventory.layers
        if i.output_shape and len(i.output_shape) == 2 and i.spatial
    ]  # no (N, C) outputs to read as tokens in a CNN


@pytest.mark.parametrize("size", [(128, 128), (160, 320)])
def test_convnext_channels_last_inside_blocks(size: tuple[int, int]) -> None:
    # torchvision's CNBlock permutes to NHWC for its LayerNorm and Linear layers and back.
    inventory = layer_inventory(_cnn("convnext_tiny"), size)
    assert inventory.default_layer == "features"
    for info in inventory.layers:
        if info.output_shape is None or len(info.output_shape) != 3:
            continue
        inside = re.fullmatch(r"features\.\d+\.\d+\.block\.[1-5]", info.name) is not None
        assert info.grid.kind == ("nhwc" if inside else "nchw"), info.name
    stage = inventory.get("features.1.0.block.2")  # LayerNorm at stride 4
    assert (stage.grid.height, stage.grid.width) == (size[0] // 4, size[1] // 4)


def test_token_layers_in_the_table() -> None:
    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    inventory = layer_inventory(vit.eval(), (64, 64))
    ln_1 = inventory.get("encoder.layers.encoder_layer_1.ln_1")
    assert ln_1.output_shape == (17, 32) and ln_1.spatial
    assert ln_1.grid == GridLayout("tokens", 4, 4, 1)
    assert not inventory.get("heads").spatial
    table = format_inventory(inventory).splitlines()
    default = [line for line in table if "<- default" in line]
    assert len(default) == 1 and default[0].split()[0] == "encoder.layers.encoder_layer_1.ln_1"
    assert "17x32 (1+4x4 tokens)" in default[0]


def test_dummy_input_follows_the_layout() -> None:
    cpu = torch.device("cpu")
    assert dummy_input(2, 1, (30, 40), "nchw", cpu).shape == (2, 1, 30, 40)
    assert dummy_input(2, 3, (30, 40), "nhwc", cpu).shape == (2, 30, 40, 3)

    class ChannelsLast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, stride=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x.permute(0, 3, 1, 2)).mean(dim=(2, 3))

    inventory = layer_inventory(ChannelsLast(), (30, 40), layout="nhwc")
    assert inventory.default_layer == "conv"
    assert inventory.get("conv").output_shape == (8, 15, 20)


def test_unknown_layer_suggests_nodes_that_contain_the_name() -> None:
    names = [
        "model/block14_sepconv2_act/Relu",
        "model/block14_sepconv2/separable_conv2d",
        "model/block13_sepconv2_act/Relu",
    ]
    assert unknown_layer_message("block14_sepconv2_act", names) == (
        "the model has no layer 'block14_sepconv2_act'; did you mean "
        "model/block14_sepconv2_act/Relu?"
    )
    assert unknown_layer_message("layer5", ["layer4", "layer3", "fc"]).startswith(
        "the model has no layer 'layer5'; did you mean layer4"
    )
