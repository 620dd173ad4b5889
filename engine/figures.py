"""Labelled tile grids: the sanity check's cascade strip and the comparison grids."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from engine.errors import InspectorError

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT = (20, 20, 20)
MIN_TILE = 160  # tiles smaller than this are upscaled so their labels stay readable


def _fit(text: str, scale: float, max_width: int) -> str:
    while len(text) > 3 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > max_width:
        text = text[:-4] + "..."
    return text


def render_tiles(
    tiles: Sequence[np.ndarray], labels: Sequence[str], columns: int, title: str = ""
) -> np.ndarray:
    """RGB uint8 tiles of one size laid out ``columns`` to a row, each under its label, on
    white, with an optional title line; tiles under ``MIN_TILE`` px are upscaled."""
    if not tiles or len(tiles) != len(labels):
        raise InspectorError("a tile grid needs one label per tile and at least one tile")
    height, width = tiles[0].shape[:2]
    factor = max(1, -(-MIN_TILE // min(height, width)))
    size = (width * factor, height * factor)
    scaled = [cv2.resize(t, size, interpolation=cv2.INTER_NEAREST) for t in tiles]
    tile_h, tile_w = size[1], size[0]
    scale = 0.45
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, scale, 1)
    margin, line = 8, text_h + baseline + 6
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    title_h = line if title else 0
    canvas = np.full(
        (
            margin + title_h + rows * (line + tile_h + margin),
            margin + columns * (tile_w + margin),
            3,
        ),
        255,
        np.uint8,
    )
    if title:
        text = _fit(title, scale, canvas.shape[1] - 2 * margin)
        cv2.putText(canvas, text, (margin, margin + text_h), _FONT, scale, _TEXT, 1, cv2.LINE_AA)
    for index, (tile, label) in enumerate(zip(scaled, labels, strict=True)):
        row, col = divmod(index, columns)
        left = margin + col * (tile_w + margin)
        top = margin + title_h + row * (line + tile_h + margin) + line
        canvas[top : top + tile_h, left : left + tile_w] = tile
        text = _fit(label, scale, tile_w)
        origin = (left, top - baseline - 3)
        cv2.putText(canvas, text, origin, _FONT, scale, _TEXT, 1, cv2.LINE_AA)
    return canvas
