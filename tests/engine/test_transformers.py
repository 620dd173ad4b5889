"""Vision transformers in engine/cam.py and engine/layers.py: ViT, DeiT and Swin, torchvision and
timm, against pytorch-grad-cam with the reshape_transform its documentation shows."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from pytorch_grad_cam import (
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from torch import nn
from torchvision.models import SwinTransformer, VisionTransformer

from engine.cam import CamEngine
from engine.errors import InspectorError
from engine.layers import layer_inventory
from engine.tokens import GridLayout
from tests.conftest import engine_records

MEAN = STD = (0.5, 0.5, 0.5)
CLASSES = [f"c{i}" for i in range(4)]
REFERENCES = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
}
Reshape = Callable[[torch.Tensor], torch.Tensor]


def vit_reshape(height: int, width: int, prefix: int) -> Reshape:
    """pytorch-grad-cam's vit_example.py transform, with the model's prefix count and grid."""

    def reshape_transform(tensor: torch.Tensor) -> torch.Tensor:
        result = tensor[:, prefix:, :].reshape(tensor.size(0), height, width, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    return reshape_transform


def swin_reshape(height: int, width: int) -> Reshape:
    """pytorch-grad-cam's swinT_example.py transform; Swin blocks here are already NHWC."""

    def reshape_transform(tensor: torch.Tensor) -> torch.Tensor:
        result = tensor.reshape(tensor.size(0), height, width, tensor.size(-1))
        return result.transpose(2, 3).transpose(1, 2)

    return reshape_transform


def _torchvision_vit(layers: int = 2, size: int = 64) -> nn.Module:
    model = VisionTransformer(
        image_size=size,
        patch_size=16,
        num_layers=layers,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
        num_classes=4,
    )
    # torchvision starts the head at zero: every gradient, and every map, would be zero.
    nn.init.normal_(model.heads.head.weight, std=0.5)
    return model


def _torchvision_swin(depths: tuple[int, ...] = (2, 2, 2, 2)) -> nn.Module:
    return SwinTransformer(
        patch_size=[4, 4],
        embed_dim=24,
        depths=list(depths),
        num_heads=[1, 2, 2, 4],
        window_size=[4, 4],
        num_classes=4,
    )


def _timm(name: str, **kwargs: object) -> nn.Module:
    return timm.create_model(name, pretrained=False, num_classes=4, **kwargs)


# name: (builder, input size, default layer, reference reshape)
MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, int], str, Reshape]] = {
    "torchvision_vit": (
        _torchvision_vit,
        (64, 64),
        "encoder.layers.encoder_layer_1.ln_1",
        vit_reshape(4, 4, 1),
    ),
    "torchvision_swin": (_torchvision_swin, (128, 128), "features.7.1.norm1", swin_reshape(4, 4)),
    "timm_vit": (
        lambda: _timm("vit_tiny_patch16_224", img_size=64, depth=2),
        (64, 64),
        "blocks.1.norm1",
        vit_reshape(4, 4, 1),
    ),
    "timm_deit_distilled": (
        lambda: _timm("deit_tiny_distilled_patch16_224", img_size=64, depth=2),
        (64, 64),
        "blocks.1.norm1",
        vit_reshape(4, 4, 2),
    ),
    "timm_swin": (
        lambda: _timm(
            "swin_tiny_patch4_window7_224",
            img_size=128,
            window_size=4,
            embed_dim=24,
            depths=(2, 2, 2, 2),
            num_heads=(1, 2, 2, 4),
        ),
        (128, 128),
        "layers.3.blocks.1.norm1",
        swin_reshape(4, 4),
    ),
    # Not square, not a multiple of 16, four register tokens after the class token.
    "timm_vit_registers_150x210": (
        lambda: _timm("vit_tiny_patch16_224", img_size=(150, 210), depth=2, reg_tokens=4),
        (150, 210),
        "blocks.1.norm1",
        vit_reshape(9, 13, 5),
    ),
    "timm_vit_160x320": (
        lambda: _timm("vit_tiny_patch16_224", img_size=(160, 320), depth=2),
        (160, 320),
        "blocks.1.norm1",
        vit_reshape(10, 20, 1),
    ),
}


@pytest.fixture(scope="module", params=list(MODELS))
def case(request: pytest.FixtureRequest) -> tuple[CamEngine, str, Reshape]:
    _, _, default, reshape = MODELS[request.param]
    return _engine(request.param), default, reshape


@functools.cache  # building a Swin takes a second or two: once per module
def _engine(name: str) -> CamEngine:
    build, size, _, _ = MODELS[name]
    torch.manual_seed(0)
    return CamEngine(build().eval(), CLASSES, *engine_records(size, MEAN, STD), "cpu")


