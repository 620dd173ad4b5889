"""Tests for engine/cam.py and engine/methods/: equality with pytorch-grad-cam and Captum."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import timm
import torch
from captum.attr import LayerGradCam
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

from engine.cam import CamEngine, TargetSpec, parse_target, resolve_device
from engine.errors import CamCancelled, InspectorError
from tests.conftest import NEU, CountingNet, TinyNet, engine_records, make_torchvision
from tests.engine.silent_models import ClassTokenNet, NanForBrightNet

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
REFERENCES = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
}


def _engine(model: nn.Module, size: int = 128, classes: int = 6) -> CamEngine:
    classes_ = [f"c{i}" for i in range(classes)]
    return CamEngine(model, classes_, *engine_records((size, size), MEAN, STD), "cpu")


def _images(count: int, size: int = 128, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def _hooks_left(model: nn.Module) -> list[str]:
    return [
        name
        for name, m in model.named_modules()
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
    ]


@pytest.fixture(scope="module", params=["resnet18", "mobilenet_v3_large"])
def torchvision_engine(request: pytest.FixtureRequest) -> CamEngine:
    return _engine(make_torchvision(request.param))


@pytest.mark.parametrize("method", list(REFERENCES))
def test_methods_equal_pytorch_grad_cam(torchvision_engine: CamEngine, method: str) -> None:
    engine = torchvision_engine
    images = _images(2)
    ours = engine.explain(images, method)
    layer = dict(engine.model.named_modules())[engine.inventory.default_layer]
    with REFERENCES[method](model=engine.model, target_layers=[layer]) as reference:
        expected = reference(input_tensor=engine.prepare(images), targets=None)
    for result, ref in zip(ours, expected, strict=True):
        assert result.cam.shape == ref.shape
        np.testing.assert_allclose(result.cam, ref, atol=1e-3)
        assert result.cam.max() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("arch", ["resnet18", "densenet121"])
def test_raw_gradcam_equals_captum(arch: str) -> None:
    # DenseNet's `features` is followed by an in-place ReLU: the map must be of what the
    # layer really output (Captum clones it too), not of the ReLU'd tensor.
    engine = _engine(make_torchvision(arch))
    images = _images(2, seed=1)
    ours = engine.explain(images, "gradcam")
    layer = dict(engine.model.named_modules())[engine.inventory.default_layer]
    attribution = LayerGradCam(engine.model, layer).attribute(
        engine.prepare(images), target=[r.target_index for r in ours], relu_attributions=True
    )
    for result, attr in zip(ours, attribution, strict=True):
        np.testing.assert_allclose(result.raw, attr[0].detach().numpy(), atol=1e-5)
    assert not _hooks_left(engine.model)


def test_densenet_capture_is_pre_relu() -> None:
    engine = _engine(make_torchvision("densenet121"))
    capture = engine.capture(_images(1))[0]
    activation = capture.layers["features"].activation
    assert activation.min() < 0  # the in-place ReLU did not reach the captured tensor


def test_scorecam_equals_pytorch_grad_cam(tiny_net: TinyNet) -> None:
    engine = _engine(tiny_net, size=32, classes=3)
    images = _images(2, size=32)
    ours = engine.explain(images, "scorecam")
    with ScoreCAM(model=tiny_net, target_layers=[tiny_net.features]) as reference:
        expected = reference(input_tensor=engine.prepare(images), targets=None)
    for result, ref in zip(ours, expected, strict=True):
        np.testing.assert_allclose(result.cam, ref, atol=1e-3)


def _peak_model() -> nn.Module:
    """Class 0's logit grows with brightness, so its map is where the image is bright."""
    model = TinyNet(classes=2)
    with torch.no_grad():
        for module in model.features:
            if isinstance(module, nn.Conv2d):
                module.weight.fill_(1.0 / module.weight[0].numel())
                module.bias.zero_()
        model.head.weight.copy_(torch.tensor([[1.0] * 16, [-1.0] * 16]))
        model.head.bias.zero_()
    return model.eval()


def _peak_engine(size: tuple[int, int]) -> CamEngine:
    """The peak model with no normalisation: pixel values are what reaches the first conv."""
    return CamEngine(
        _peak_model(), ["bright", "dark"], *engine_records(size, (0,) * 3, (1,) * 3), "cpu"
    )


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam"])
def test_cam_peaks_where_the_signal_is(method: str) -> None:
    engine = _peak_engine((64, 64))
    image = np.zeros((200, 300), dtype=np.uint8)  # gray, not square, not the model's size
    image[120:160, 210:260] = 255
    result = engine.explain([image], method, target="bright")[0]
    assert result.cam.shape == (200, 300)
    y, x = np.unravel_index(np.argmax(result.cam), result.cam.shape)
    assert 120 <= y < 160 and 210 <= x < 260
    assert result.cam[:80, :150].max() < 0.05


