"""Turns CAM maps into pictures: colormaps, heatmaps, overlays, boxes, colour bars and panels."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

from engine.choices import Blend, Colormap
from engine.errors import InspectorError
from engine.localization import Box

# A box is a two-tone line, 1 px each: the colour outside, near-black inside. Magenta and white
# are in neither jet nor viridis, and the dark line keeps the edge crisp on their bright ends.
BOX_COLOR: tuple[int, int, int] = (255, 0, 255)  # RGB magenta for ordinary ground-truth boxes
DIFFICULT_BOX_COLOR: tuple[int, int, int] = (255, 255, 255)  # RGB white, drawn dashed
BOX_INNER_COLOR: tuple[int, int, int] = (20, 20, 20)
BOX_THICKNESS = 2  # the outer and the inner line
_LABEL_BACKGROUND: tuple[int, int, int] = (20, 20, 20)
_LABEL_TEXT: tuple[int, int, int] = (255, 255, 255)
_DASH_ON, _DASH_PERIOD = 6, 10

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT_COLOR: tuple[int, int, int] = (30, 30, 30)
_MIN_PANEL_HEIGHT = 224
# The figure is for looking at: 3 panels of at most 2048 px make it at most ~6200x2100.
PANEL_MAX_SIDE = 2048
_PANEL_LABELS: tuple[str, str, str] = ("original", "heatmap", "overlay")


# --- colormaps -------------------------------------------------------------------------------


@cache
def _lut_column(name: str) -> np.ndarray:
    """(256, 1, 3) RGB LUT, the layout cv2.applyColorMap takes as a user colormap; read-only."""
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    if name == "gray":
        lut = np.repeat(ramp[:, :, None], 3, axis=2)
    else:
        bgr = cv2.applyColorMap(ramp, getattr(cv2, f"COLORMAP_{name.upper()}"))
        lut = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    lut = np.ascontiguousarray(lut, dtype=np.uint8)
    lut.setflags(write=False)  # cached and shared: nobody may edit it in place
    return lut


def _check_colormap(name: str) -> Colormap:
    return Colormap.parse(name.strip().lower() if isinstance(name, str) else name)


def colormap_lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 RGB lookup table of a colormap (read-only, cached)."""
    return _lut_column(_check_colormap(name)).reshape(256, 3)


# --- CAM quantisation and heatmaps -----------------------------------------------------------


_scratch = threading.local()


def _scratch_buffer(shape: tuple[int, ...], dtype: np.dtype, slot: str) -> np.ndarray:
    """A per-thread reusable array (one per slot), for temporaries of the slider-speed path.

    A fresh multi-MB array is page-faulted in on every call (~2000 faults, several ms for a
    1024x1024 map); reusing one keeps a re-render at a few ms. Per thread so workers are safe.
    """
    buffers: dict[str, np.ndarray] = _scratch.__dict__.setdefault("buffers", {})
    buffer = buffers.get(slot)
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        buffer = np.empty(shape, dtype)
        buffers[slot] = buffer
    return buffer


def _scaled_cam(cam: np.ndarray) -> np.ndarray:
    """255 * cam as floats with NaN -> 0 and clipped to [0, 255], in this thread's scratch buffer.

    cam must be float32 or float64 (see _check_cam). Multiplies in the map's own float type
    so truncation matches np.uint8(255 * cam) exactly. cv2 does the clean-up because
    np.clip/np.fmax cost several ms on a 1024x1024 map. The result is overwritten by the
    next call on the same thread: use it before then, never return it.
    """
    scaled = _scratch_buffer(cam.shape, cam.dtype, "scaled")
    np.multiply(cam, cam.dtype.type(255), out=scaled)
    cv2.patchNaNs(scaled, 0)
    cv2.threshold(scaled, 0, 0, cv2.THRESH_TOZERO, dst=scaled)
    cv2.threshold(scaled, 255, 255, cv2.THRESH_TRUNC, dst=scaled)
    return scaled


