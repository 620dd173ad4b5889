"""Tests for engine/backends/hf_backend.py: save_pretrained folders opened offline, maps equal to
pytorch-grad-cam on the original transformers model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from torch import nn

from engine.cam import CamEngine, crop_box, normalize_maps, upsample_map
from engine.checkpoint import load_model
from engine.cli import run
from engine.errors import InspectorError
from engine.profile import load_profile, parse_profile
from tests.engine.backends.common import csv_rows, export

transformers = pytest.importorskip("transformers")

LABELS = {0: "scratch", 1: "dent", 2: "clean"}
HALF = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
HALF_PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def _vit() -> nn.Module:
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        id2label=LABELS,
    )
    return transformers.ViTForImageClassification(config)


def _convnext() -> nn.Module:
    config = transformers.ConvNextConfig(
        num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], id2label=LABELS
    )
    return transformers.ConvNextForImageClassification(config)


def _resnet() -> nn.Module:
    config = transformers.ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        layer_type="basic",
        id2label=LABELS,
    )
    return transformers.ResNetForImageClassification(config)


def _swin() -> nn.Module:
    config = transformers.SwinConfig(
        image_size=32,
        patch_size=4,
        embed_dim=8,
        depths=[1, 1],
        num_heads=[1, 2],
        window_size=4,
        id2label=LABELS,
    )
    return transformers.SwinForImageClassification(config)


def _vit_reshape(tensor: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's vit_example.py transform: drop the class token, 4x4 patches."""
    grid = tensor[:, 1:, :].reshape(tensor.size(0), 4, 4, tensor.size(2))
    return grid.permute(0, 3, 1, 2)


def _swin_reshape(tensor: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's swinT_example.py transform: 4x4 tokens, no class token."""
    return tensor.reshape(tensor.size(0), 4, 4, tensor.size(2)).permute(0, 3, 1, 2)


Reshape = Callable[[torch.Tensor], torch.Tensor] | None
# name: (builder, processor config, default layer in the transformers model, reshape, size)
MODELS: dict[str, tuple[Callable[[], nn.Module], dict, str, Reshape, tuple[int, int]]] = {
    "vit": (
        _vit,
        {"size": {"height": 32, "width": 32}, **HALF},
        "vit.layers.1.layernorm_before",
        _vit_reshape,
        (32, 32),
    ),
    "convnext": (
        _convnext,
        {"size": {"shortest_edge": 64}, "crop_pct": 0.875, "do_resize": True},
        "convnext.encoder.stages.1",
        None,
        (64, 64),
    ),
    "resnet": (
        _resnet,
        {"size": {"height": 64, "width": 64}, "do_resize": True},
        "resnet.encoder.stages.1",
        None,
        (64, 64),
    ),
    "swin": (
        _swin,
        {"size": {"height": 32, "width": 32}, **HALF},
        "swin.encoder.layers.1.blocks.0.layernorm_before",
        _swin_reshape,
        (32, 32),
    ),
}


def save_folder(folder: Path, model: nn.Module, processor: dict | None) -> Path:
    model.save_pretrained(folder)
    if processor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(processor), encoding="utf-8")
    return folder


@pytest.fixture(scope="module", params=list(MODELS))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    build, processor, layer, reshape, size = MODELS[request.param]
    torch.manual_seed(0)
    model = build().eval()
    folder = save_folder(tmp_path_factory.mktemp(request.param), model, processor)
    return model, folder, layer, reshape, size


def _pictures(size: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (size[0] + 9, size[1], 3), dtype=np.uint8) for _ in range(2)]


