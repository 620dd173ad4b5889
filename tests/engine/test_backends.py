"""Tests for engine/backends.py: timm by name, ONNX converted to torch, TorchScript refused."""

from __future__ import annotations

import csv
import dataclasses
import shutil
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from engine.cam import CamEngine
from engine.checkpoint import load_model, sha256_of
from engine.cli import run
from engine.errors import InspectorError
from engine.profile import ModelProfile, load_profile, parse_profile
from engine.resources import resource_path
from tests.conftest import NEU, TinyNet, engine_records

SIZE = (64, 64)
# The legacy exporter names nodes after the modules; layer4's output is its last ReLU call.
LEGACY_LAYER4 = "layer4/layer4/1/relu_1/Relu"


def profile_for(weights: Path | None, architecture: str, **tables: object) -> ModelProfile:
    data: dict[str, object] = {"architecture": architecture, "preprocess": {"size": list(SIZE)}}
    if weights is not None:
        data["weights"] = str(weights)
    data.update(tables)
    return parse_profile(data, Path.cwd(), None)


def images(count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (50 + 7 * i, 70, 3), dtype=np.uint8) for i in range(count)]


def reference_engine(model: nn.Module, layer: str) -> CamEngine:
    return CamEngine(model, NEU, *engine_records(SIZE, layer=layer), "cpu")


def assert_same_cams(engine: CamEngine, reference: CamEngine) -> None:
    """Same predictions and Grad-CAM maps (at the engines' default layers) for three images."""
    pictures = images()
    expected = reference.explain(pictures)
    got = engine.explain(pictures)
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.predicted.index == theirs.predicted.index
        assert ours.predicted.probability == pytest.approx(theirs.predicted.probability, abs=1e-4)
        assert ours.raw.shape == theirs.raw.shape
        np.testing.assert_allclose(ours.raw, theirs.raw, atol=1e-3)
        np.testing.assert_allclose(ours.cam, theirs.cam, atol=1e-3)


# --- timm ------------------------------------------------------------------------------------


def test_timm_cam_equals_pytorch_grad_cam(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    grad_cam = pytest.importorskip("pytorch_grad_cam")
    torch.manual_seed(4)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=len(NEU)).eval()
    torch.save(model.state_dict(), tmp_path / "w.pth")
    engine = CamEngine.from_profile(
        profile_for(tmp_path / "w.pth", "timm:resnet10t", classes=list(NEU)), "cpu"
    )
    assert engine.default_layer == "layer4"
    # Images at the input size, so both maps are normalised on the same grid.
    pictures = [np.random.default_rng(i).integers(0, 256, (*SIZE, 3), np.uint8) for i in (0, 1)]
    ours = engine.explain(pictures)
    with grad_cam.GradCAM(model=engine.model, target_layers=[engine.model.layer4]) as cam:
        theirs = cam(input_tensor=engine.prepare(pictures), targets=None)
    for result, expected in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(result.cam, expected, atol=1e-3)
        assert result.cam.max() == pytest.approx(1.0, abs=1e-3)


def test_unknown_timm_name_suggests_close_ones() -> None:
    pytest.importorskip("timm")
    with pytest.raises(InspectorError, match=r"'resnet10' is not a timm model \(did you mean "):
        load_model(profile_for(None, "timm:resnet10", classes=list(NEU)))
    with pytest.raises(InspectorError, match="would be downloaded from the Hugging Face hub"):
        load_model(profile_for(None, "timm:hf-hub:timm/resnet18.a1_in1k", classes=list(NEU)))


def test_missing_timm_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(InspectorError) as info:
        load_model(profile_for(None, "timm:resnet10t", classes=list(NEU)))
    assert str(info.value) == (
        "architecture 'timm:resnet10t' needs the timm package, which is not installed: "
        "pip install 'gradcam-inspector[timm]'"
    )


