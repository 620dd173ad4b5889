"""Layer inventory of a model: names, types, output shapes, parameters and the default CAM layer."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from engine.errors import InspectorError
from engine.model_state import frozen_model
from engine.tokens import GridLayout, find_grid, prefix_tokens


@dataclass(frozen=True)
class LayerInfo:
    """One named module as the layer tree shows it."""

    name: str
    type_name: str
    output_shape: tuple[int, ...] | None  # without the batch dimension; None if not a tensor
    parameters: int
    depth: int
    grid: GridLayout | None = None  # how the output lies on the image; None: it does not

    @property
    def spatial(self) -> bool:
        """Whether the output is a map (NCHW, NHWC or patch tokens) a CAM can be computed on."""
        return self.grid is not None and self.grid.cells > 1


@dataclass(frozen=True)
class LayerInventory:
    """Every named module of a model, in tree order, and the default CAM target."""

    layers: tuple[LayerInfo, ...]
    default_layer: str | None
    # Layers with a map output, in the order the dummy pass finished them (last call counts).
    candidates: tuple[str, ...] = ()

    def get(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        raise InspectorError(unknown_layer_message(name, [i.name for i in self.layers]))


def unknown_layer_message(name: str, names: Sequence[str]) -> str:
    named = [n for n in names if n]
    # A converted graph names its nodes after the original layers, with more around them
    # (Keras's block14_sepconv2_act becomes .../block14_sepconv2_act/Relu): those first.
    containing = [n for n in named if name.lower() in n.lower()]
    close = (containing or difflib.get_close_matches(name, named, n=3))[:3]
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


def _output_shape(output: object, batch: int) -> tuple[int, ...] | None:
    if isinstance(output, torch.Tensor) and output.dim() > 0:
        # A different leading size means windows folded into the batch (Swin's window
        # attention): the rest is not one image's map, so it is left without a grid.
        return tuple(output.shape[1:]) if output.shape[0] == batch else None
    return None


def dummy_input(
    batch: int, in_channels: int, input_size: tuple[int, int], layout: str, device: torch.device
) -> torch.Tensor:
    """Zeros shaped like the model's input: (B, C, H, W), or (B, H, W, C) for "nhwc" models."""
    if layout == "nhwc":
        return torch.zeros(batch, *input_size, in_channels, device=device)
    return torch.zeros(batch, in_channels, *input_size, device=device)


def layer_inventory(
    model: nn.Module,
    input_size: tuple[int, int],
    in_channels: int = 3,
    reshape: str = "auto",
    layout: str = "nchw",
) -> LayerInventory:
    """Run one dummy forward pass with a hook on every module to record output shapes.

    The default target is the first norm of the last transformer block when the model has
    token or channels-last blocks (what pytorch-grad-cam recommends for ViT and Swin: the last
    block's output reaches the head through the class token only), else the module that
    finished last with a spatial output: for a CNN the outermost block before global pooling
    (``layer4`` in a ResNet). An output whose leading size is not the dummy batch's one
    image folds windows into the batch (Swin's window attention) and is no map.
    """
    batch = 1
    shapes: dict[str, tuple[int, ...] | None] = {}
    finish_order: list[str] = []
    varied: set[str] = set()  # called more than once with different output shapes
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            shape = _output_shape(output, batch)
            if name in shapes and shapes[name] != shape:
                varied.add(name)
            shapes[name] = shape
            finish_order.append(name)

        return hook

    named = list(model.named_modules())
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        for name, module in named:
            if name:
                handles.append(module.register_forward_hook(make_hook(name)))
        dummy = dummy_input(batch, in_channels, input_size, layout, device)
        with frozen_model(model), torch.no_grad():
            model(dummy)
    finally:
        for handle in handles:
            handle.remove()

    hint = prefix_tokens(model)

    def grid_of(shape: tuple[int, ...] | None) -> GridLayout | None:
        return None if shape is None else find_grid(shape, input_size, reshape, hint)

    layers = tuple(
        LayerInfo(
            name=name,
            type_name=type(module).__name__,
            output_shape=shapes.get(name),
            parameters=sum(p.numel() for p in module.parameters()),
            depth=name.count(".") + 1 if name else 0,
            grid=grid_of(shapes.get(name)),
        )
        for name, module in named
    )
    default = _last_block_norm(layers, finish_order) or _last_spatial(layers, finish_order)
    # A hook sees every call, so a module reused on other shapes (a dropout shared by Swin's
    # window attention and its MLP) cannot be captured as one map.
    candidates = tuple(n for n in _spatial_finishers(layers, finish_order) if n not in varied)
    return LayerInventory(layers=layers, default_layer=default, candidates=candidates)


def _last_spatial(layers: Sequence[LayerInfo], finish_order: Sequence[str]) -> str | None:
    finishers = _spatial_finishers(layers, finish_order)
    return finishers[-1] if finishers else None


def _spatial_finishers(layers: Sequence[LayerInfo], finish_order: Sequence[str]) -> tuple[str, ...]:
    by_name = {info.name: info for info in layers}
    # Adaptive pooling (VGG's avgpool to 7x7) resamples the last block rather than adding one.
    spatial = [
        n
        for n in finish_order
        if by_name[n].spatial and not by_name[n].type_name.startswith("Adaptive")
    ]
    # A module called twice (ResNet's shared ReLU) is placed where it finished last.
    return tuple(reversed(dict.fromkeys(reversed(spatial))))


def _last_block_norm(layers: Sequence[LayerInfo], finish_order: Sequence[str]) -> str | None:
    """The first norm of the last block holding two norms on tokens or channels-last maps.

    ViT's ``ln_1``/``norm1`` and Swin's ``norm1`` are that; CNN blocks hold BatchNorms on NCHW
    maps, and ConvNeXt one LayerNorm per block, so they have none and keep their default.
    """
    norms: dict[str, list[LayerInfo]] = {}
    for info in layers:
        parent = info.name.rpartition(".")[0]
        if parent and "Norm" in info.type_name:
            norms.setdefault(parent, []).append(info)
    firsts = {
        group[0].name
        for group in norms.values()
        if len(group) >= 2 and group[0].spatial and group[0].grid.kind != "nchw"
    }
    finished = [n for n in finish_order if n in firsts]
    return finished[-1] if finished else None


def format_inventory(inventory: LayerInventory) -> str:
    """The layer table as the 'layers' command prints it (like torchinfo)."""
    rows = [("layer", "type", "output shape", "params")]
    for info in inventory.layers:
        if not info.name:
            continue
        indent = "  " * (info.depth - 1)
        shape = "x".join(str(d) for d in info.output_shape) if info.output_shape else "-"
        if info.spatial and info.grid.kind == "nhwc":
            shape += " (NHWC)"
        elif info.spatial and info.grid.kind == "tokens":
            shape += f" ({info.grid.prefix}+{info.grid.height}x{info.grid.width} tokens)"
        mark = "  <- default" if info.name == inventory.default_layer else ""
        rows.append((indent + info.name, info.type_name, shape, f"{info.parameters:,}{mark}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * (sum(widths) + 16))
    return "\n".join(lines)
