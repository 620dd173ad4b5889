"""Models from other back ends: timm by name, ONNX converted to torch, TorchScript refused."""

from __future__ import annotations

import difflib
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.errors import InspectorError

TIMM_PREFIX = "timm:"
ONNX_ARCHITECTURE = "onnx"
# onnx2torch 1.5 lacks converters for several ops' opset-18+ versions (ReduceMean 18,
# Identity 19, Pad/Resize 18...), which torch's dynamo exporter emits; 17 has them all.
ONNX_OPSET = 17
_NOT_CONVERTIBLE = re.compile(r"operation_type='([^']+)', version=(\d+)")
_FIRST_LINE_MAX = 160


def timm_name(architecture: str) -> str | None:
    """The timm model name of a 'timm:<name>' architecture, None for other back ends."""
    if not architecture.startswith(TIMM_PREFIX):
        return None
    return architecture[len(TIMM_PREFIX) :].strip()


def first_line(exc: BaseException) -> str:
    """An exception's first line, shortened to fit a one-line message."""
    text = str(exc).strip().splitlines()
    line = (text[0] if text else "") or type(exc).__name__
    return line if len(line) <= _FIRST_LINE_MAX else line[: _FIRST_LINE_MAX - 3] + "..."


def _import_extra(module: str, extra: str, architecture: str) -> ModuleType:
    # Optional extras are imported only when a profile needs them: most users never do.
    try:
        return __import__(module)
    except ImportError as exc:
        raise InspectorError(
            f"architecture '{architecture}' needs the {module} package, which is not installed: "
            f"pip install 'gradcam-inspector[{extra}]'"
        ) from exc


# --- timm ------------------------------------------------------------------------------------


def build_timm(name: str, num_classes: int, in_chans: int = 3, meta: bool = False) -> nn.Module:
    """A timm model with random weights (pretrained=False: nothing is downloaded).

    With meta=True no memory is allocated and build errors propagate as they are, so the
    caller can fall back to a real build (some timm models read tensor values while built).
    """
    timm = _import_extra("timm", "timm", TIMM_PREFIX + name)
    _check_timm_name(timm, name)
    kwargs: dict[str, Any] = {"pretrained": False, "num_classes": num_classes, "in_chans": in_chans}
    if meta:
        with torch.device("meta"):
            return timm.create_model(name, **kwargs)
    try:
        return timm.create_model(name, **kwargs)
    except Exception as exc:  # timm raises assorted errors for unsupported argument combinations
        raise InspectorError(f"cannot build timm model '{name}': {first_line(exc)}") from exc


