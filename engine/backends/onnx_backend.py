"""ONNX models ("onnx"): the .onnx file converted to a torch module by onnx2torch, then probed.

torch, onnx and onnx2torch are imported inside the functions that use them (see base.py).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.backends.base import Backend
from engine.errors import InspectorError, first_line

if TYPE_CHECKING:
    import torch
    from torch import nn

    from engine.checkpoint import LoadedModel
    from engine.profile import ModelProfile

ARCHITECTURE = "onnx"
# What the probe feeds when the declared input's layout disagrees with the profile's.
DEFAULT_SIZE = (224, 224)
_NOT_CONVERTIBLE = re.compile(r"operation_type='([^']+)', version=(\d+)")


class OnnxBackend(Backend):
    """An ONNX classifier; hooks work on the converted module's layers (the graph's nodes)."""

    name = "onnx"
    syntax = ARCHITECTURE
    extra = "onnx"
    packages = ("onnx", "onnx2torch")
    suffixes = (".onnx",)
    choices = (ARCHITECTURE,)
    file_architecture = ARCHITECTURE

    def matches(self, architecture: str) -> bool:
        return architecture == ARCHITECTURE

    def load(self, profile: ModelProfile, trust_pickle: bool) -> LoadedModel:
        # trust_pickle is moot: an ONNX file holds no pickled objects.
        from engine.checkpoint import LoadedModel, check_file, resolve_classes, sha256_of

        if profile.weights is None:
            raise InspectorError('architecture "onnx" needs weights = "<your model>.onnx"')
        check_file(profile.weights)
        self.require("onnx", ARCHITECTURE)
        self.require("onnx2torch", ARCHITECTURE)
        pre = profile.preprocess
        converted = convert_onnx(
            profile.weights, pre.size, pre.layout, profile.output.activation, pre.size_given
        )
        classes, notes = resolve_classes(
            profile, converted.outputs, "the ONNX output", "the ONNX model's output"
        )
        return LoadedModel(
            converted.model,
            classes,
            sha256_of(profile.weights),
            (*converted.notes, *notes),
            converted.max_batch,
            dataclasses.replace(pre, size=converted.size, size_given=True),
        )

    def refusal(self, path: Path) -> str | None:
        if path.suffix.lower() in self.suffixes:
            return f"'{path.name}' is an ONNX model: set architecture = \"onnx\""
        return None


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX graph converted to a torch module, with what a probe pass found out."""

    model: nn.Module
    outputs: int  # size of the logits' class dimension
    max_batch: int | None  # 1 when the graph only runs one image at a time
    notes: tuple[str, ...]
    size: tuple[int, int]  # the input's (height, width): the graph's own when it fixes one


def convert_onnx(
    path: Path,
    size: tuple[int, int],
    layout: str = "nchw",
    activation: str = "softmax",
    size_given: bool = True,
) -> OnnxModel:
    """Read an .onnx file, make common exports convertible, convert with onnx2torch, probe it.

    activation is the profile's [output] activation, which the engine applies to the logits.
    size_given says whether the profile named ``size``: a graph with a fixed input size uses
    its own (a different named size is an error), one with a free size needs it named.
    """
    import torch
    from onnx2torch import convert  # looked up at each call: tests replace it

    from engine.backends.onnx_graph import declared_input, prepare_graph

    proto = _read(path)
    notes = list(prepare_graph(proto, path, activation))
    declared = declared_input(proto)
    try:
        model = convert(proto)
    except NotImplementedError as exc:
        raise InspectorError(_not_convertible(path, exc, proto)) from exc
    except Exception as exc:  # onnx2torch raises KeyError/ValueError on graphs it cannot map
        raise InspectorError(
            f"onnx2torch cannot convert '{path.name}' to torch: {first_line(exc)}"
        ) from exc
    model = model.to("cpu", torch.float32).eval()
    size = input_size(path, declared, layout, size if size_given else None)
    outputs, max_batch = _probe(model, path, size, layout, declared)
    if max_batch == 1:
        notes.append("the ONNX graph runs one image at a time (fixed batch size 1)")
    return OnnxModel(model, outputs, max_batch, tuple(notes), size)


def input_size(
    path: Path, declared: tuple[int | str, ...] | None, layout: str, named: tuple[int, int] | None
) -> tuple[int, int]:
    """The (height, width) to feed: the graph's fixed size, else the profile's named one.

    Never a guess: a model run at a size it was not made for predicts wrongly and says nothing.
    """
    if _layout_mismatch(declared, layout):
        return named or DEFAULT_SIZE  # the probe fails and its message names the layout
    fixed = fixed_size(declared, layout)
    if fixed is not None and named is not None and named != fixed:
        raise InspectorError(
            f"'{path.name}' takes a fixed {fixed[0]}x{fixed[1]} input, but the profile's "
            f"[preprocess] size is {list(named)}: set size = {list(fixed)} or leave it out"
        )
    if fixed is not None:
        return fixed
    if named is None:
        raise InspectorError(
            f"'{path.name}' takes any input size: set [preprocess] size = [height, width] in "
            "the profile to the size the model was trained at"
        )
    return named


def _layout_mismatch(declared: tuple[int | str, ...] | None, layout: str) -> bool:
    if declared is None or len(declared) != 4:
        return False
    return declared[3 if layout == "nhwc" else 1] not in (1, 3)


def fixed_size(declared: tuple[int | str, ...] | None, layout: str) -> tuple[int, int] | None:
    """The image input's fixed (height, width), None when either side is free or unknown."""
    if declared is None or len(declared) != 4:
        return None
    sides = declared[1:3] if layout == "nhwc" else declared[2:4]
    if all(isinstance(side, int) and side > 0 for side in sides):
        return (int(sides[0]), int(sides[1]))
    return None


def _read(path: Path) -> Any:
    import onnx

    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InspectorError(
            f"'{path.name}' is not a readable ONNX model: {first_line(exc)}"
        ) from exc
    if not proto.graph.node:  # protobuf reads many byte strings as an empty message
        raise InspectorError(f"'{path.name}' is not a readable ONNX model: it holds no graph")
    return proto


def _not_convertible(path: Path, exc: NotImplementedError, proto: Any) -> str:
    from engine.backends.onnx_graph import default_opset

    found = _NOT_CONVERTIBLE.search(str(exc))
    opset = default_opset(proto)
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
    import torch

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
    from torch import nn

    if declared is not None and len(declared) == 4:
        value = declared[3] if layout == "nhwc" else declared[1]
        if value in (1, 3):  # what the engine feeds; anything else is a wrong layout
            return int(value)
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def _logits(output: Any) -> torch.Tensor:
    import torch

    if isinstance(output, list | tuple):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise InspectorError(f"the ONNX model returned a {type(output).__name__}, not a tensor")
    return output