def _check_cam(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam)
    if cam.ndim != 2:
        raise InspectorError(f"CAM must be a 2-D map (HxW), got shape {cam.shape}")
    if cam.size == 0:
        raise InspectorError(f"CAM is empty (shape {cam.shape}); compute it for a real image")
    if cam.dtype not in (np.uint8, np.float32, np.float64):
        cam = cam.astype(np.float32)  # float16/bool/int maps: cv2 resize and threshold need these
    return cam


def cam_to_uint8(cam: np.ndarray) -> np.ndarray:
    """Float map in [0, 1] -> uint8 levels, like np.uint8(255 * cam): truncates; clips; NaN -> 0.

    A uint8 map is taken as already quantised and returned unchanged (not copied).
    """
    cam = _check_cam(cam)
    if cam.dtype == np.uint8:
        return cam
    return _scaled_cam(cam).astype(np.uint8)


def render_heatmap(cam: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """HxWx3 RGB uint8 picture of the map through a colormap."""
    lut = _lut_column(_check_colormap(colormap))
    return cv2.applyColorMap(cam_to_uint8(cam), lut)


def render_colorbar(colormap: str, height: int = 256, width: int = 24) -> np.ndarray:
    """Vertical legend, RGB uint8 (height x width x 3); the top row is 1.0, the bottom 0.0."""
    if height < 1 or width < 1:
        raise InspectorError(f"colour bar size must be positive, got {height}x{width}")
    levels = np.rint(np.linspace(255.0, 0.0, height)).astype(np.uint8)
    column = colormap_lut(colormap)[levels]  # (height, 3)
    return np.ascontiguousarray(np.broadcast_to(column[:, None, :], (height, width, 3)))


# --- overlays --------------------------------------------------------------------------------


def _as_rgb(image: np.ndarray, scratch: bool = False) -> np.ndarray:
    """The image as HxWx3 RGB uint8; gray is replicated to three channels.

    With scratch=True a gray image is expanded into this thread's scratch memory (valid until
    the next such call), which saves the page faults of a fresh 3-channel array.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InspectorError(f"image must be uint8 (0..255), got {image.dtype}; convert it first")
    if image.size == 0:
        raise InspectorError(f"image is empty (shape {image.shape}); load a real image")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        gray = np.ascontiguousarray(image)
        dst = _scratch_buffer((*gray.shape, 3), gray.dtype, "rgb") if scratch else None
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB, dst=dst)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise InspectorError(
        f"image must be HxW gray or HxWx3 RGB, got shape {image.shape}; drop any alpha channel"
    )


def _check_pair(
    image: np.ndarray, cam: np.ndarray, scratch: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The image as RGB and the map, after checking they have the same height and width."""
    rgb = _as_rgb(image, scratch)
    cam = _check_cam(cam)
    if cam.shape != rgb.shape[:2]:
        raise InspectorError(
            f"CAM size {cam.shape[0]}x{cam.shape[1]} does not match image size "
            f"{rgb.shape[0]}x{rgb.shape[1]} (HxW); resize the CAM to the image first"
        )
    return rgb, cam


def _check_unit(name: str, value: float) -> float:
    # Written as a negated range test so NaN is rejected too.
    if not 0.0 <= value <= 1.0:
        raise InspectorError(f"{name} must be between 0 and 1, got {value}")
    return float(value)


def _below_threshold(cam: np.ndarray, scaled: np.ndarray | None, threshold: float) -> np.ndarray:
    """uint8 mask (1 = keep the original pixel) of where the map is below the threshold."""
    if scaled is None:  # uint8 map: level/255 < t  <=>  level < ceil(255 t) for integers
        return (cam < math.ceil(255.0 * threshold)).view(np.uint8)
    return (scaled < 255.0 * threshold).view(np.uint8)


# A blur wider than this (pixels) only flattens the map; 1e9 used to stall OpenCV.
MAX_BLUR_SIGMA = 1000.0


@dataclasses.dataclass(frozen=True)
class RenderStyle:
    """How a map is drawn: colormap, opacity, threshold, blend, and the map's blur.

    Validated once, here: the batch options, the window's view state and every renderer share
    it. ``blur_sigma`` (pixels) smooths the map when it is computed, so it is part of the map
    the style asks for, not of the drawing.
    """

    colormap: Colormap = Colormap.JET
    alpha: float = 0.5
    threshold: float = 0.0
    blend: Blend = Blend.WEIGHTED
    blur_sigma: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "colormap", _check_colormap(self.colormap))
        object.__setattr__(self, "blend", Blend.parse(self.blend))
        object.__setattr__(self, "alpha", _check_unit("opacity (alpha)", self.alpha))
        object.__setattr__(self, "threshold", _check_unit("threshold", self.threshold))
        sigma = self.blur_sigma
        valid = not isinstance(sigma, bool) and isinstance(sigma, int | float)
        if not valid or not 0 <= sigma <= MAX_BLUR_SIGMA:
            raise InspectorError(f"blur sigma must be 0 to {MAX_BLUR_SIGMA:g} pixels, got {sigma}")
        object.__setattr__(self, "blur_sigma", float(sigma))