def _check_timm_name(timm: ModuleType, name: str) -> None:
    if name.startswith("hf-hub:") or name.startswith("hf_hub:"):
        raise InspectorError(
            f"timm model '{name}' would be downloaded from the Hugging Face hub; use the "
            "architecture's name (e.g. timm:resnet50) and your own weights file"
        )
    if name and timm.is_model(name):
        return
    close = difflib.get_close_matches(name.lower(), timm.list_models(), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models()"
    raise InspectorError(f"'{name}' is not a timm model ({hint})")


def first_conv_key(model_state: dict[str, torch.Tensor]) -> str | None:
    """The model's first convolution weight (4-D, in registration order): it fixes in_chans."""
    return next((k for k, v in model_state.items() if k.endswith(".weight") and v.ndim == 4), None)


# --- TorchScript -----------------------------------------------------------------------------


def check_not_torchscript(path: Path) -> None:
    """Refuse a torch.jit.save archive (whatever its extension) before torch.load sees it."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return  # torch.load reports a damaged file better
    # The test torch.load itself uses: TorchScript archives hold <root>/constants.pkl.
    if any(name.split("/", 1)[-1] == "constants.pkl" for name in names):
        raise InspectorError(
            f"'{path.name}' is a TorchScript model: it runs a compiled graph, so hooks cannot be "
            "attached to its layers; save model.state_dict() (or export to ONNX) instead"
        )


# --- ONNX ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX graph converted to a torch module, with what a probe pass found out."""

    model: nn.Module
    outputs: int  # size of the logits' class dimension
    max_batch: int | None  # 1 when the graph only runs one image at a time
    notes: tuple[str, ...]


def load_onnx(
    path: Path, size: tuple[int, int], layout: str = "nchw", activation: str = "softmax"
) -> OnnxModel:
    """Read an .onnx file, make common exports convertible, convert with onnx2torch, probe it.

    activation is the profile's [output] activation, which the engine applies to the logits.
    """
    onnx = _import_extra("onnx", "onnx", ONNX_ARCHITECTURE)
    _import_extra("onnx2torch", "onnx", ONNX_ARCHITECTURE)
    from onnx2torch import convert

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InspectorError(
            f"'{path.name}' is not a readable ONNX model: {first_line(exc)}"
        ) from exc
    if not proto.graph.node:  # protobuf reads many byte strings as an empty message
        raise InspectorError(f"'{path.name}' is not a readable ONNX model: it holds no graph")
    notes = list(_prepare_graph(proto, path, activation))
    declared = _declared_input(proto)
    try:
        model = convert(proto)
    except NotImplementedError as exc:
        raise InspectorError(_not_convertible(path, exc, proto)) from exc
    except Exception as exc:  # onnx2torch raises KeyError/ValueError on graphs it cannot map
        raise InspectorError(
            f"onnx2torch cannot convert '{path.name}' to torch: {first_line(exc)}"
        ) from exc
    model = model.to("cpu", torch.float32).eval()
    outputs, max_batch = _probe(model, path, size, layout, declared)
    if max_batch == 1:
        notes.append("the ONNX graph runs one image at a time (fixed batch size 1)")
    return OnnxModel(model, outputs, max_batch, tuple(notes))


def _prepare_graph(proto: Any, path: Path, activation: str) -> list[str]:
    """Rewrite a graph in place into the forms onnx2torch converts, keeping what it computes."""
    notes = []
    opset = _default_opset(proto)
    _decompose_gelu(proto.graph)
    if opset > ONNX_OPSET:
        from onnx import version_converter

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
    from onnx import helper

    nodes = []
    for index, node in enumerate(graph.node):
        if node.op_type == "Gelu" and node.domain in ("", "ai.onnx"):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            tanh = attrs.get("approximate", b"none") in (b"tanh", "tanh")
            nodes += _gelu_nodes(graph, node, f"_gelu{index}_", tanh)
        else:
            nodes.append(node)
    _replace_nodes(graph, nodes)


def _gelu_nodes(graph: Any, node: Any, tag: str, tanh: bool) -> list[Any]:
    from onnx import helper, numpy_helper

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


def _default_opset(proto: Any) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _constants_to_initializers(graph: Any) -> None:
    # onnx2torch reads Conv/Gemm weights and many shape inputs from initializers only;
    # exports after constant folding (and tf2onnx) often hold them in Constant nodes.
    from onnx import helper, numpy_helper

    kept = []
    for node in graph.node:
        tensor = _constant_tensor(node, helper, numpy_helper)
        if tensor is None:
            kept.append(node)
            continue
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
    _replace_nodes(graph, kept)


def _constant_tensor(node: Any, helper: ModuleType, numpy_helper: ModuleType) -> Any | None:
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


def _strip_final_activation(graph: Any, path: Path, activation: str) -> str | None:
    """Remove a final Softmax/Sigmoid (the engine applies it); the op's name if one went."""
    # Keras classifiers end in one; Grad-CAM differentiates the class score before it (the
    # Keras Grad-CAM example removes it too), and a second softmax would flatten the scores.
    if len(graph.output) != 1:
        return None
    last = next((n for n in graph.node if graph.output[0].name in n.output), None)
    if last is None or last.op_type not in ("Softmax", "Sigmoid"):
        return None
    if last.op_type.lower() != activation:
        raise InspectorError(
            f"'{path.name}' ends in a {last.op_type}: set [output] activation = "
            f'"{last.op_type.lower()}" in the profile'
        )
    graph.output[0].name = last.input[0]
    _replace_nodes(graph, [n for n in graph.node if n is not last])
    return last.op_type


def _replace_nodes(graph: Any, nodes: list[Any]) -> None:
    kept = [type(n)() for n in nodes]
    for copy, node in zip(kept, nodes, strict=True):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(kept)


def _declared_input(proto: Any) -> tuple[int | str, ...] | None:
    """The image input's declared shape (ints, or names for free dimensions), if any."""
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def _not_convertible(path: Path, exc: NotImplementedError, proto: Any) -> str:
    found = _NOT_CONVERTIBLE.search(str(exc))
    opset = _default_opset(proto)
    if found is None:
        return f"onnx2torch cannot convert '{path.name}' (opset {opset}): {first_line(exc)}"
    op, version = found.groups()
    return (
        f"'{path.name}' uses ONNX op {op} (version {version}, model opset {opset}), which "
        "onnx2torch cannot convert to torch; export with an opset from 13 to 17 without that op"
    )


def _probe(
    model: nn.Module,
    path: Path,
    size: tuple[int, int],
    layout: str,
    declared: tuple[int | str, ...] | None,
) -> tuple[int, int | None]:
    """The number of outputs, and 1 when the converted graph cannot run a batch of two."""
    channels = _channels(model, declared, layout)
    shape = (*size, channels) if layout == "nhwc" else (channels, *size)
    images = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            singles = [_logits(model(images[i : i + 1])) for i in range(2)]
        except Exception as exc:  # shape errors from inside the converted graph
            raise InspectorError(_input_mismatch(path, shape, declared, layout, exc)) from exc
        if singles[0].ndim != 2:
            raise InspectorError(
                f"'{path.name}' outputs shape {list(singles[0].shape)}, not (batch, classes)"
            )
        try:
            batched = _logits(model(images))
        except Exception:  # a batch dimension fixed at 1 inside the graph (e.g. Reshape [1, -1])
            return singles[0].shape[1], 1
    together = torch.cat(singles)
    # Loose enough for batched kernels' rounding; a graph that mixes images is far off.
    fits = batched.shape == together.shape and torch.allclose(
        batched, together, rtol=1e-3, atol=1e-3
    )
    return singles[0].shape[1], None if fits else 1


def _input_mismatch(
    path: Path,
    shape: tuple[int, ...],
    declared: tuple[int | str, ...] | None,
    layout: str,
    exc: Exception,
) -> str:
    if declared is not None and tuple(declared[1:]) == shape:
        # The input is what the graph asks for: the conversion itself is at fault.
        return (
            f"'{path.name}' converted by onnx2torch fails on its own input shape: {first_line(exc)}"
        )
    wanted = "x".join(str(d) for d in declared) if declared else "unknown"
    # TensorFlow exports take (batch, height, width, channels).
    channels_last = declared is not None and len(declared) == 4 and declared[3] in (1, 3)
    hint = (
        'set [preprocess] layout = "nhwc"'
        if layout == "nchw" and channels_last and declared[1] not in (1, 3)
        else "check [preprocess] size and layout"
    )
    return (
        f"'{path.name}' does not run on a 1x{'x'.join(map(str, shape))} input "
        f"(it declares {wanted}); {hint}: {first_line(exc)}"
    )


def _channels(model: nn.Module, declared: tuple[int | str, ...] | None, layout: str) -> int:
    if declared is not None and len(declared) == 4:
        value = declared[3] if layout == "nhwc" else declared[1]
        if value in (1, 3):  # what the engine feeds; anything else is a wrong layout
            return int(value)
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def _logits(output: Any) -> torch.Tensor:
    if isinstance(output, list | tuple):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise InspectorError(f"the ONNX model returned a {type(output).__name__}, not a tensor")
    return output