def test_xception_keras_profile(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    shutil.copy(resource_path("profiles", "xception_keras.toml"), tmp_path)
    torch.manual_seed(5)
    model = timm.create_model("legacy_xception", pretrained=False).eval()
    torch.save(model.state_dict(), tmp_path / "xception_keras.pth")
    profile = load_profile(tmp_path / "xception_keras.toml")
    assert profile.preprocess.size == (299, 299)
    assert (profile.cam.colormap, profile.cam.alpha) == ("jet", 0.4)
    assert (profile.cam.normalize, profile.cam.blend) == ("max", "additive")
    assert len(profile.classes) == 1000 and profile.classes[340] == "zebra"
    engine = CamEngine.from_profile(profile, "cpu")
    # act4 is Keras' block14_sepconv2_act, and the automatic choice agrees with the profile.
    assert engine.default_layer == "act4" == engine.inventory.default_layer
    picture = images(1)[0]
    # keras.applications.xception.preprocess_input: x / 127.5 - 1.
    resized = cv2.resize(picture, (299, 299), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    keras_input = torch.from_numpy(resized / 127.5 - 1.0).permute(2, 0, 1)[None]
    torch.testing.assert_close(engine.prepare([picture]), keras_input, atol=1e-5, rtol=0)
    with torch.no_grad():
        expected = model(keras_input).argmax(1).item()
    result = engine.explain([picture])[0]
    assert result.layer == "act4" and result.raw.shape == (10, 10)
    assert result.predicted.index == expected
    assert result.predicted.name == profile.classes[expected]


def test_neu_vit_timm_profile(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    shutil.copy(resource_path("profiles", "neu_vit_timm.toml"), tmp_path)
    torch.manual_seed(7)
    model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=6).eval()
    torch.save(model.state_dict(), tmp_path / "neu_vit_small.pth")
    engine = CamEngine.from_profile(load_profile(tmp_path / "neu_vit_timm.toml"), "cpu")
    assert engine.classes == NEU and engine.default_layer == "blocks.11.norm1"
    result = engine.explain(images(1))[0]
    assert result.raw.shape == (14, 14) and result.cam.shape == (50, 70)
    with torch.no_grad():
        expected = torch.softmax(model(engine.prepare(images(1))), 1)[0]
    assert [p.probability for p in result.top_k] == pytest.approx(
        expected.sort(descending=True).values[:5].tolist(), abs=1e-5
    )


# --- ONNX ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=len(NEU)).eval()


def export(model: nn.Module, path: Path, shape: tuple[int, ...], **options: object) -> Path:
    """model exported to ONNX by the legacy (TorchScript-based) exporter unless dynamo=True."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    if not options.setdefault("dynamo", False):
        options.setdefault("opset_version", 17)  # the legacy exporter's default changes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation and tracer chatter
        torch.onnx.export(model, (torch.zeros(shape),), str(path), **options)
    return path


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


@pytest.fixture
def tiny(tmp_path: Path) -> nn.Module:
    torch.manual_seed(3)
    return TinyNet(classes=len(NEU)).eval()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_dynamo_gelu_is_rewritten(tmp_path: Path, approximate: str) -> None:
    pytest.importorskip("onnxscript")
    torch.manual_seed(8)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.GELU(approximate=approximate),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()
    # Gelu exists only from opset 20 on; without the rewrite nothing converts down to 17.
    path = export(net, tmp_path / "gelu.onnx", (1, 3, 16, 16), dynamo=True, verbose=False)
    loaded = load_model(profile_for(path, "onnx", preprocess={"size": [16, 16]}))
    image = torch.randn(1, 3, 16, 16) * 3
    torch.testing.assert_close(loaded.model(image), net(image), atol=1e-5, rtol=1e-4)


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


def test_weights_in_constant_nodes(tmp_path: Path, tiny: nn.Module) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    path = export(tiny, tmp_path / "tiny.onnx", (1, 3, *SIZE))
    proto = onnx.load(str(path))
    # As tf2onnx and constant-folding exporters write them: weights as Constant nodes.
    constants = [
        helper.make_node("Constant", [], [t.name], value=t) for t in proto.graph.initializer
    ]
    nodes = [*constants, *proto.graph.node]
    del proto.graph.initializer[:], proto.graph.node[:]
    proto.graph.node.extend(nodes)
    onnx.save(proto, path)
    engine = CamEngine.from_profile(profile_for(path, "onnx", classes=list(NEU)), "cpu")
    assert_same_cams(engine, reference_engine(tiny, "features"))


def test_final_softmax_is_removed(tmp_path: Path, tiny: nn.Module) -> None:
    path = export(nn.Sequential(tiny, nn.Softmax(dim=1)), tmp_path / "p.onnx", (1, 3, *SIZE))
    engine = CamEngine.from_profile(profile_for(path, "onnx", classes=list(NEU)), "cpu")
    assert engine.load_info.notes == (
        "removed the final Softmax: Grad-CAM uses the class scores before it",
    )
    # Probabilities are the model's own, not a softmax of its softmax.
    assert_same_cams(engine, reference_engine(tiny, "features"))


def test_final_sigmoid_needs_the_sigmoid_activation(tmp_path: Path, tiny: nn.Module) -> None:
    path = export(nn.Sequential(tiny, nn.Sigmoid()), tmp_path / "s.onnx", (1, 3, *SIZE))
    with pytest.raises(InspectorError, match=r"ends in a Sigmoid: set \[output\] activation"):
        load_model(profile_for(path, "onnx"))
    loaded = load_model(profile_for(path, "onnx", output={"activation": "sigmoid"}))
    image = torch.randn(1, 3, *SIZE)
    torch.testing.assert_close(loaded.model(image), tiny(image))


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
    message = str(info.value)
    assert message.startswith(
        "'flat.onnx' does not run on a 1x3x64x64 input (it declares 1x3x16x16)"
    )
    assert "check [preprocess] size and layout" in message and "\n" not in message


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


# --- TorchScript -----------------------------------------------------------------------------


@pytest.mark.parametrize(("how", "name"), [("script", "model.pt"), ("trace", "weights.pth")])
def test_torchscript_is_refused_with_a_reason(tmp_path: Path, how: str, name: str) -> None:
    net = TinyNet(classes=len(NEU)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation warnings
        if how == "script":
            compiled = torch.jit.script(net)
        else:
            compiled = torch.jit.trace(net, torch.zeros(1, 3, *SIZE))
        torch.jit.save(compiled, tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before torch.load could warn about it
        with pytest.raises(InspectorError) as info:
            load_model(profile_for(tmp_path / name, "resnet18", classes=list(NEU)))
    assert str(info.value) == (
        f"'{name}' is a TorchScript model: it runs a compiled graph, so hooks cannot be attached "
        "to its layers; save model.state_dict() (or export to ONNX) instead"
    )


# --- the command line ------------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _batch(profile: Path, folder: Path, out: Path) -> int:
    args = ["batch", "--profile", str(profile), "--input", str(folder / "IMAGES")]
    return run([*args, "--output", str(out), "--device", "cpu", "--save-raw"])


def _write_profile(folder: Path, architecture: str, weights: str) -> Path:
    classes = ", ".join(f'"{c}"' for c in NEU)
    path = folder / "p.toml"
    path.write_text(
        f'architecture = "{architecture}"\nweights = "{weights}"\nclasses = [{classes}]\n'
        "[preprocess]\nsize = [64, 64]\n",
        encoding="utf-8",
    )
    return path


def test_cli_batch_on_a_timm_profile(neu_folder: Path, tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(6)
    model = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=6)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pth")
    profile = _write_profile(tmp_path, "timm:mobilenetv3_small_050", "w.pth")
    assert _batch(profile, neu_folder, tmp_path / "out") == 0
    rows = _rows(tmp_path / "out" / "results.csv")
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert {r["layer"] for r in rows} == {"blocks"}  # the last stage before the 1x1 head
    cam = np.load(tmp_path / "out" / "crazing_1_cam.npy")
    assert cam.shape == (200, 200) and cam.max() == pytest.approx(1.0, abs=1e-3)


def test_cli_batch_on_an_onnx_profile(neu_folder: Path, tmp_path: Path, resnet: nn.Module) -> None:
    export(resnet, tmp_path / "model.onnx", (1, 3, *SIZE), dynamo=False)
    profile = _write_profile(tmp_path, "onnx", "model.onnx")
    assert _batch(profile, neu_folder, tmp_path / "out") == 0
    rows = _rows(tmp_path / "out" / "results.csv")
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert {r["layer"] for r in rows} == {LEGACY_LAYER4}
    # The same predictions as the torch model the file was exported from.
    engine = reference_engine(resnet, "layer4")
    picture = cv2.cvtColor(
        cv2.imread(str(neu_folder / "IMAGES" / "crazing_1.jpg")), cv2.COLOR_BGR2RGB
    )
    first = next(r for r in rows if r["path"] == "crazing_1.jpg")
    assert first["predicted"] == engine.explain([picture])[0].predicted.name
