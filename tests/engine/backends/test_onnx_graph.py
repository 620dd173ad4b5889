"""Tests for engine/backends/onnx_graph.py: exports rewritten into convertible graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from engine.cam import CamEngine
from engine.checkpoint import load_model
from engine.errors import InspectorError
from tests.conftest import NEU
from tests.engine.backends.common import (
    SIZE,
    assert_same_cams,
    export,
    profile_for,
    reference_engine,
)


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
