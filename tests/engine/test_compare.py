"""Comparison grids: every capture-drawn method from one pass, layers from one pass, the CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torchvision

from engine.cam import CamEngine, TargetSpec
from engine.choices import Compare
from engine.cli import run
from engine.compare import (
    CompareRequest,
    capture_methods,
    compare_figure,
    compare_layers,
    compare_results,
    tile_labels,
)
from engine.localization import Box
from engine.methods.registry import get_method
from engine.render import DEFAULT_STYLE
from tests.conftest import CountingNet, engine_records


@pytest.fixture
def resnet_engine() -> CamEngine:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3).eval()
    return CamEngine(model, ["a", "b", "c"], *engine_records((64, 64), layer="layer3"), "cpu")


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_layers_from_the_input_to_the_logits(resnet_engine) -> None:
    assert compare_layers(resnet_engine.inventory) == [
        "relu",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
    ]


def test_methods_grid_is_drawn_from_one_pass_and_equals_each_method() -> None:
    torch.manual_seed(0)
    model = CountingNet().eval()
    engine = CamEngine(model, ["a", "b", "c"], *engine_records((32, 32), layer="features"), "cpu")
    image = _image()[:32, :32]
    request = CompareRequest(
        Compare.METHODS, "gradcam", "features", TargetSpec("pred"), DEFAULT_STYLE
    )
    found = compare_results(engine, [image], request)[0]
    assert model.passes == 1
    assert list(found) == [get_method(name).label for name in capture_methods()]
    assert "scorecam" not in capture_methods() and "guidedgradcam" not in capture_methods()
    for name in capture_methods():
        expected = engine.explain([image], name, "features")[0].cam
        np.testing.assert_allclose(found[get_method(name).label].cam, expected, atol=1e-5)


def test_layers_grid_uses_one_pass_and_labels_hits(resnet_engine) -> None:
    image = _image(1)
    request = CompareRequest(Compare.LAYERS, "gradcam", "layer3", TargetSpec("pred"), DEFAULT_STYLE)
    found = compare_results(resnet_engine, [image], request)[0]
    assert list(found) == ["relu", "layer1", "layer2", "layer3", "layer4"]
    peak = np.unravel_index(int(np.argmax(found["layer3"].cam)), (64, 64))
    box = Box(int(peak[1]), int(peak[0]), int(peak[1]) + 1, int(peak[0]) + 1, "defect")
    labels = tile_labels(found, [box])
    assert labels[3] == "layer3: hit" and all(
        label.startswith(n) for label, n in zip(labels, found, strict=True)
    )
    assert tile_labels(found, []) == list(found)
    figure = compare_figure(image, found, DEFAULT_STYLE, [box], title="x.png")
    assert figure.dtype == np.uint8 and figure.shape[1] > 4 * 160


def test_batch_compare_writes_a_decodable_grid(tiny_profile, neu_folder, tmp_path) -> None:
    image = neu_folder / "IMAGES" / "scratches_1.jpg"
    out = tmp_path / "out"
    args = ["--profile", str(tiny_profile), "--input", str(image), "--output", str(out)]
    assert run(["batch", *args, "--device", "cpu", "--compare", "methods", "--boxes"]) == 0
    grid = cv2.imread(str(out / "scratches_1_compare.png"))
    assert grid is not None and grid.shape[0] > 2 * 160 and grid.shape[1] > 4 * 160


def test_batch_compare_rejects_an_unknown_kind(capsys) -> None:
    with pytest.raises(SystemExit):
        run(["batch", "--compare", "everything"])
    err = capsys.readouterr().err
    assert "invalid choice: 'everything' (choose from 'methods', 'layers')" in err


def test_batch_compare_methods_with_aug_smooth_writes_the_grid(
    tiny_profile, neu_folder, tmp_path
) -> None:
    image = neu_folder / "IMAGES" / "scratches_1.jpg"
    out = tmp_path / "out"
    args = ["--profile", str(tiny_profile), "--input", str(image), "--output", str(out)]
    assert run(["batch", *args, "--device", "cpu", "--compare", "methods", "--aug-smooth"]) == 0
    grid = cv2.imread(str(out / "scratches_1_compare.png"))
    assert grid is not None and grid.shape[0] > 2 * 160 and grid.shape[1] > 4 * 160


def test_methods_grid_on_request_adds_the_methods_that_run_the_model() -> None:
    torch.manual_seed(0)
    engine = CamEngine(CountingNet().eval(), ["a", "b", "c"], *engine_records((32, 32)), "cpu")
    image = _image()[:32, :32]
    request = CompareRequest(
        Compare.METHODS, "gradcam", "features", TargetSpec("pred"), DEFAULT_STYLE, extra_passes=True
    )
    steps: list[tuple[int, int]] = []
    found = compare_results(engine, [image], request, progress=lambda d, t: steps.append((d, t)))[0]
    assert list(found) == [
        spec_label for spec_label in (get_method(n).label for n in capture_methods(True))
    ]
    assert "Score-CAM (runs the model per channel)" in found and "Guided Grad-CAM" in found
    expected = engine.explain([image], "scorecam", "features")[0].cam
    np.testing.assert_allclose(
        found["Score-CAM (runs the model per channel)"].cam, expected, atol=1e-5
    )
    assert steps and steps[-1][0] == steps[-1][1]
