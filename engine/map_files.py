"""The files one explained image becomes (heatmap, overlay, panels, raw map): batch and window."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.export import write_error, write_npy, write_png
from engine.localization import Box
from engine.render import RenderStyle, render_heatmap, render_overlay, render_panels

if TYPE_CHECKING:  # engine.cam imports torch; writing files needs only the finished result
    from engine.cam import CamResult


@dataclass(frozen=True)
class MapFiles:
    """Which files to write besides the heatmap and overlay, and whether to fsync them."""

    panels: bool = False
    raw: bool = False
    durable: bool = True  # False for batch files, which a rerun makes again


def map_title(result: CamResult) -> str:
    """The caption of a three-panel figure: prediction, target, method and layer, and a flag
    when the map is flat (the reason is in results.csv and the window)."""
    pred = result.predicted
    flag = " | WARNING: flat map" if result.warning else ""
    return (
        f"pred: {pred.name} {pred.probability:.2f} | target: {result.target_name} | "
        f"{result.method} @ {result.layer}{flag}"
    )


def safe_layer_name(layer: str) -> str:
    """A layer name usable in a file name: ONNX names are graph paths ('layer4/1/relu_1/Relu')."""
    return re.sub(r"[^\w.-]+", "_", layer)


def write_map_files(
    stem: Path,
    image: np.ndarray,
    result: CamResult,
    style: RenderStyle,
    boxes: Sequence[Box] = (),
    files: MapFiles = MapFiles(),
) -> list[Path]:
    """Write <stem>_heatmap.png, _overlay.png and, as ``files`` says, _panels.png and _cam.npy.

    Each file is atomic (temp file, then rename); returns the paths in the order written. A
    failure raises InspectorError after the files already written, which stay whole.
    """
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a file already has the sub-folder's name
        raise write_error(stem.parent, exc, action="create folder") from exc
    written: list[Path] = []

    def put(suffix: str, write: Callable[..., None], data: np.ndarray) -> None:
        path = stem.with_name(stem.name + suffix)
        write(path, data, durable=files.durable)
        written.append(path)

    put("_heatmap.png", write_png, render_heatmap(result.cam, style.colormap))
    put("_overlay.png", write_png, render_overlay(image, result.cam, style, boxes))
    if files.panels:
        figure = render_panels(image, result.cam, style, map_title(result), boxes)
        put("_panels.png", write_png, figure)
    if files.raw:
        put("_cam.npy", write_npy, result.cam.astype(np.float32, copy=False))
    return written


def map_file_paths(stem: Path, files: MapFiles = MapFiles()) -> list[Path]:
    """The paths write_map_files writes for ``stem``, in its order (a resumed run checks them)."""
    suffixes = ["_heatmap.png", "_overlay.png"]
    suffixes += ["_panels.png"] if files.panels else []
    suffixes += ["_cam.npy"] if files.raw else []
    return [stem.with_name(stem.name + suffix) for suffix in suffixes]
