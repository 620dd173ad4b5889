"""Tests for engine/tokens.py: reading NCHW, NHWC and token outputs as (C, h, w) maps."""

from __future__ import annotations

import pytest
import timm
import torch
from torchvision.models import VisionTransformer

from engine.errors import InspectorError
from engine.tokens import GridLayout, check_reshape_mode, find_grid, prefix_tokens, same_stride


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((197, 768), (224, 224), GridLayout("tokens", 14, 14, 1)),  # ViT-B/16: class token
        ((198, 192), (224, 224), GridLayout("tokens", 14, 14, 2)),  # DeiT distilled
        ((201, 384), (224, 224), GridLayout("tokens", 14, 14, 5)),  # class + 4 registers
        ((50, 768), (224, 224), GridLayout("tokens", 7, 7, 1)),  # ViT-B/32
        ((196, 768), (224, 224), GridLayout("tokens", 14, 14, 0)),  # average-pooled ViT
        ((201, 192), (160, 320), GridLayout("tokens", 10, 20, 1)),  # not square
        ((118, 192), (150, 210), GridLayout("tokens", 9, 13, 1)),  # not divisible by 16
        ((119, 192), (150, 210), GridLayout("tokens", 9, 13, 2)),
        ((7, 7, 768), (224, 224), GridLayout("nhwc", 7, 7)),  # Swin block
        ((56, 56, 96), (224, 224), GridLayout("nhwc", 56, 56)),
        ((5, 10, 768), (160, 320), GridLayout("nhwc", 5, 10)),
        ((512, 7, 7), (224, 224), GridLayout("nchw", 7, 7)),  # ResNet layer4
        ((512, 5, 7), (150, 210), GridLayout("nchw", 5, 7)),  # padded: rounds up
        ((96, 72, 102), (150, 210), GridLayout("nchw", 72, 102)),  # unpadded: fits no stride
        ((64, 56, 56), (224, 224), GridLayout("nchw", 56, 56)),  # could be NHWC: NCHW first
        ((17, 32), (64, 64), GridLayout("tokens", 4, 4, 1)),
    ],
)
def test_find_grid_auto(shape: tuple, size: tuple, expected: GridLayout) -> None:
    assert find_grid(shape, size) == expected


def test_the_models_prefix_count_is_taken_at_its_word() -> None:
    assert find_grid((18, 8), (64, 64), prefix_hint=2) == GridLayout("tokens", 4, 4, 2)
    assert find_grid((37, 8), (96, 96), prefix_hint=1) == GridLayout("tokens", 6, 6, 1)
    assert find_grid((18, 8), (64, 64), prefix_hint=0) is None
    # Without the model's word a 14x14 grid could be read as 5 prefix tokens + 8x24 on a
    # 100x300 input; with it, the tokens fit no grid there.
    assert find_grid((197, 8), (100, 300)) == GridLayout("tokens", 8, 24, 5)
    assert find_grid((197, 8), (100, 300), prefix_hint=1) is None


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((6,), (224, 224)),  # logits
        ((1000, 768), (224, 224)),  # 1000 tokens: no grid at this aspect ratio
        ((3, 768), (224, 448)),  # a 1x3 "grid" fits a stride, but a side of 1 is no grid
        ((3, 4, 5, 6), (64, 64)),  # 5-D
    ],
)
def test_no_grid(shape: tuple, size: tuple) -> None:
    assert find_grid(shape, size) is None


def test_modes_force_a_reading() -> None:
    assert find_grid((512, 7, 7), (224, 224), "nhwc") == GridLayout("nhwc", 512, 7)
    assert find_grid((7, 7, 768), (224, 224), "none") == GridLayout("nchw", 7, 768)
    assert find_grid((197, 768), (224, 224), "none") is None
    # A model that resizes its input itself: the grid does not follow the profile's size.
    assert find_grid((197, 768), (100, 300), "auto", 1) is None
    assert find_grid((197, 768), (100, 300), "tokens", 1) == GridLayout("tokens", 14, 14, 1)
    assert find_grid((197, 768), (100, 300), "tokens", 2) is None
    assert check_reshape_mode("tokens") == "tokens"
    with pytest.raises(InspectorError, match="unknown reshape 'token'"):
        check_reshape_mode("token")


def test_same_stride() -> None:
    assert same_stride((7, 7), (224, 224))
    assert same_stride((5, 7), (150, 210))  # stride 32, rounded up
    assert same_stride((9, 13), (150, 210))  # stride 16, rounded down
    assert not same_stride((7, 14), (224, 224))  # two different strides
    assert not same_stride((300, 2), (224, 224))


def test_to_nchw_puts_each_patch_in_place() -> None:
    batch, height, width, channels = 2, 3, 5, 4
    maps = torch.arange(batch * channels * height * width, dtype=torch.float32)
    maps = maps.reshape(batch, channels, height, width)
    tokens = maps.flatten(2).transpose(1, 2)  # (B, h*w, C), row-major like a patch embedding
    prefixed = torch.cat([torch.full((batch, 2, channels), -1.0), tokens], dim=1)
    assert torch.equal(GridLayout("tokens", height, width, 2).to_nchw(prefixed), maps)
    nhwc = maps.permute(0, 2, 3, 1)
    assert torch.equal(GridLayout("nhwc", height, width).to_nchw(nhwc), maps)
    assert GridLayout("nchw", height, width).to_nchw(maps) is maps


def test_prefix_tokens_from_the_model() -> None:
    torchvision_vit = VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=1, hidden_dim=8, mlp_dim=8
    )
    assert prefix_tokens(torchvision_vit) == 1
    deit = timm.create_model(
        "deit_tiny_distilled_patch16_224", pretrained=False, img_size=32, depth=1
    )
    assert prefix_tokens(deit) == 2
    registers = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, depth=1, reg_tokens=4
    )
    assert prefix_tokens(registers) == 5
    assert prefix_tokens(torch.nn.Conv2d(3, 4, 3)) is None