def test_flat_map_stays_flat_without_nan() -> None:
    engine = _peak_engine((32, 32))
    result = engine.explain([np.zeros((40, 40), np.uint8)], "gradcam")[0]
    assert not np.isnan(result.cam).any()
    assert np.all(result.cam == result.cam.flat[0])


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam"])
def test_method_switch_from_capture_needs_no_pass(method: str) -> None:
    torch.manual_seed(0)
    model = CountingNet().eval()
    engine = _engine(model, size=32, classes=3)
    images = _images(1, size=48)
    capture = engine.capture(images, "features")[0]
    passes = model.passes
    redrawn = engine.cam_from_capture(capture, method, "features")
    assert model.passes == passes
    direct = engine.explain(images, method, "features")[0]
    np.testing.assert_allclose(redrawn.cam, direct.cam, atol=1e-6)
    assert redrawn.target_index == direct.target_index
    assert redrawn.top_k[0].probability == pytest.approx(direct.top_k[0].probability, abs=1e-6)


def test_several_layers_from_one_pass() -> None:
    torch.manual_seed(0)
    model = CountingNet().eval()
    engine = _engine(model, size=32, classes=3)
    images = _images(2, size=32)
    both = engine.explain_layers(images, "gradcam", ["features.1", "features"])
    assert model.passes == 1
    for name in ("features.1", "features"):
        single = engine.explain(images, "gradcam", name)
        for joint, alone in zip(both, single, strict=True):
            np.testing.assert_allclose(joint[name].cam, alone.cam, atol=1e-6)
    assert both[0]["features.1"].raw.shape == (32, 32)
    assert both[0]["features"].raw.shape == (16, 16)


def test_hooks_removed_and_model_restored_after_success_error_and_cancel() -> None:
    model = make_torchvision("resnet18")
    model.train()
    model.layer1.eval()
    model.conv1.weight.requires_grad_(False)
    modes = {name: m.training for name, m in model.named_modules()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    engine = _engine(model)
    images = _images(1)

    def check() -> None:
        assert not _hooks_left(model)
        assert {name: m.training for name, m in model.named_modules()} == modes
        assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
        assert all(p.grad is None for p in model.parameters())

    engine.explain(images, "gradcam", "layer4")
    check()
    with pytest.raises(InspectorError, match="'fc' has no"):
        engine.explain(images, "gradcam", "fc")
    check()
    with pytest.raises(CamCancelled):
        engine.explain(images, "gradcam", "layer4", cancel=lambda: True)
    check()
    with pytest.raises(CamCancelled):
        engine.explain(images, "scorecam", "layer4", cancel=lambda: True)
    check()


def test_targets_and_top_k() -> None:
    engine = _engine(make_torchvision("resnet18"))
    images = _images(2)
    pred = engine.explain(images, "gradcam")
    other = (pred[0].target_index + 1) % 6
    by_name = engine.explain(images, "gradcam", target=f"C{other}")
    by_index = engine.explain(images, "gradcam", target=str(other))
    assert [r.target_index for r in by_name] == [other, other]
    np.testing.assert_allclose(by_name[0].cam, by_index[0].cam)
    gt = engine.explain(images, "gradcam", target="gt", ground_truth=[other, None])
    assert gt[0].target_index == other
    assert gt[1].target_index == pred[1].target_index and "no ground truth" in gt[1].note
    logits = engine.model(engine.prepare(images)).detach()
    probs = torch.softmax(logits, 1)
    top = pred[0].top_k
    assert len(top) == 5 and top[0].index == int(probs[0].argmax())
    assert [t.probability for t in top] == sorted((t.probability for t in top), reverse=True)
    assert top[0].probability == pytest.approx(float(probs[0].max()), abs=1e-6)


def test_parse_target_errors() -> None:
    classes = ["crazing", "scratches"]
    assert parse_target("Scratches", classes) == TargetSpec("index", 1)
    assert parse_target(None, classes) == TargetSpec("pred")
    with pytest.raises(InspectorError, match="out of range"):
        parse_target("7", classes)
    with pytest.raises(InspectorError, match="unknown target 'rust'"):
        parse_target("rust", classes)


def test_blur_smooths_and_stays_normalised() -> None:
    engine = _peak_engine((64, 64))
    image = np.zeros((128, 128), dtype=np.uint8)
    image[40:80, 40:80] = 255
    sharp = engine.explain([image], "gradcam")[0].cam
    soft = engine.explain([image], "gradcam", blur_sigma=8.0)[0].cam
    assert soft.min() == pytest.approx(0.0, abs=1e-6) and soft.max() == pytest.approx(1.0, abs=1e-5)
    assert np.abs(np.diff(soft, axis=1)).max() < 0.5 * np.abs(np.diff(sharp, axis=1)).max()


def test_unknown_method_and_layer() -> None:
    engine = _engine(make_torchvision("resnet18"))
    with pytest.raises(InspectorError, match="unknown method 'gradcam3'"):
        engine.explain(_images(1), "gradcam3")
    with pytest.raises(InspectorError, match="did you mean layer4"):
        engine.explain(_images(1), "gradcam", "layer44")


def test_cuda_requested_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InspectorError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu() -> None:
    model = make_torchvision("resnet18")
    images = _images(2)
    cpu = _engine(model).explain(images, "gradcam++")
    classes = [f"c{i}" for i in range(6)]
    gpu_engine = CamEngine(model, classes, *engine_records((128, 128), MEAN, STD), "cuda")
    gpu = gpu_engine.explain(images, "gradcam++")
    for a, b in zip(cpu, gpu, strict=True):
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-3)