class _Logits(nn.Module):
    """pytorch-grad-cam's HuggingfaceToTensorModelWrapper."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def test_folder_opens_with_its_classes_size_and_default_layer(case: tuple) -> None:
    _, folder, layer, _, size = case
    profile = load_profile(folder)
    assert profile.architecture == "hf" and profile.weights == folder.resolve()
    assert profile.classes == ("scratch", "dent", "clean")
    assert profile.preprocess.size == size
    engine = CamEngine.from_profile(profile, "cpu")
    assert engine.default_layer == "model." + layer
    capture = engine.capture(_pictures(size))[0]
    assert np.abs(capture.layers["model." + layer].gradient).max() > 0


def test_gradcam_equals_pytorch_grad_cam(case: tuple) -> None:
    model, folder, layer, reshape, size = case
    engine = CamEngine.from_profile(load_profile(folder), "cpu")
    pictures = _pictures(size)
    ours = engine.explain(pictures)
    module = dict(model.named_modules())[layer]
    with GradCAM(_Logits(model), [module], reshape_transform=reshape) as reference:
        expected = reference(input_tensor=engine.prepare(pictures), targets=None)
    for result, ref, picture in zip(ours, expected, pictures, strict=True):
        assert result.raw.std() > 0
        norm = normalize_maps(torch.from_numpy(result.raw)[None])[0].numpy()
        np.testing.assert_allclose(upsample_map(norm, size), ref, atol=1e-3)
        # The map lies on the part of the picture the model saw, zero elsewhere.
        top, left, height, width = crop_box(picture.shape[:2], engine.preprocess)
        inside = result.cam[top : top + height, left : left + width]
        np.testing.assert_allclose(inside, upsample_map(norm, (height, width)), atol=1e-6)
        assert result.cam.sum() == pytest.approx(inside.sum())


def test_shortest_edge_and_crop_pct_crop_the_centre(tmp_path: Path) -> None:
    _, processor, _, _, _ = MODELS["convnext"]
    torch.manual_seed(0)
    folder = save_folder(tmp_path / "cnx", _convnext(), processor)
    profile = load_profile(folder)
    assert (profile.preprocess.resize, profile.preprocess.crop) == ("shortest", 0.875)
    # 100x200 -> shortest edge 64 / 0.875 = 73.1 -> 73x146 -> its central 64x64 is 88x88 here.
    assert crop_box((100, 200), profile.preprocess) == (6, 56, 88, 88)
    engine = CamEngine.from_profile(profile, "cpu")
    assert engine.load_info.notes[-1] == (
        "each image is resized by its shortest edge and centre-cropped to 64x64 (crop 0.875), "
        "as the model's processor does: maps cover that central region"
    )


def test_processor_rescale_and_normalize_become_mean_and_std(tmp_path: Path) -> None:
    torch.manual_seed(0)
    raw = {"size": {"height": 32, "width": 32}, "do_rescale": False, "do_normalize": False}
    profile = load_profile(save_folder(tmp_path / "raw", _vit(), raw))
    # The model takes 0-255 pixels: the engine's [0, 1] pixels divided by 1/255.
    assert profile.preprocess.mean == (0.0, 0.0, 0.0)
    assert profile.preprocess.std == pytest.approx((1 / 255,) * 3)


def test_no_processor_config_uses_the_config_image_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = save_folder(tmp_path / "bare", _vit(), None)
    profile = load_profile(folder)
    assert profile.preprocess.size == (32, 32)
    notes = load_model(profile).notes
    assert "no preprocessor_config.json: size from config.json, mean and std the profile's" in (
        notes
    )


def test_profile_values_win_over_the_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = save_folder(tmp_path / "vit", _vit(), MODELS["vit"][1])
    data = {"architecture": "hf", "weights": "vit", "classes": ["a", "b", "c"]}
    profile = parse_profile(data | {"preprocess": {"std": [0.2, 0.2, 0.2]}}, tmp_path, None)
    assert profile.classes == ("a", "b", "c")
    assert profile.preprocess.std == (0.2, 0.2, 0.2) and profile.preprocess.mean == (0.5,) * 3
    with pytest.raises(InspectorError, match="the model's config has 3 classes, profile"):
        load_model(parse_profile(data | {"classes": ["a", "b"]}, tmp_path, None))
    assert folder.is_dir()


def test_a_folder_as_weights_of_another_architecture_says_hf(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = save_folder(tmp_path / "vit", _vit(), None)
    with pytest.raises(InspectorError) as info:
        load_model(parse_profile({"architecture": "resnet18", "weights": "vit"}, tmp_path, None))
    assert str(info.value) == (
        "'vit' is a Hugging Face save_pretrained folder: set architecture = \"hf\", or open "
        "the folder itself as the profile"
    )
    assert folder.is_dir()


def test_missing_transformers_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    folder = save_folder(tmp_path / "vit", _vit(), None)
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    with pytest.raises(InspectorError) as info:
        load_model(load_profile(folder))
    assert str(info.value) == (
        "architecture 'hf' needs the transformers package, which is not installed: "
        "pip install 'gradcam-inspector[hf]'"
    )


def test_cli_batch_on_a_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = save_folder(tmp_path / "vit", _vit(), MODELS["vit"][1])
    images = tmp_path / "images"
    images.mkdir()
    import cv2

    for i, picture in enumerate(_pictures((32, 32))):
        cv2.imwrite(str(images / f"{i}.png"), picture)
    args = ["batch", "--profile", str(folder), "--input", str(images)]
    assert run([*args, "--output", str(tmp_path / "out"), "--device", "cpu"]) == 0
    rows = csv_rows(tmp_path / "out" / "results.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert {r["predicted"] for r in rows} <= set(LABELS.values())


@pytest.mark.parametrize("opset", [17, 20])
def test_onnx_export_of_a_vit_gets_a_layer_with_a_gradient(tmp_path: Path, opset: int) -> None:
    """The legacy exporter's ViT: its final LayerNorm, the last map-shaped node, feeds the head
    through the class token only; the probe picks the last block's first norm instead."""
    pytest.importorskip("onnx2torch")
    torch.manual_seed(0)
    model = _vit().eval()
    folder = save_folder(tmp_path / "vit", model, MODELS["vit"][1])
    path = export(_Logits(model), tmp_path / "vit.onnx", (1, 3, 32, 32), opset_version=opset)
    data = {"architecture": "onnx", "weights": str(path), "preprocess": HALF_PREPROCESS}
    engine = CamEngine.from_profile(parse_profile(data, tmp_path, None), "cpu")
    assert engine.size == (32, 32)
    assert engine.default_layer == "model/vit/layers/1/layernorm_before/LayerNormalization"
    final = "model/vit/layernorm/LayerNormalization"
    assert engine.inventory.candidates[-1] == final
    pictures = _pictures((32, 32))
    reference = CamEngine.from_profile(load_profile(folder), "cpu").explain(pictures)
    for ours, theirs in zip(engine.explain(pictures), reference, strict=True):
        assert ours.warning == ""
        np.testing.assert_allclose(ours.cam, theirs.cam, atol=1e-3)
    flat = engine.explain(pictures[:1], layer=final)[0]
    assert flat.warning == (
        f"flat map at '{final}' (no positive value); try layer '{engine.default_layer}'"
    )


