"""ONNX graph rewriting: common exports made convertible by onnx2torch, computing the same."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from onnx import helper, numpy_helper, version_converter

from engine.errors import InspectorError

# onnx2torch 1.5 lacks converters for several ops' opset-18+ versions (ReduceMean 18,
# Identity 19, Pad/Resize 18...), which torch's dynamo exporter emits; 17 has them all.
ONNX_OPSET = 17


def prepare_graph(proto: Any, path: Path, activation: str) -> list[str]:
    """Rewrite a graph in place into the forms onnx2torch converts, keeping what it computes."""
    notes = []
    opset = default_opset(proto)
    _decompose_gelu(proto.graph)
    if opset > ONNX_OPSET:
        _constant_of_shape_as_expand(proto.graph)
        try:
            converted = version_converter.convert_version(proto, ONNX_OPSET)
        except Exception:  # no adapter for some op: onnx2torch then names it
            converted = None
        if converted is not None:
            proto.CopyFrom(converted)
            notes.append(f"converted the ONNX graph from opset {opset} to {ONNX_OPSET}")
    graph = proto.graph
    _constants_to_initializers(graph)
    _bypass_identities(graph)
    _drop_reshape_allowzero(graph)
    final = _strip_final_activation(graph, path, activation)
    if final:
        notes.append(f"removed the final {final}: Grad-CAM uses the class scores before it")
    return notes


def _decompose_gelu(graph: Any) -> None:
    """Rewrite opset-20 Gelu nodes (torch's dynamo exports of ConvNeXt, ViT) as Erf/Tanh math.

    No opset before 20 has Gelu, so without this the whole graph could not be converted down.
    """
    nodes = []
    for index, node in enumerate(graph.node):
        if node.op_type == "Gelu" and node.domain in ("", "ai.onnx"):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            tanh = attrs.get("approximate", b"none") in (b"tanh", "tanh")
            nodes += _gelu_nodes(graph, node, f"_gelu{index}_", tanh)
        else:
            nodes.append(node)
    _replace_nodes(graph, nodes)


def _constant_of_shape_as_expand(graph: Any) -> None:
    """Rewrite ConstantOfShape as Expand of its value: onnx has no adapter from its opset-20
    version down (the legacy exporter's ViT at opset 20 has one), Expand needs none."""
    nodes = []
    for index, node in enumerate(graph.node):
        if node.op_type != "ConstantOfShape" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        array = np.zeros(1, np.float32) if value is None else numpy_helper.to_array(value)
        name = f"_constant_of_shape{index}_value"
        graph.initializer.append(numpy_helper.from_array(array.reshape(1), name))
        nodes.append(
            helper.make_node("Expand", [name, node.input[0]], [node.output[0]], name=node.name)
        )
    _replace_nodes(graph, nodes)


def _gelu_nodes(graph: Any, node: Any, tag: str, tanh: bool) -> list[Any]:
    constants = {"half": 0.5, "one": 1.0, "sqrt2": 2.0**0.5, "three": 3.0}
    constants |= {"k": (2.0 / math.pi) ** 0.5, "cubic": 0.044715}
    for key, value in constants.items():
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), tag + key))
    x, t = node.input[0], tag
    if tanh:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        inner = [
            helper.make_node("Pow", [x, t + "three"], [t + "x3"]),
            helper.make_node("Mul", [t + "x3", t + "cubic"], [t + "cx3"]),
            helper.make_node("Add", [x, t + "cx3"], [t + "poly"]),
            helper.make_node("Mul", [t + "poly", t + "k"], [t + "arg"]),
            helper.make_node("Tanh", [t + "arg"], [t + "f"]),
        ]
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        inner = [
            helper.make_node("Div", [x, t + "sqrt2"], [t + "arg"]),
            helper.make_node("Erf", [t + "arg"], [t + "f"]),
        ]
    return [
        *inner,
        helper.make_node("Add", [t + "f", t + "one"], [t + "sum"]),
        helper.make_node("Mul", [x, t + "sum"], [t + "xs"]),
        helper.make_node("Mul", [t + "xs", t + "half"], [node.output[0]], name=node.name),
    ]