def _images(size: tuple[int, int], count: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


def _hooks_left(model: nn.Module) -> list[str]:
    return [
        name
        for name, m in model.named_modules()
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
    ]


def test_default_layer_is_last_blocks_first_norm(case: tuple) -> None:
    engine, default, _ = case
    inventory = engine.inventory
    assert inventory.default_layer == default
    assert engine.default_layer == default
    assert inventory.get(default).spatial
    assert not _hooks_left(engine.model)


def test_gradcam_equals_pytorch_grad_cam(case: tuple) -> None:
    engine, default, reshape = case
    images = _images(engine.size)
    ours = engine.explain(images, "gradcam")
    layer = dict(engine.model.named_modules())[default]
    with GradCAM(engine.model, [layer], reshape_transform=reshape) as reference:
        expected = reference(input_tensor=engine.prepare(images), targets=None)
    for result, ref in zip(ours, expected, strict=True):
        assert result.cam.shape == ref.shape == engine.size
        assert result.raw.std() > 0  # a real map, not a flat one that equals anything
        np.testing.assert_allclose(result.cam, ref, atol=1e-3)
    assert not _hooks_left(engine.model)


@pytest.mark.parametrize("name", ["timm_vit", "torchvision_swin"])
@pytest.mark.parametrize("method", list(REFERENCES))
def test_every_method_equals_pytorch_grad_cam(name: str, method: str) -> None:
    _, size, default, reshape = MODELS[name]
    engine = _engine(name)
    images = _images(size, seed=1)
    ours = engine.explain(images, method)
    layer = dict(engine.model.named_modules())[default]
    with REFERENCES[method](engine.model, [layer], reshape_transform=reshape) as reference:
        expected = reference(input_tensor=engine.prepare(images), targets=None)
    for result, ref in zip(ours, expected, strict=True):
        np.testing.assert_allclose(result.cam, ref, atol=1e-3)


def test_scorecam_on_tokens_equals_pytorch_grad_cam() -> None:
    torch.manual_seed(0)
    model = _timm("vit_tiny_patch16_224", img_size=64, depth=1, embed_dim=24, num_heads=2)
    engine = CamEngine(model.eval(), CLASSES, *engine_records((64, 64), MEAN, STD), "cpu")
    images = _images((64, 64), count=1)
    ours = engine.explain(images, "scorecam")
    layer = model.blocks[0].norm1
    with ScoreCAM(model, [layer], reshape_transform=vit_reshape(4, 4, 1)) as reference:
        expected = reference(input_tensor=engine.prepare(images), targets=None)
    np.testing.assert_allclose(ours[0].cam, expected[0], atol=1e-3)


def test_capture_redraws_token_layers_without_a_pass(case: tuple) -> None:
    engine, default, _ = case
    images = _images(engine.size, count=1, seed=2)
    capture = engine.capture(images)[0]
    stored = capture.layers[default]
    assert stored.activation.ndim == 3 and stored.activation.shape == stored.gradient.shape
    redrawn = engine.cam_from_capture(capture, "gradcam++")
    direct = engine.explain(images, "gradcam++")[0]
    np.testing.assert_allclose(redrawn.cam, direct.cam, atol=1e-6)


def test_full_size_default_layer_names() -> None:
    """vit_b_16 / swin_t / timm ViT-B and Swin-T have 12 layers and depths (2, 2, 6, 2): the
    same trees with narrow layers give the same default names, in a fraction of the time."""
    cases = [
        (
            VisionTransformer(
                image_size=32,
                patch_size=16,
                num_layers=12,
                num_heads=1,
                hidden_dim=8,
                mlp_dim=8,
            ),
            (32, 32),
            "encoder.layers.encoder_layer_11.ln_1",
        ),
        (
            SwinTransformer(
                patch_size=[4, 4],
                embed_dim=8,
                depths=[2, 2, 6, 2],
                num_heads=[1, 1, 1, 1],
                window_size=[4, 4],
            ),
            (64, 64),
            "features.7.1.norm1",
        ),
        (
            _timm("vit_tiny_patch16_224", img_size=32, embed_dim=8, num_heads=1),
            (32, 32),
            "blocks.11.norm1",
        ),
        (
            _timm(
                "swin_tiny_patch4_window7_224",
                img_size=64,
                window_size=4,
                embed_dim=8,
                num_heads=(1, 1, 1, 1),
            ),
            (64, 64),
            "layers.3.blocks.1.norm1",
        ),
    ]
    for model, size, expected in cases:
        assert layer_inventory(model.eval(), size).default_layer == expected


def test_token_and_nhwc_layers_are_spatial_in_the_inventory() -> None:
    build, size, _, _ = MODELS["timm_swin"]
    torch.manual_seed(0)
    inventory = layer_inventory(build().eval(), size)
    norm1 = inventory.get("layers.0.blocks.0.norm1")  # (B, 32, 32, 24)
    assert (norm1.grid.kind, norm1.grid.height, norm1.grid.width) == ("nhwc", 32, 32)
    norm2 = inventory.get("layers.0.blocks.0.norm2")  # (B, 1024, 24) inside the block
    assert (norm2.grid.kind, norm2.grid.prefix, norm2.grid.cells) == ("tokens", 0, 1024)
    # Window attention folds 8x8 windows into the batch: not one image's map.
    attention = inventory.get("layers.0.blocks.0.attn")
    assert attention.grid is None and not attention.spatial
    assert not inventory.get("head.fc").spatial


def test_window_attention_layer_is_refused() -> None:
    build, size, _, _ = MODELS["timm_swin"]
    torch.manual_seed(0)
    engine = CamEngine(build().eval(), CLASSES, *engine_records(size, MEAN, STD), "cpu")
    with pytest.raises(InspectorError, match="folds windows"):
        engine.explain(_images(size, count=1), "gradcam", "layers.0.blocks.0.attn")
    assert not _hooks_left(engine.model)


class ResizingVit(nn.Module):
    """A ViT behind its own resize: the profile's input size is not the patch grid's."""

    def __init__(self) -> None:
        super().__init__()
        self.vit = _torchvision_vit()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False))