DEFAULT_STYLE = RenderStyle()


def render_overlay(
    image: np.ndarray,
    cam: np.ndarray,
    style: RenderStyle = DEFAULT_STYLE,
    boxes: Sequence[Box] = (),
) -> np.ndarray:
    """Heatmap blended over the image, HxWx3 RGB uint8.

    weighted: round((1 - alpha) * image + alpha * heatmap); additive (the Keras example):
    clip(round(alpha * heatmap + image), 0, 255). Where cam < threshold the original pixel shows.
    A uint8 cam is taken as pre-quantised levels (see cam_to_uint8), which skips a float pass.
    """
    rgb, cam = _check_pair(image, cam, scratch=True)  # rgb is only read, never returned
    alpha, threshold, blend = style.alpha, style.threshold, style.blend
    lut = _lut_column(style.colormap)

    scaled = None if cam.dtype == np.uint8 else _scaled_cam(cam)
    levels = cam
    if scaled is not None:  # truncating cast, as in np.uint8(255 * cam), into scratch memory
        levels = _scratch_buffer(cam.shape, np.dtype(np.uint8), "levels")
        np.copyto(levels, scaled, casting="unsafe")
    heat = cv2.applyColorMap(levels, lut, dst=_scratch_buffer(rgb.shape, rgb.dtype, "heat"))
    if blend == "weighted":
        out = cv2.addWeighted(rgb, 1.0 - alpha, heat, alpha, 0.0)
    else:  # additive; cv2 saturates at 255, which is the clip
        out = cv2.addWeighted(heat, alpha, rgb, 1.0, 0.0)
    if threshold > 0.0:
        cv2.copyTo(rgb, _below_threshold(cam, scaled, threshold), out)
    if boxes:
        _draw_boxes_in_place(out, boxes)
    return out


# --- boxes -----------------------------------------------------------------------------------


def _edge_pattern(length: int, dashed: bool) -> np.ndarray:
    """Boolean run along one edge: all on, or 6 on / 4 off dashes."""
    if not dashed:
        return np.ones(length, dtype=bool)
    return (np.arange(length) % _DASH_PERIOD) < _DASH_ON


def _draw_frame(rgb: np.ndarray, box: Box, color: tuple[int, int, int], dashed: bool) -> None:
    """Two 1-px frames just inside the box (colour, then dark), so no pixel outside changes."""
    for inset, shade in ((0, color), (1, BOX_INNER_COLOR)):
        x0, y0, x1, y1 = box.x0 + inset, box.y0 + inset, box.x1 - inset, box.y1 - inset
        if x1 <= x0 or y1 <= y0:
            return
        horizontal = _edge_pattern(x1 - x0, dashed)
        vertical = _edge_pattern(y1 - y0, dashed)
        for row in (y0, y1 - 1):
            rgb[row, x0:x1][horizontal] = shade
        for col in (x0, x1 - 1):
            rgb[y0:y1, col][vertical] = shade


