"""Tests for engine/methods/: the registry, what each method declares, Score-CAM's own maths.

Each formula's maps are compared with pytorch-grad-cam in tests/engine/test_cam.py.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from engine.cam import CamEngine
from engine.errors import InspectorError
from engine.methods import DEFAULT_METHOD, METHODS, MethodInputs, get_method, method_names
from engine.methods.gradient import gradcam
from engine.methods.registry import describe_method
from engine.methods.scorecam import scorecam
from tests.conftest import CountingNet, engine_records


def test_names_labels_and_order() -> None:
    assert method_names() == (
        "gradcam",
        "gradcam++",
        "xgradcam",
        "hirescam",
        "layercam",
        "eigencam",
        "guidedgradcam",
        "scorecam",
    )
    assert DEFAULT_METHOD in method_names()
    assert get_method("gradcam++").label == "Grad-CAM++"
    assert len({spec.label for spec in METHODS}) == len(METHODS)


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(InspectorError) as info:
        get_method("gradcam3")
    assert str(info.value) == f"unknown method 'gradcam3': use one of {', '.join(method_names())}"
    with pytest.raises(InspectorError, match="unknown method"):
        get_method(["gradcam"])  # an unhashable value from a hand-edited settings file


def test_raw_map_resolves_the_named_function() -> None:
    torch.manual_seed(0)
    inputs = MethodInputs(torch.rand(2, 4, 3, 3), torch.randn(2, 4, 3, 3))
    assert torch.equal(get_method("gradcam").raw_map(inputs), gradcam(inputs))
    for spec in METHODS:
        module, attribute = spec.function.split(":")
        assert callable(getattr(importlib.import_module(module), attribute)), spec.name


@pytest.mark.parametrize("spec", METHODS, ids=lambda spec: spec.name)
def test_declared_needs_are_what_a_map_costs(spec) -> None:
    """A method without gradients gets none; only a method with extra passes runs the model
    again after the capture pass."""
    torch.manual_seed(0)
    model = CountingNet().eval()
    engine = CamEngine(model, ["a", "b", "c"], *engine_records((32, 32), layer="features"), "cpu")
    seen: list[MethodInputs] = []
    original = spec.raw_map

    def spy(self, inputs: MethodInputs) -> torch.Tensor:
        seen.append(inputs)
        return original(inputs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(spec), "raw_map", spy)
        engine.explain([np.zeros((32, 32, 3), np.uint8)], spec.name)
    assert (seen[0].gradient is not None) == spec.needs_gradients
    assert (model.passes > 1) == spec.extra_passes


def test_scorecam_weights_channels_by_the_softmax_of_their_masked_scores() -> None:
    activation = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]], [[4.0, 0.0], [0.0, 0.0]]]])
    calls: list[tuple[int, int]] = []
    progress: list[tuple[int, int]] = []

    def masked_scores(image: int, masks: torch.Tensor) -> torch.Tensor:
        calls.append((image, masks.shape[0]))
        return masks.sum(dim=(1, 2))  # each mask's total: channel 0 keeps 2, channel 1 keeps 1

    inputs = MethodInputs(
        activation,
        input_size=(2, 2),  # the layer's own size: each mask is its channel scaled to [0, 1]
        masked_scores=masked_scores,
        max_batch=1,
        progress=lambda done, steps: progress.append((done, steps)),
    )
    weights = torch.softmax(torch.tensor([2.0, 1.0]), dim=0)
    expected = weights[0] * activation[0, 0] + weights[1] * activation[0, 1]
    torch.testing.assert_close(scorecam(inputs)[0], expected)
    assert calls == [(0, 1), (0, 1)]  # one channel per pass: the model takes one image
    assert progress == [(1, 2), (2, 2)]


def test_describe_method_names_label_and_keeps_unknown_names() -> None:
    assert describe_method("gradcam++") == "Grad-CAM++ (gradcam++)"
    assert describe_method("futurecam") == "futurecam"  # a session from a newer version
