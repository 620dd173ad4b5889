"""Comparison grids: one image's map by every capture-drawn method, or at several layers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from engine.cam import CamEngine, CamResult, Capture, TargetSpec
from engine.choices import Compare
from engine.figures import render_tiles
from engine.layers import LayerInventory
from engine.localization import Box, pointing_hit
from engine.methods.registry import (
    METHODS,
    CancelCheck,
    ProgressCallback,
    Smoothing,
    get_method,
)
from engine.render import RenderStyle, render_overlay

MAX_TILE = 320  # px of a tile's longer side: a grid of 2000-px overlays would be unwieldy
MAX_LAYERS = 6


@dataclass(frozen=True)
class CompareRequest:
    """What to compare and how each tile is explained and drawn."""

    kind: Compare
    method: str
    layer: str
    target: TargetSpec
    style: RenderStyle
    smoothing: Smoothing | None = None  # None: the profile's
    extra_passes: bool = False  # methods: also Score-CAM and Guided Grad-CAM (slow)


def capture_methods(extra_passes: bool = False) -> tuple[str, ...]:
    """Methods drawn from a stored capture without running the model again (with
    ``extra_passes``, every method: the others run the model from the capture's input)."""
    return tuple(spec.name for spec in METHODS if extra_passes or not spec.extra_passes)


def compare_layers(inventory: LayerInventory, maximum: int = MAX_LAYERS) -> list[str]:
    """Up to ``maximum`` layers from the input to the logits: the shallowest depth of the layer
    tree with at least two spatial layers, keeping the last layer of each grid size."""
    for depth in (1, 2, 3):
        by_grid: dict[tuple[int, int], str] = {}
        for info in inventory.layers:
            if info.depth == depth and info.spatial:
                by_grid.pop((info.grid.height, info.grid.width), None)
                by_grid[(info.grid.height, info.grid.width)] = info.name
        if len(by_grid) >= 2:
            return list(by_grid.values())[-maximum:]
    return [inventory.default_layer] if inventory.default_layer else []


def _tile(image: np.ndarray, result: CamResult, style: RenderStyle, boxes: Sequence[Box]):
    overlay = render_overlay(image, result.cam, style, boxes)
    height, width = overlay.shape[:2]
    factor = MAX_TILE / max(height, width)
    if factor < 1:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        overlay = cv2.resize(overlay, size, interpolation=cv2.INTER_AREA)
    return overlay


def tile_labels(results: dict[str, CamResult], boxes: Sequence[Box]) -> list[str]:
    """Each tile's name, with its pointing-game hit or miss where the image has boxes."""
    labels = []
    for name, result in results.items():
        hit = pointing_hit(result.cam, boxes)
        labels.append(name if hit is None else f"{name}: {'hit' if hit else 'miss'}")
    return labels


def compare_results(
    engine: CamEngine,
    images: Sequence[np.ndarray],
    request: CompareRequest,
    ground_truth: Sequence[int | None] | None = None,
    cancel: CancelCheck | None = None,
    progress: ProgressCallback | None = None,
    captures: Sequence[Capture] | None = None,
) -> list[dict[str, CamResult]]:
    """Each image's maps keyed by the tile's name (a method's label, or a layer name).

    ``captures``: the images' passes at the request's layer and target, already made (the
    window's cache): the methods grid then runs no model pass of its own.
    """
    blur = request.style.blur_sigma
    if request.kind == Compare.LAYERS:
        layers = compare_layers(engine.inventory)
        if request.layer not in layers:
            layers.append(request.layer)
        return engine.explain_layers(
            images,
            request.method,
            layers,
            request.target,
            ground_truth,
            blur,
            smoothing=request.smoothing,
        )
    smooth = request.smoothing or engine.cam.smoothing
    if smooth.aug:  # six passes per method: a capture holds one
        maps = {
            get_method(name).label: engine.explain(
                images,
                name,
                request.layer,
                target=request.target,
                ground_truth=ground_truth,
                blur_sigma=blur,
                cancel=cancel,
                smoothing=smooth,
            )
            for name in capture_methods(request.extra_passes)
        }
        return [{label: found[i] for label, found in maps.items()} for i in range(len(images))]
    if captures is None:
        captures = engine.capture(images, request.layer, request.target, ground_truth)
    eigen = smooth.eigen
    return [
        {
            get_method(name).label: engine.cam_from_capture(
                capture, name, request.layer, blur, cancel, progress, eigen_smooth=eigen
            )
            for name in capture_methods(request.extra_passes)
        }
        for capture in captures
    ]


def compare_figure(
    image: np.ndarray,
    results: dict[str, CamResult],
    style: RenderStyle,
    boxes: Sequence[Box] = (),
    title: str = "",
) -> np.ndarray:
    """The grid: one labelled overlay per map (with its pointing-game hit where boxes exist)."""
    tiles = [_tile(image, result, style, boxes) for result in results.values()]
    return render_tiles(tiles, tile_labels(results, boxes), columns=min(4, len(tiles)), title=title)
