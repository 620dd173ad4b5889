"""Layer inventory of a model: names, types, output shapes, parameters and the default CAM layer."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from engine.errors import InspectorError
from engine.state import frozen_model


@dataclass(frozen=True)
class LayerInfo:
    """One named module as the layer tree shows it."""

    name: str
    type_name: str
    output_shape: tuple[int, ...] | None  # without the batch dimension; None if not a tensor
    parameters: int
    depth: int

    @property
    def spatial(self) -> bool:
        """Whether the output is a (C, H, W) map that a CAM can be computed on."""
        shape = self.output_shape
        return shape is not None and len(shape) == 3 and shape[1] * shape[2] > 1


@dataclass(frozen=True)
class LayerInventory:
    """Every named module of a model, in tree order, and the default CAM target."""

    layers: tuple[LayerInfo, ...]
    default_layer: str | None

    def get(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        raise InspectorError(unknown_layer_message(name, [i.name for i in self.layers]))


def unknown_layer_message(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, [n for n in names if n], n=3)
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else "; run the 'layers' command to list them"
    )
    return f"the model has no layer '{name}'{hint}"


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The module with this dotted named_modules() name, or a clear error."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        raise InspectorError(unknown_layer_message(name, list(modules)))
    return modules[name]


def _output_shape(output: object) -> tuple[int, ...] | None:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape[1:])
    return None


def layer_inventory(
    model: nn.Module, input_size: tuple[int, int], in_channels: int = 3
) -> LayerInventory:
    """Run one dummy forward pass with a hook on every module to record output shapes.

    The default target is the module that finished last with a spatial output: for a CNN
    that is the outermost block before global pooling (``layer4`` in a ResNet).
    """
    shapes: dict[str, tuple[int, ...] | None] = {}
    finish_order: list[str] = []
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            shapes[name] = _output_shape(output)
            finish_order.append(name)

        return hook

    named = list(model.named_modules())
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        for name, module in named:
            if name:
                handles.append(module.register_forward_hook(make_hook(name)))
        dummy = torch.zeros(1, in_channels, *input_size, device=device)
        with frozen_model(model), torch.no_grad():
            model(dummy)
    finally:
        for handle in handles:
            handle.remove()

    layers = tuple(
        LayerInfo(
            name=name,
            type_name=type(module).__name__,
            output_shape=shapes.get(name),
            parameters=sum(p.numel() for p in module.parameters()),
            depth=name.count(".") + 1 if name else 0,
        )
        for name, module in named
    )
    by_name = {info.name: info for info in layers}
    # Adaptive pooling (VGG's avgpool to 7x7) resamples the last block rather than adding one.
    spatial_finishers = [
        n
        for n in finish_order
        if by_name[n].spatial and not by_name[n].type_name.startswith("Adaptive")
    ]
    default = spatial_finishers[-1] if spatial_finishers else None
    return LayerInventory(layers=layers, default_layer=default)


def format_inventory(inventory: LayerInventory) -> str:
    """The layer table as the 'layers' command prints it (like torchinfo)."""
    rows = [("layer", "type", "output shape", "params")]
    for info in inventory.layers:
        if not info.name:
            continue
        indent = "  " * (info.depth - 1)
        shape = "x".join(str(d) for d in info.output_shape) if info.output_shape else "-"
        mark = "  <- default" if info.name == inventory.default_layer else ""
        rows.append((indent + info.name, info.type_name, shape, f"{info.parameters:,}{mark}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * (sum(widths) + 16))
    return "\n".join(lines)
