"""Tests for engine/backends/onnx_backend.py: .onnx files converted to torch and probed."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from engine.cam import CamEngine
from engine.checkpoint import load_model, sha256_of
from engine.errors import InspectorError
from engine.profile import parse_profile
from tests.conftest import NEU, TinyNet
from tests.engine.backends.common import (
    LEGACY_LAYER4,
    SIZE,
    assert_same_cams,
    csv_rows,
    export,
    profile_for,
    reference_engine,
    run_batch,
    write_profile,
)


@pytest.mark.parametrize("opset", [13, 17])
def test_legacy_export_cam_equals_torch(tmp_path: Path, resnet: nn.Module, opset: int) -> None:
    path = export(resnet, tmp_path / "r18.onnx", (1, 3, *SIZE), dynamo=False, opset_version=opset)
    engine = CamEngine.from_profile(profile_for(path, "onnx", classes=list(NEU)), "cpu")
    assert engine.max_batch is None  # Flatten keeps the batch free, whatever the export fixed
    assert engine.load_info.weights_sha256 == sha256_of(path)
    assert engine.classes == NEU and engine.load_info.notes == ()
    assert engine.default_layer == LEGACY_LAYER4
    assert_same_cams(engine, reference_engine(resnet, "layer4"))


def test_dynamo_export_cam_equals_torch(tmp_path: Path, resnet: nn.Module) -> None:
    pytest.importorskip("onnxscript")
    path = export(resnet, tmp_path / "r18.onnx", (1, 3, *SIZE), dynamo=True, verbose=False)
    profile = profile_for(path, "onnx", classes=list(NEU))
    engine = CamEngine.from_profile(profile, "cpu")
    # Opset 18+ is converted down; its Reshape to [1, 512] runs one image at a time.
    assert engine.max_batch == 1
    converted, batch = engine.load_info.notes[:2]
    assert converted.startswith("converted the ONNX graph from opset ")
    assert converted.endswith(" to 17")
    assert batch == "the ONNX graph runs one image at a time (fixed batch size 1)"
    assert_same_cams(engine, reference_engine(resnet, "layer4"))


def test_onnx_classes_from_the_output(tmp_path: Path, tiny: nn.Module) -> None:
    path = export(tiny, tmp_path / "tiny.onnx", (1, 3, *SIZE))
    loaded = load_model(profile_for(path, "onnx"))
    assert loaded.classes == tuple(f"class_{i}" for i in range(6))
    assert loaded.notes == ("inferred 6 classes from the ONNX output",)
    with pytest.raises(
        InspectorError, match="the ONNX model's output has 6 classes, profile 'onnx' lists 3"
    ):
        load_model(profile_for(path, "onnx", classes=["a", "b", "c"]))


class NhwcNet(nn.Module):
    """A TensorFlow-style model: channels-last input, permuted inside (as tf2onnx exports do)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2))


def test_nhwc_onnx_cam_equals_torch(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = TinyNet(classes=len(NEU)).eval()
    path = export(
        NhwcNet(net),
        tmp_path / "nhwc.onnx",
        (1, *SIZE, 3),
        dynamo=False,
        input_names=["image"],
        dynamic_axes={"image": {0: "batch"}},
    )
    profile = profile_for(path, "onnx", classes=list(NEU))
    profile = dataclasses.replace(
        profile, preprocess=dataclasses.replace(profile.preprocess, layout="nhwc")
    )
    engine = CamEngine.from_profile(profile, "cpu")
    assert engine.max_batch is None
    # The graph's last ReLU is TinyNet's `features` output.
    relus = [n for n, m in engine.model.named_modules() if type(m).__name__ == "ReLU"]
    assert engine.default_layer == relus[-1]
    assert_same_cams(engine, reference_engine(net, "features"))


def test_channels_last_input_suggests_the_layout(tmp_path: Path) -> None:
    path = export(NhwcNet(TinyNet(classes=2)), tmp_path / "tf.onnx", (1, *SIZE, 3))
    with pytest.raises(InspectorError) as info:
        load_model(profile_for(path, "onnx"))
    assert str(info.value).startswith(
        "'tf.onnx' does not run on a 1x3x64x64 input (it declares 1x64x64x3); "
        'set [preprocess] layout = "nhwc": '
    )


def test_unconvertible_op_is_named(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("ThresholdedRelu", ["x"], ["t"], alpha=0.5),
            helper.make_node("GlobalAveragePool", ["t"], ["p"]),
            helper.make_node("Flatten", ["p"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(InspectorError) as info:
        load_model(profile_for(path, "onnx"))
    assert str(info.value) == (
        "'odd.onnx' uses ONNX op ThresholdedRelu (version 10, model opset 13), which onnx2torch "
        "cannot convert to torch; export with an opset from 13 to 17 without that op"
    )


def test_wrong_input_size_names_the_declared_one(tmp_path: Path) -> None:
    torch.manual_seed(2)
    flat = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 16 * 16, 2))
    path = export(flat, tmp_path / "flat.onnx", (1, 3, 16, 16), dynamo=False)
    with pytest.raises(InspectorError) as info:
        load_model(profile_for(path, "onnx"))
    assert str(info.value) == (
        "'flat.onnx' takes a fixed 16x16 input, but the profile's [preprocess] size is "
        "[64, 64]: set size = [16, 16] or leave it out"
    )


def test_a_fixed_input_size_sets_the_size(tmp_path: Path) -> None:
    torch.manual_seed(2)
    flat = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 16 * 24, 2))
    path = export(flat, tmp_path / "flat.onnx", (1, 3, 16, 24), dynamo=False)
    profile = parse_profile({"architecture": "onnx", "weights": str(path)}, tmp_path, None)
    assert not profile.preprocess.size_given
    engine = CamEngine.from_profile(profile, "cpu")
    assert engine.size == (16, 24)
    picture = np.zeros((30, 40, 3), np.uint8)
    assert engine.explain([picture], layer=engine.default_layer)[0].cam.shape == (30, 40)