def default_opset(proto: Any) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _constants_to_initializers(graph: Any) -> None:
    # onnx2torch reads Conv/Gemm weights and many shape inputs from initializers only;
    # exports after constant folding (and tf2onnx) often hold them in Constant nodes.
    kept = []
    for node in graph.node:
        tensor = _constant_tensor(node)
        if tensor is None:
            kept.append(node)
            continue
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
    _replace_nodes(graph, kept)


def _constant_tensor(node: Any) -> Any | None:
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.attribute) != 1:
        return None
    attr = node.attribute[0]
    value = helper.get_attribute_value(attr)
    dtypes = {"value_float": np.float32, "value_floats": np.float32}
    dtypes |= {"value_int": np.int64, "value_ints": np.int64}
    if attr.name == "value":
        copy = type(value)()
        copy.CopyFrom(value)
        return copy
    if attr.name in dtypes:
        return numpy_helper.from_array(np.array(value, dtype=dtypes[attr.name]))
    return None  # strings and sparse tensors: left to onnx2torch


def _bypass_identities(graph: Any) -> None:
    # The legacy exporter shares equal tensors (e.g. folded Conv biases) through Identity nodes,
    # and onnx2torch's Conv then fails to find its bias among the initializers.
    outputs = {o.name for o in graph.output}
    renamed: dict[str, str] = {}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            renamed[node.output[0]] = node.input[0]
        else:
            kept.append(node)

    def source(name: str) -> str:
        while name in renamed:
            name = renamed[name]
        return name

    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = source(name)
    _replace_nodes(graph, kept)


def _drop_reshape_allowzero(graph: Any) -> None:
    # allowzero=1 (the dynamo exporter's default) differs from 0 only for a literal 0 in the
    # target shape, which an image classifier never has; onnx2torch only implements 0.
    for node in graph.node:
        if node.op_type == "Reshape":
            kept = [a for a in node.attribute if a.name != "allowzero"]
            del node.attribute[:]
            node.attribute.extend(kept)


# Ops that pass their input through unchanged at inference: Paddle2ONNX ends graphs in
# Softmax -> Identity -> output, and training exports leave Dropout in place.
_NO_OPS = ("Identity", "Dropout")


def _strip_final_activation(graph: Any, path: Path, activation: str) -> str | None:
    """Remove a final Softmax/Sigmoid (the engine applies it); the op's name if one went.

    The activation may sit behind a chain of no-op nodes (Identity, Dropout), which go too.
    """
    # Keras classifiers end in one; Grad-CAM differentiates the class score before it (the
    # Keras Grad-CAM example removes it too), and a second softmax would flatten the scores.
    if len(graph.output) != 1:
        return None
    chain = _final_chain(graph, graph.output[0].name)
    if not chain or chain[-1].op_type not in ("Softmax", "Sigmoid"):
        return None
    last = chain[-1]
    if last.op_type.lower() != activation:
        raise InspectorError(
            f"'{path.name}' ends in a {last.op_type}: set [output] activation = "
            f'"{last.op_type.lower()}" in the profile'
        )
    graph.output[0].name = last.input[0]
    _replace_nodes(graph, [n for n in graph.node if all(n is not c for c in chain)])
    return last.op_type


def _final_chain(graph: Any, output: str) -> list[Any]:
    """The nodes from the output back through no-ops to the first real op, output end first.

    Empty when a tensor of the chain is also read elsewhere: removing it would change that.
    """
    producers = {name: node for node in graph.node for name in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    chain: list[Any] = []
    name = output
    while name in producers:
        node = producers[name]
        if chain and readers.get(name, 0) != 1:
            return []
        chain.append(node)
        if node.op_type not in _NO_OPS or not node.input:
            return chain
        name = node.input[0]
    return []


def _replace_nodes(graph: Any, nodes: list[Any]) -> None:
    kept = [type(n)() for n in nodes]
    for copy, node in zip(kept, nodes, strict=True):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(kept)


def declared_input(proto: Any) -> tuple[int | str, ...] | None:
    """The image input's declared shape (ints, or names for free dimensions), if any."""
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)
