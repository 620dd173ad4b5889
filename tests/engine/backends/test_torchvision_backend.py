"""Tests for engine/backends/torchvision_backend.py: torchvision classifiers by name."""

from __future__ import annotations

import pytest
import torch

from engine.backends.torchvision_backend import TorchvisionBackend, classifier_names
from engine.errors import InspectorError

BACKEND = TorchvisionBackend()


def test_classifier_names_are_the_classification_models() -> None:
    names = classifier_names()
    assert {"resnet18", "vit_b_16", "inception_v3"} <= set(names)
    assert "fasterrcnn_resnet50_fpn" not in names  # a detector is not an image classifier


@pytest.mark.parametrize(
    ("architecture", "problem"),
    [
        ("resnet18", None),
        ("fasterrcnn_resnet50_fpn", "'fasterrcnn_resnet50_fpn' is not an image classifier"),
        ("ResNet50", "'ResNet50' is not a torchvision classifier (did you mean 'resnet50'?)"),
        (
            "qwertyuiop",
            "'qwertyuiop' is not a torchvision classifier (see torchvision.models.list_models())",
        ),
    ],
)
def test_problem(architecture: str, problem: str | None) -> None:
    assert BACKEND.problem(architecture) == problem


def test_build_drops_the_auxiliary_head_and_allocates_nothing_on_meta() -> None:
    model = BACKEND.build("inception_v3", 4, meta=True)
    assert model.AuxLogits is None  # Grad-CAM needs one output
    assert model.fc.out_features == 4
    assert {p.device for p in model.parameters()} == {torch.device("meta")}
    # resnet takes neither aux_logits nor init_weights: both are dropped and it still builds.
    real = BACKEND.build("resnet18", 3, init=False)
    assert real.fc.out_features == 3 and real.fc.weight.device == torch.device("cpu")


def test_build_of_an_unknown_name_is_an_inspector_error() -> None:
    with pytest.raises(InspectorError, match=r"^cannot build architecture 'resnet19': "):
        BACKEND.build("resnet19", 3)