def test_max_normalisation_reproduces_the_keras_example() -> None:
    import cv2

    torch.manual_seed(0)
    model = TinyNet(classes=4).eval()
    classes = ["a", "b", "c", "d"]
    records = engine_records((64, 64), MEAN, STD, layer="features", normalize="max")
    keras = CamEngine(model, classes, *records, "cpu")
    images = _images(2, size=96, seed=7)
    results = keras.explain(images, "gradcam")
    for capture, result in zip(keras.capture(images), results, strict=True):
        # The Keras Grad-CAM example, written out: pooled gradients, weighted channels,
        # heatmap = maximum(heatmap, 0) / max(heatmap), no minimum subtracted.
        a = capture.layers["features"].activation.astype(np.float64)
        g = capture.layers["features"].gradient.astype(np.float64)
        heatmap = np.einsum("c,chw->hw", g.mean(axis=(1, 2)), a)
        heatmap = np.maximum(heatmap, 0) / heatmap.max()
        np.testing.assert_allclose(result.raw / result.raw.max(), heatmap, atol=1e-6)
        full = cv2.resize(np.float32(heatmap), (96, 96), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(result.cam, full / full.max(), atol=1e-5)
        assert keras.cam_from_capture(capture, "gradcam").cam == pytest.approx(result.cam)


def test_max_and_minmax_normalisation_differ_only_by_the_shift() -> None:
    from engine.cam import normalize_maps, upsample_map

    raw = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    np.testing.assert_allclose(normalize_maps(raw, "max")[0], [[0.25, 0.5], [0.75, 1.0]])
    np.testing.assert_allclose(normalize_maps(raw)[0], [[0.0, 1 / 3], [2 / 3, 1.0]], atol=1e-6)
    assert normalize_maps(raw, "max")[1].abs().max() == 0  # a flat zero map stays zeros
    up_max = upsample_map(np.float32([[0.5, 1.0]]), (4, 8), mode="max")
    up_minmax = upsample_map(np.float32([[0.5, 1.0]]), (4, 8))
    assert up_max.max() == pytest.approx(1.0) and up_max.min() == pytest.approx(0.5)
    assert up_minmax.min() == 0.0 and up_minmax.max() == pytest.approx(1.0, abs=1e-6)
    zeros = upsample_map(np.zeros((2, 2), np.float32), (4, 4), mode="max")
    assert not np.isnan(zeros).any() and zeros.max() == 0


def test_profile_output_and_normalize_reach_the_engine(tmp_path) -> None:
    from engine.profile import OutputSpec, load_profile

    torch.save(make_torchvision("resnet18", classes=1).state_dict(), tmp_path / "w.pth")
    (tmp_path / "p.toml").write_text(
        'architecture = "resnet18"\nweights = "w.pth"\nclasses = ["class_0"]\n'
        '[preprocess]\nsize = [64, 64]\n[cam]\nnormalize = "max"\n'
        '[output]\nactivation = "sigmoid"\nlogits = 0\n',
        encoding="utf-8",
    )
    engine = CamEngine.from_profile(load_profile(tmp_path / "p.toml"), "cpu")
    assert engine.output == OutputSpec(0, "sigmoid") and engine.cam.normalize == "max"
    assert engine.classes == ("negative", "positive")
    result = engine.explain(_images(1, size=64), "gradcam")[0]
    assert result.head == "binary" and len(result.top_k) == 2


# -- odd inputs: gray models, sizes that are not square or not multiples of 32 ----------------
@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])
def test_grayscale_models_take_one_channel(name: str) -> None:
    torch.manual_seed(0)
    extra = {"img_size": 64, "depth": 2} if name.startswith("vit") else {}
    model = timm.create_model(name, pretrained=False, num_classes=3, in_chans=1, **extra).eval()
    engine = CamEngine(model, ["a", "b", "c"], *engine_records((64, 64), (0.5,), (0.25,)), "cpu")
    assert engine.in_channels == 1
    rgb = _images(1, size=64)[0]
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    batch = engine.prepare([rgb, gray])
    assert batch.shape == (2, 1, 64, 64)
    torch.testing.assert_close(batch[0], batch[1])
    torch.testing.assert_close(batch[1, 0], torch.from_numpy(gray / 255.0 - 0.5).float() / 0.25)
    ours = engine.explain([gray], "gradcam")[0]
    layer = dict(model.named_modules())[engine.default_layer]
    reshape = None
    if name.startswith("vit"):
        assert engine.default_layer == "blocks.1.norm1"

        def reshape(t: torch.Tensor) -> torch.Tensor:
            return t[:, 1:, :].reshape(t.size(0), 4, 4, t.size(2)).transpose(2, 3).transpose(1, 2)

    with GradCAM(model, [layer], reshape_transform=reshape) as reference:
        expected = reference(input_tensor=engine.prepare([gray]), targets=None)
    assert ours.raw.std() > 0
    np.testing.assert_allclose(ours.cam, expected[0], atol=1e-3)