def test_a_multi_label_folder_gets_sigmoid_probabilities(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _vit()
    model.config.problem_type = "multi_label_classification"
    folder = save_folder(tmp_path / "vit", model.eval(), MODELS["vit"][1])
    engine = CamEngine.from_profile(load_profile(folder), "cpu")
    assert engine.head.kind == "multilabel"
    result = engine.explain(_pictures((32, 32))[:1])[0]
    with torch.no_grad():
        logits = model(engine.prepare(_pictures((32, 32))[:1])).logits[0]
    expected = torch.sigmoid(logits).numpy()
    for prediction in result.top_k:
        assert prediction.probability == pytest.approx(float(expected[prediction.index]), abs=1e-5)


@pytest.mark.parametrize(
    ("processor", "geometry"),
    [
        # ViT, Swin: stretched to the size.
        ({"size": {"height": 384, "width": 384}}, {"size": [384, 384]}),
        # ConvNeXt at 384 and above: no crop (ConvNextImageProcessor).
        ({"size": {"shortest_edge": 384}, "crop_pct": 0.875}, {"size": [384, 384]}),
        # BiT, DINOv2: shortest edge 256, then the 224 centre.
        (
            {"size": {"shortest_edge": 256}, "do_center_crop": True, "crop_size": 224},
            {"size": [224, 224], "resize": "shortest", "crop": 0.875},
        ),
        # DeiT: stretched to 256 x 256, then the 224 x 224 centre.
        (
            {
                "size": {"height": 256, "width": 256},
                "do_center_crop": True,
                "crop_size": {"height": 224, "width": 224},
            },
            {"size": [224, 224], "crop": 0.875},
        ),
    ],
)
def test_processor_geometry(processor: dict, geometry: dict) -> None:
    from engine.backends.hf_backend import processor_preprocess

    table = processor_preprocess(processor)
    assert {k: v for k, v in table.items() if k not in ("mean", "std")} == geometry
    assert table["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_stretch_then_crop_keeps_the_centre() -> None:
    from engine.profile import PreprocessSpec

    spec = PreprocessSpec((224, 224), (0.5,) * 3, (0.5,) * 3, "replicate", crop=0.875)
    # DeiT: the 224 centre of a 256-stretched image is 87.5% of each side of the original.
    assert crop_box((400, 800), spec) == (25, 50, 350, 700)


def test_weights_hash_covers_every_shard(tmp_path: Path) -> None:
    from engine.backends.hf_backend import weights_digest
    from engine.checkpoint import sha256_of

    torch.manual_seed(0)
    model = _vit().eval()
    whole = save_folder(tmp_path / "whole", model, None)
    assert load_model(load_profile(whole)).weights_sha256 == sha256_of(whole / "model.safetensors")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    shards = sorted((tmp_path / "sharded").glob("model-*.safetensors"))
    assert len(shards) > 1
    digest = weights_digest(tmp_path / "sharded")
    assert load_model(load_profile(tmp_path / "sharded")).weights_sha256 == digest
    with shards[-1].open("r+b") as fh:  # one byte of the last shard changed
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 1]))
    assert weights_digest(tmp_path / "sharded") != digest