def test_reshape_override() -> None:
    _, size, default, _ = MODELS["torchvision_vit"]
    torch.manual_seed(0)
    model = _torchvision_vit().eval()
    classes = [f"c{i}" for i in range(4)]
    plain = CamEngine(model, classes, *engine_records(size, MEAN, STD, reshape="none"), "cpu")
    assert not plain.inventory.get(default).spatial
    assert plain.inventory.default_layer == "conv_proj"  # the patch embedding, a real NCHW map
    with pytest.raises(InspectorError, match='reshape = "none" takes only'):
        plain.explain(_images(size, count=1), "gradcam", default)
    assert not _hooks_left(model)
    with pytest.raises(InspectorError, match="unknown reshape 'token'"):
        CamEngine(model, classes, *engine_records(size, MEAN, STD, reshape="token"), "cpu")


def test_tokens_override_reads_a_grid_the_input_size_does_not_tell() -> None:
    torch.manual_seed(0)
    model = ResizingVit().eval()
    classes = [f"c{i}" for i in range(4)]
    layer = "vit." + MODELS["torchvision_vit"][2]
    image = _images((120, 200), count=1)
    auto = CamEngine(model, classes, *engine_records((120, 200), MEAN, STD), "cpu")
    with pytest.raises(InspectorError, match=r"17 tokens .* set reshape = \"tokens\""):
        auto.explain(image, "gradcam", layer)
    records = engine_records((120, 200), MEAN, STD, reshape="tokens")
    forced = CamEngine(model, classes, *records, "cpu")
    assert forced.inventory.get(layer).grid == GridLayout("tokens", 4, 4, 1)
    result = forced.explain(image, "gradcam", layer)[0]
    assert result.raw.shape == (4, 4) and result.cam.shape == (120, 200)
    assert not _hooks_left(model)


def _brightness_vit(size: tuple[int, int]) -> nn.Module:
    """A ViT whose class 0 logit is the mean brightness of its patches (no blocks, mean pool):
    its Grad-CAM at the patch embedding is the brightness of each patch."""
    model = _timm(
        "vit_tiny_patch16_224",
        img_size=size,
        depth=0,
        class_token=False,
        global_pool="avg",
        fc_norm=False,
        final_norm=False,
        embed_dim=8,
        num_heads=1,
    )
    with torch.no_grad():
        model.patch_embed.proj.weight.fill_(1.0 / model.patch_embed.proj.weight[0].numel())
        model.patch_embed.proj.bias.zero_()
        model.pos_embed.zero_()
        model.head.weight.zero_()
        model.head.weight[0] = 1.0
        model.head.bias.zero_()
    return model.eval()


@pytest.mark.parametrize("size", [(160, 320), (150, 210)])
def test_token_map_peaks_where_the_signal_is(size: tuple[int, int]) -> None:
    # A transposed grid would put the peak at the mirrored patch: this catches h/w mix-ups.
    records = engine_records(size, (0, 0, 0), (1, 1, 1))
    engine = CamEngine(_brightness_vit(size), ["bright", "b", "c", "d"], *records, "cpu")
    image = np.zeros((300, 420), dtype=np.uint8)  # not the model's size either
    image[200:260, 40:100] = 255
    result = engine.explain([image], "gradcam", "patch_embed", target="bright")[0]
    assert result.cam.shape == (300, 420)
    y, x = np.unravel_index(np.argmax(result.cam), result.cam.shape)
    assert 200 <= y < 260 and 40 <= x < 100
    assert result.cam[:120, 200:].max() < 0.05