def _label_scale(rgb: np.ndarray) -> float:
    # Hershey text at 0.35 is ~8 px tall; grow it on big images so it stays legible.
    return max(0.35, min(rgb.shape[:2]) / 900.0)


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1, exclusive ends


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_rect(
    box: Box, size: tuple[int, int], shape: tuple[int, int], taken: Sequence[Rect]
) -> Rect | None:
    """Where a label tag of size (w, h) goes: outside the box, above it, else below, at its left
    or right edge, clear of every rect in ``taken`` (the boxes, earlier tags) and in the image.
    None when no such place exists: the label is then left to the view's hover text."""
    (tag_w, tag_h), (height, width) = size, shape
    for top in (box.y0 - tag_h - 1, box.y1 + 1):
        for left in (box.x0, box.x1 - tag_w):
            rect = (left, top, left + tag_w, top + tag_h)
            inside = left >= 0 and top >= 0 and rect[2] <= width and rect[3] <= height
            if inside and not any(_overlaps(rect, other) for other in taken):
                return rect
    return None


def _draw_labels(rgb: np.ndarray, boxes: Sequence[Box]) -> None:
    """Each label on a small dark tag outside its box, covering no box and no other tag."""
    scale = _label_scale(rgb)
    taken: list[Rect] = [(b.x0, b.y0, b.x1, b.y1) for b in boxes]
    for box in boxes:
        if not box.label:
            continue
        (text_w, text_h), baseline = cv2.getTextSize(box.label, _FONT, scale, 1)
        rect = label_rect(box, (text_w + 4, text_h + baseline + 2), rgb.shape[:2], taken)
        if rect is None:
            continue
        taken.append(rect)
        x0, y0, x1, y1 = rect
        rgb[y0:y1, x0:x1] = _LABEL_BACKGROUND
        origin = (x0 + 2, y0 + text_h + 1)
        cv2.putText(rgb, box.label, origin, _FONT, scale, _LABEL_TEXT, 1, cv2.LINE_AA)


def _draw_boxes_in_place(rgb: np.ndarray, boxes: Sequence[Box]) -> None:
    height, width = rgb.shape[:2]
    shown = [b.clipped(width, height) for b in boxes]
    shown = [b for b in shown if b.x1 > b.x0 and b.y1 > b.y0]  # not entirely outside the image
    for box in shown:
        color = DIFFICULT_BOX_COLOR if box.difficult else BOX_COLOR
        _draw_frame(rgb, box, color, dashed=box.difficult)
    _draw_labels(rgb, shown)


