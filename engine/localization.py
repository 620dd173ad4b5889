"""Ground-truth boxes and how well a CAM localises them (pointing game, energy in box)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in original-image pixels; x1/y1 are exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int
    label: str = ""
    difficult: bool = False

    def clipped(self, width: int, height: int) -> Box:
        return Box(
            max(0, min(self.x0, width)),
            max(0, min(self.y0, height)),
            max(0, min(self.x1, width)),
            max(0, min(self.y1, height)),
            self.label,
            self.difficult,
        )


def boxes_mask(shape: tuple[int, int], boxes: Sequence[Box]) -> np.ndarray:
    """Boolean mask of the pixels covered by any box."""
    height, width = shape
    mask = np.zeros((height, width), dtype=bool)
    for box in boxes:
        b = box.clipped(width, height)
        mask[b.y0 : b.y1, b.x0 : b.x1] = True
    return mask


def pointing_hit(cam: np.ndarray, boxes: Sequence[Box]) -> bool | None:
    """Whether the map's peak falls inside a box; None when there are no boxes."""
    if not boxes:
        return None
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return any(b.x0 <= x < b.x1 and b.y0 <= y < b.y1 for b in boxes)


def energy_in_box(cam: np.ndarray, boxes: Sequence[Box]) -> float | None:
    """Share of the map's mass inside the boxes; None when there are no boxes."""
    if not boxes:
        return None
    total = float(cam.sum(dtype=np.float64))
    if total <= 0.0:
        return 0.0
    inside = float(cam[boxes_mask(cam.shape, boxes)].sum(dtype=np.float64))
    return inside / total
