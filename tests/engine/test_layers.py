"""Tests for engine/layers.py: the layer inventory and the default CAM layer."""

from __future__ import annotations

import pytest

from engine.errors import InspectorError
from engine.layers import format_inventory, get_module, layer_inventory
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