def test_a_free_input_size_needs_a_size(tmp_path: Path, tiny: nn.Module) -> None:
    free = {"image": {0: "batch", 2: "height", 3: "width"}}
    path = export(
        tiny, tmp_path / "free.onnx", (1, 3, *SIZE), input_names=["image"], dynamic_axes=free
    )
    with pytest.raises(InspectorError) as info:
        load_model(parse_profile({"architecture": "onnx", "weights": str(path)}, tmp_path, None))
    assert str(info.value) == (
        "'free.onnx' takes any input size: set [preprocess] size = [height, width] in the "
        "profile to the size the model was trained at"
    )
    assert load_model(profile_for(path, "onnx")).preprocess.size == SIZE


def test_conversion_that_fails_on_its_own_input_says_so(
    tmp_path: Path, tiny: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = export(tiny, tmp_path / "tiny.onnx", (1, 3, *SIZE))

    class Broken(nn.Module):  # what onnx2torch gives for e.g. Swin's LayerNorm exports
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("normalized_shape = [0]")

    monkeypatch.setattr("onnx2torch.convert", lambda proto: Broken())
    with pytest.raises(InspectorError) as info:
        load_model(profile_for(path, "onnx"))
    assert str(info.value) == (
        "'tiny.onnx' converted by onnx2torch fails on its own input shape: normalized_shape = [0]"
    )


def test_onnx_file_problems(tmp_path: Path, resnet: nn.Module) -> None:
    pytest.importorskip("onnx2torch")
    with pytest.raises(InspectorError, match=r'^architecture "onnx" needs weights = '):
        load_model(profile_for(None, "onnx", classes=list(NEU)))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07this is not protobuf at all" * 3)
    with pytest.raises(InspectorError, match=r"^'junk\.onnx' is not a readable ONNX model"):
        load_model(profile_for(junk, "onnx"))
    junk.write_text("name,label\nimage.png,3\n", encoding="utf-8")
    with pytest.raises(InspectorError, match=r"^'junk\.onnx' is not a readable ONNX model"):
        load_model(profile_for(junk, "onnx"))
    path = export(resnet, tmp_path / "r18.onnx", (1, 3, *SIZE), dynamo=False)
    with pytest.raises(InspectorError, match=r"^'r18\.onnx' is an ONNX model: set architecture"):
        load_model(profile_for(path, "resnet18", classes=list(NEU)))


@pytest.mark.parametrize("package", ["onnx", "onnx2torch"])
def test_missing_onnx_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"unused")
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(InspectorError) as info:
        load_model(profile_for(path, "onnx"))
    assert str(info.value) == (
        f"architecture 'onnx' needs the {package} package, which is not installed: "
        "pip install 'gradcam-inspector[onnx]'"
    )


def test_cli_batch_on_an_onnx_profile(neu_folder: Path, tmp_path: Path, resnet: nn.Module) -> None:
    export(resnet, tmp_path / "model.onnx", (1, 3, *SIZE), dynamo=False)
    profile = write_profile(tmp_path, "onnx", "model.onnx")
    assert run_batch(profile, neu_folder, tmp_path / "out") == 0
    rows = csv_rows(tmp_path / "out" / "results.csv")
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert {r["layer"] for r in rows} == {LEGACY_LAYER4}
    # The same predictions as the torch model the file was exported from.
    engine = reference_engine(resnet, "layer4")
    picture = cv2.cvtColor(
        cv2.imread(str(neu_folder / "IMAGES" / "crazing_1.jpg")), cv2.COLOR_BGR2RGB
    )
    first = next(r for r in rows if r["path"] == "crazing_1.jpg")
    assert first["predicted"] == engine.explain([picture])[0].predicted.name
