"""Tests for engine/backends/onnx_graph.py: exports rewritten into convertible graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    images,
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


def _paddle_style_graph(path: Path) -> Path:
    """A classifier ending Softmax -> Identity -> Identity -> output, as Paddle2ONNX writes."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    weights = {
        "conv_w": rng.normal(0, 0.5, (6, 3, 3, 3)),
        "conv_b": rng.normal(0, 0.1, (6,)),
        "fc_w": rng.normal(0, 1.0, (6, len(NEU))),
        "fc_b": rng.normal(0, 0.1, (len(NEU),)),
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["p"], axis=1),
        helper.make_node("Identity", ["p"], ["p2"]),
        helper.make_node("Identity", ["p2"], ["probs"]),
    ]
    graph = helper.make_graph(
        nodes,
        "paddle_style",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, *SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", len(NEU)])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_softmax_behind_identities_is_removed(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = _paddle_style_graph(tmp_path / "paddle.onnx")
    engine = CamEngine.from_profile(profile_for(path, "onnx", classes=list(NEU)), "cpu")
    assert "removed the final Softmax: Grad-CAM uses the class scores before it" in (
        engine.load_info.notes
    )
    pictures = images()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": engine.prepare(pictures).numpy()})[0]
    for result, row in zip(engine.explain(pictures), expected, strict=True):
        # Once softmax, not twice: a double softmax squashes 0.9 to about 0.4 for 6 classes.
        for prediction in result.top_k:
            assert prediction.probability == pytest.approx(row[prediction.index], abs=1e-5)