@pytest.mark.parametrize("size", [(160, 320), (150, 210)])
def test_resnet_at_odd_sizes_equals_pytorch_grad_cam(size: tuple[int, int]) -> None:
    engine = CamEngine(
        make_torchvision("resnet18"), [f"c{i}" for i in range(6)], *engine_records(size), "cpu"
    )
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(2)]
    ours = engine.explain(images, "gradcam")
    assert engine.default_layer == "layer4"
    assert ours[0].raw.shape == (-(-size[0] // 32), -(-size[1] // 32))  # padded convs round up
    with GradCAM(engine.model, [engine.model.layer4]) as reference:
        expected = reference(input_tensor=engine.prepare(images), targets=None)
    for result, ref in zip(ours, expected, strict=True):
        assert result.cam.shape == size
        np.testing.assert_allclose(result.cam, ref, atol=1e-3)


@pytest.mark.parametrize("size", [(160, 320), (150, 210)])
def test_cam_peaks_where_the_signal_is_at_odd_model_sizes(size: tuple[int, int]) -> None:
    engine = _peak_engine(size)
    image = np.zeros((300, 420), dtype=np.uint8)
    image[200:260, 40:100] = 255
    result = engine.explain([image], "gradcam", target="bright")[0]
    assert result.raw.shape == (-(-size[0] // 2), -(-size[1] // 2))
    assert result.cam.shape == (300, 420)
    y, x = np.unravel_index(np.argmax(result.cam), result.cam.shape)
    assert 200 <= y < 260 and 40 <= x < 100
    assert result.cam[:120, 200:].max() < 0.05


# -- input layout and batch limit -------------------------------------------------------------
class ChannelsLastInput(nn.Module):
    """A TinyNet that takes (B, H, W, C) input, as a Keras model exported to ONNX does."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == 3, "expects channels last"
        return self.net(x.permute(0, 3, 1, 2))


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "eigencam", "scorecam"])
def test_nhwc_input_layout_equals_the_nchw_model(tiny_net: TinyNet, method: str) -> None:
    classes = ["a", "b", "c"]
    nchw = CamEngine(tiny_net, classes, *engine_records((48, 40), MEAN, STD), "cpu")
    records = engine_records((48, 40), MEAN, STD, layout="nhwc")
    nhwc = CamEngine(ChannelsLastInput(tiny_net), classes, *records, "cpu")
    images = _images(2, size=64, seed=4)
    assert nhwc.prepare(images).shape == (2, 48, 40, 3)
    torch.testing.assert_close(nhwc.prepare(images), nchw.prepare(images).permute(0, 2, 3, 1))
    assert nhwc.default_layer == "net.features"  # the inventory's dummy input is NHWC too
    ours = nhwc.explain(images, method)
    expected = nchw.explain(images, method)
    for a, b in zip(ours, expected, strict=True):
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-6)
    capture = nhwc.capture(images[:1])[0]
    redrawn = nhwc.cam_from_capture(capture, method)
    np.testing.assert_allclose(redrawn.cam, ours[0].cam, atol=1e-6)
    with pytest.raises(InspectorError, match="unknown input layout"):
        CamEngine(tiny_net, classes, *engine_records((48, 40), layout="chw"), "cpu")


class FixedBatch(nn.Module):
    """A TinyNet that refuses batches above one image, like an ONNX export with batch 1."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1:
            raise RuntimeError(f"Got invalid dimensions for input: {x.shape[0]} > 1")
        self.batches.append(x.shape[0])
        return self.net(x)


@pytest.mark.parametrize("method", ["gradcam++", "scorecam"])
def test_max_batch_splits_and_equals_one_big_batch(tiny_net: TinyNet, method: str) -> None:
    classes = ["a", "b", "c"]
    whole = CamEngine(tiny_net, classes, *engine_records((32, 32), MEAN, STD), "cpu")
    fixed = FixedBatch(tiny_net)
    limited = CamEngine(fixed, classes, *engine_records((32, 32), MEAN, STD), "cpu", max_batch=1)
    images = _images(3, size=32, seed=6)
    truth = [2, None, 0]
    with pytest.raises(RuntimeError, match="invalid dimensions"):
        fixed(whole.prepare(images))
    ours = limited.explain_layers(
        images, method, ["net.features", "net.features.1"], target="gt", ground_truth=truth
    )
    expected = whole.explain_layers(
        images, method, ["features", "features.1"], target="gt", ground_truth=truth
    )
    assert set(fixed.batches) == {1} and limited.inventory.default_layer == "net.features"
    for a, b in zip(ours, expected, strict=True):
        for name in ("features", "features.1"):
            np.testing.assert_allclose(a[f"net.{name}"].cam, b[name].cam, atol=1e-6)
            assert a[f"net.{name}"].target_index == b[name].target_index
            assert a[f"net.{name}"].note == b[name].note
    if method == "scorecam":
        # One masked image per pass: 16 channels x 3 images; progress runs once from 0 to 1.
        steps: list[tuple[int, int]] = []
        limited.explain(images, method, progress=lambda done, total: steps.append((done, total)))
        fractions = [done / total for done, total in steps]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(steps) == 48
    captured = limited.capture(images, "net.features")
    for a, b in zip(captured, whole.capture(images, "features"), strict=True):
        np.testing.assert_allclose(
            a.layers["net.features"].gradient, b.layers["features"].gradient, atol=1e-6
        )
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)


def test_profile_layout_reshape_and_batch_limit_reach_the_engine(tmp_path) -> None:
    from engine.profile import load_profile

    torch.save(make_torchvision("resnet18").state_dict(), tmp_path / "w.pth")
    (tmp_path / "p.toml").write_text(
        'architecture = "resnet18"\nweights = "w.pth"\n'
        '[preprocess]\nsize = [64, 96]\nlayout = "nhwc"\n[cam]\nreshape = "tokens"\n',
        encoding="utf-8",
    )
    engine = CamEngine.from_profile(load_profile(tmp_path / "p.toml"), "cpu")
    assert (engine.preprocess.layout, engine.cam.reshape, engine.max_batch) == (
        "nhwc",
        "tokens",
        None,
    )
    assert engine.prepare(_images(1, size=64)).shape == (1, 64, 96, 3)


def test_automatic_layer_receives_a_gradient() -> None:
    torch.manual_seed(0)
    engine = CamEngine(ClassTokenNet(len(NEU)), NEU, *engine_records((64, 64)), "cpu")
    # The last map-shaped layer is the final norm, which the head reads through the class
    # token only: its patch tokens get no gradient, so its map is zeros on every image.
    assert engine.inventory.candidates[-1] == "norm"
    assert engine.default_layer == engine.inventory.default_layer == "patch"
    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    chosen = engine.explain([picture])[0]
    assert chosen.raw.max() > 0 and chosen.warning == ""
    flat = engine.explain([picture], layer="norm")[0]
    assert not flat.raw.any()
    assert flat.warning == "flat map at 'norm' (no positive value); try layer 'patch'"


def test_non_finite_scores_are_an_error() -> None:
    torch.manual_seed(0)
    engine = CamEngine(NanForBrightNet(classes=6), NEU, *engine_records((32, 32)), "cpu")
    bright = np.full((32, 32, 3), 250, np.uint8)
    with pytest.raises(InspectorError, match=r"^the model gave non-finite scores \(NaN"):
        engine.explain([bright])
    with pytest.raises(InspectorError, match="non-finite scores"):
        engine.cam_from_capture(engine.capture([bright])[0], "gradcam")
    dark = np.full((32, 32, 3), 5, np.uint8)
    assert np.isfinite(engine.explain([dark])[0].top_k[0].probability)