def draw_boxes(rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """Copy of the image (RGB; gray is expanded) with the boxes drawn.

    Ordinary boxes are solid magenta, difficult ones dashed white, each with a dark inner line,
    2 px inside the box edge; a label goes on a small dark tag outside the box, above or below
    it, where it covers no box and no other label.
    """
    out = _as_rgb(rgb).copy()
    _draw_boxes_in_place(out, boxes)
    return out


# --- three-panel figure ----------------------------------------------------------------------


def _panel_factor(height: int, width: int) -> tuple[float, int]:
    """Scale factor and interpolation for a panel: at least ~224 px high where the longer side
    allows, never a side over PANEL_MAX_SIDE (a 1x100000 strip would ask for 15 GB)."""
    grow = max(1.0, _MIN_PANEL_HEIGHT / height)
    cap = PANEL_MAX_SIDE / max(height, width)
    if grow >= 2.0 and cap >= 2.0:
        # Whole-number nearest-neighbour keeps tiny images' pixels crisp and equal-sized.
        return float(min(math.ceil(grow), math.floor(cap))), cv2.INTER_NEAREST
    factor = min(grow, cap)
    return factor, cv2.INTER_AREA if factor < 1.0 else cv2.INTER_LINEAR


def _scale_for_panels(
    image: np.ndarray, cam: np.ndarray, boxes: Sequence[Box]
) -> tuple[np.ndarray, np.ndarray, list[Box]]:
    """Image, map and boxes resized for the figure (see _panel_factor)."""
    height, width = cam.shape
    factor, interpolation = _panel_factor(height, width)
    if factor == 1.0:
        return image, cam, list(boxes)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    sx, sy = size[0] / width, size[1] / height
    big_image = cv2.resize(image, size, interpolation=interpolation)
    big_cam = cv2.resize(cam, size, interpolation=interpolation)
    big_boxes = [
        Box(
            round(b.x0 * sx),
            round(b.y0 * sy),
            round(b.x1 * sx),
            round(b.y1 * sy),
            b.label,
            b.difficult,
        )
        for b in boxes
    ]
    return big_image, big_cam, big_boxes


def _fit_text(text: str, scale: float, thickness: int, max_width: int) -> tuple[str, float]:
    """Shrink the font, then truncate with '...', until the text fits max_width."""
    while scale > 0.35 and cv2.getTextSize(text, _FONT, scale, thickness)[0][0] > max_width:
        scale *= 0.9
    while len(text) > 3 and cv2.getTextSize(text, _FONT, scale, thickness)[0][0] > max_width:
        text = text[:-4] + "..."
    return text, scale


def render_panels(
    image: np.ndarray,
    cam: np.ndarray,
    style: RenderStyle = DEFAULT_STYLE,
    title: str = "",
    boxes: Sequence[Box] = (),
) -> np.ndarray:
    """Figure 'original | heatmap | overlay' with a caption strip, RGB uint8 on white.

    Panels smaller than 224 px high are upscaled first and none has a side over PANEL_MAX_SIDE
    (larger images are shrunk), so the figure's size is bounded; boxes are drawn on the overlay
    panel, which is blended as the style says; the panels show the whole map (no threshold).
    """
    rgb, cam = _check_pair(image, cam)
    rgb, cam, boxes = _scale_for_panels(rgb, cam, boxes)
    panels = (
        rgb,
        render_heatmap(cam, style.colormap),
        render_overlay(rgb, cam, dataclasses.replace(style, threshold=0.0), boxes),
    )
    return _compose(panels, title)


def _compose(panels: Sequence[np.ndarray], title: str) -> np.ndarray:
    """Lays panels side by side under a title line and a panel-label line."""
    panel_h, panel_w = panels[0].shape[:2]
    scale = min(1.6, max(0.5, panel_h / 450.0))
    thickness = 1 if scale < 1.0 else 2
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, scale, thickness)
    margin = max(8, round(panel_h * 0.03))
    line_h = text_h + baseline + margin
    title_h = line_h if title else 0
    width = 3 * panel_w + 4 * margin
    height = margin + title_h + line_h + panel_h + margin
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)

    if title:
        text, title_scale = _fit_text(title, scale, thickness, width - 2 * margin)
        cv2.putText(
            canvas,
            text,
            (margin, margin + text_h),
            _FONT,
            title_scale,
            _TEXT_COLOR,
            thickness,
            cv2.LINE_AA,
        )
    top = margin + title_h + line_h
    for index, (panel, label) in enumerate(zip(panels, _PANEL_LABELS, strict=True)):
        left = margin + index * (panel_w + margin)
        canvas[top : top + panel_h, left : left + panel_w] = panel
        label_w = cv2.getTextSize(label, _FONT, scale, thickness)[0][0]
        origin = (left + max(0, (panel_w - label_w) // 2), top - baseline - margin // 2)
        cv2.putText(canvas, label, origin, _FONT, scale, _TEXT_COLOR, thickness, cv2.LINE_AA)
    return canvas
