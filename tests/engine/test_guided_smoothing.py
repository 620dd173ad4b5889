"""Guided Grad-CAM against Captum; aug_smooth and eigen_smooth against pytorch-grad-cam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from captum.attr import GuidedGradCam
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from engine.cam import CamEngine
from engine.errors import InspectorError
from engine.methods.registry import Smoothing
from engine.profile import load_profile
from tests.conftest import TinyNet, engine_records

SIZE = (64, 64)


def _tiny() -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    return TinyNet(classes=3).eval(), "features"


def _resnet() -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=3).eval(), "layer3"


MODELS = {"tinynet": _tiny, "resnet18": _resnet}


def _setup(arch: str) -> tuple[CamEngine, str, list[np.ndarray], list[int]]:
    model, layer = MODELS[arch]()
    engine = CamEngine(model, ["a", "b", "c"], *engine_records(SIZE, layer=layer), "cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8) for _ in range(2)]
    # Each image's predicted class: random weights still give it a map that is not all zero.
    targets = [r.predicted.index for r in engine.explain(images)]
    return engine, layer, images, targets


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    assert a.std() > 0 and b.std() > 0, "a flat map compares nothing"
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("arch", MODELS)
def test_guided_gradcam_equals_captum(arch) -> None:
    engine, layer, images, targets = _setup(arch)
    x = engine.prepare_nchw(images).contiguous()
    module = engine.model.get_submodule(layer)
    for i, target in enumerate(targets):
        ours = engine.explain([images[i]], "guidedgradcam", target=target)[0]
        reference = GuidedGradCam(engine.model, module).attribute(
            x[i : i + 1], target=target, interpolate_mode="bilinear"
        )
        expected = reference.abs().sum(dim=1)[0].detach().numpy()
        assert ours.raw.shape == SIZE  # pixel level: the model's input size
        assert _correlation(ours.raw, expected) >= 0.99


def test_guided_gradcam_leaves_no_hook_and_the_model_as_found() -> None:
    engine, _layer, images, _targets = _setup("resnet18")
    engine.model.train()
    engine.explain(images[:1], "guidedgradcam")
    assert engine.model.training
    for module in engine.model.modules():
        assert not module._forward_hooks
    assert all(p.requires_grad and p.grad is None for p in engine.model.parameters())


REFERENCE = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "hirescam": HiResCAM}


@pytest.mark.parametrize("arch", MODELS)
@pytest.mark.parametrize(
    ("method", "smoothing"),
    [
        ("gradcam", Smoothing(aug=True)),
        ("gradcam", Smoothing(eigen=True)),
        ("gradcam++", Smoothing(aug=True, eigen=True)),
        ("hirescam", Smoothing(eigen=True)),
    ],
)
def test_smoothing_equals_pytorch_grad_cam(arch, method, smoothing) -> None:
    engine, layer, images, targets = _setup(arch)
    ours = engine.explain(images, method, target="gt", ground_truth=targets, smoothing=smoothing)
    x = engine.prepare_nchw(images).contiguous()
    with REFERENCE[method](engine.model, [engine.model.get_submodule(layer)]) as cam:
        expected = cam(
            x,
            [ClassifierOutputTarget(t) for t in targets],
            aug_smooth=smoothing.aug,
            eigen_smooth=smoothing.eigen,
        )
    compared = 0
    for i in range(len(images)):
        if expected[i].std() == 0:  # the SVD's sign made the whole map negative: both zero
            assert ours[i].cam.max() == 0
            continue
        assert _correlation(ours[i].cam, expected[i]) >= 0.99
        compared += 1
    assert compared
    plain = engine.explain(images, method, target="gt", ground_truth=targets)
    assert any(not np.allclose(p.cam, s.cam, atol=1e-3) for p, s in zip(plain, ours, strict=True))


def test_layercam_eigen_smooth_equals_pytorch_grad_cam() -> None:
    engine, layer, images, targets = _setup("tinynet")
    ours = engine.explain(
        images, "layercam", target="gt", ground_truth=targets, smoothing=Smoothing(eigen=True)
    )
    with LayerCAM(engine.model, [engine.model.get_submodule(layer)]) as cam:
        expected = cam(
            engine.prepare_nchw(images).contiguous(),
            [ClassifierOutputTarget(t) for t in targets],
            eigen_smooth=True,
        )
    for i in range(len(images)):
        assert _correlation(ours[i].cam, expected[i]) >= 0.99


def test_profile_reads_the_smoothing_keys(tmp_path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "p"\narchitecture = "resnet18"\nclasses = ["a", "b"]\n'
        "[cam]\naug_smooth = true\neigen_smooth = false\n",
        encoding="utf-8",
    )
    assert load_profile(path).cam.smoothing == Smoothing(aug=True, eigen=False)
    path.write_text(
        'name = "p"\narchitecture = "resnet18"\nclasses = ["a", "b"]\n[cam]\naug_smooth = 1\n',
        encoding="utf-8",
    )
    with pytest.raises(InspectorError, match="aug_smooth"):
        load_profile(path)


def test_a_capture_draws_guided_gradcam_and_eigen_smooth_as_explain_does() -> None:
    engine, layer, images, _targets = _setup("tinynet")
    capture = engine.capture(images[:1], layer)[0]
    for method, eigen in (("guidedgradcam", False), ("gradcam", True), ("layercam", True)):
        drawn = engine.cam_from_capture(capture, method, layer, eigen_smooth=eigen)
        made = engine.explain(images[:1], method, layer, smoothing=Smoothing(eigen=eigen))[0]
        np.testing.assert_allclose(drawn.cam, made.cam, atol=1e-6)


def test_guided_gradcam_refuses_a_model_without_relu_modules() -> None:
    # A ViT's GELUs or functional ReLUs guide nothing: the map would be plain gradient x
    # Grad-CAM under the name Guided Grad-CAM.
    torch.manual_seed(0)
    model = TinyNet(classes=3).eval()
    model.features[1] = nn.GELU()
    model.features[3] = nn.GELU()
    engine = CamEngine(model, ["a", "b", "c"], *engine_records((32, 32), layer="features"), "cpu")
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with pytest.raises(InspectorError, match=r"nn\.ReLU modules and this model has none"):
        engine.explain([image], "guidedgradcam", "features")
    assert engine.explain([image], "gradcam", "features")[0].cam.shape == (32, 32)
