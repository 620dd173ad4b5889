"""Deterministic NEU-like steel surface defect images with tight boxes, for demos and training."""

from __future__ import annotations

import functools
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.dataset import NEU_CLASSES
from engine.errors import InspectorError
from engine.localization import Box

__all__ = [
    "NEU_CLASSES",
    "DemoSample",
    "generate_sample",
    "generate_samples",
    "voc_xml",
    "write_neu_det",
]

_MAX_COUNT = 100_000
_MIN_SIZE = 64
# Defect pixels weaker than this (gray levels) are dropped, so every changed pixel lies in a box
# and the box is exactly the defect's visible extent.
_VISIBLE = 3.0
_DEFECT_COUNT_P = (0.5, 0.3, 0.2)
# Several defects in one image are drawn smaller so they fit side by side.
_CROWD_SCALE = (1.0, 0.8, 0.68)
_PLACEMENT_TRIES = 16
_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class DemoSample:
    """One generated image, its class and the boxes of its defects."""

    image: np.ndarray
    label: str
    boxes: tuple[Box, ...]
    index: int


@dataclass(frozen=True)
class _Look:
    """Per-image background parameters that the defects must match."""

    axis: int  # 0: rolled along x (horizontal streaks); 1: rolled along y
    gain: float  # contrast factor shared by background texture and defects


# ---------------------------------------------------------------------------------------------
# Background: identical distribution for every class, so only the defect tells the class.


def _rngs(index: int, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent background and defect streams that depend only on (seed, index)."""
    if index < 0 or seed < 0:
        raise InspectorError(f"Demo data needs a non-negative seed and index, got {seed}, {index}.")
    bg_seq, defect_seq = np.random.SeedSequence([seed, index]).spawn(2)
    return np.random.default_rng(bg_seq), np.random.default_rng(defect_seq)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Zero-mean, unit-ish low-frequency noise: a coarse grid upsampled with cubic interpolation."""
    coarse = rng.standard_normal((cells, cells), dtype=np.float32)
    # Cubic to 1/8 size then linear: looks the same and is ~15x faster than cubic at full size.
    small = (max(cells, -(-shape[1] // 8)), max(cells, -(-shape[0] // 8)))
    smooth = cv2.resize(coarse, small, interpolation=cv2.INTER_CUBIC)
    return cv2.resize(smooth, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _grain(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fine grain (std ~0.8); uniform noise is 3x cheaper than normal and looks alike blurred."""
    noise = rng.random((size, size), dtype=np.float32) - np.float32(0.5)
    return cv2.GaussianBlur(noise, (3, 3), 0.6) * np.float32(math.sqrt(12.0) * 1.6)


def _rolling_streaks(rng: np.random.Generator, size: int) -> np.ndarray:
    """Streaks along x: a fine 1-D profile across the strip, slowly modulated along it."""
    profile = rng.standard_normal((size, 1), dtype=np.float32)
    profile = cv2.GaussianBlur(profile, (1, 0), sigmaX=0.1, sigmaY=rng.uniform(0.6, 1.5))
    profile /= float(profile.std()) + 1e-6
    along = 0.6 + 0.4 * _smooth_noise(rng, (1, size), 6)
    return profile * along * rng.uniform(2.5, 6.0)


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, _Look]:
    """Float background in gray levels plus the look the defects must share."""
    look = _Look(axis=int(rng.integers(2)), gain=float(rng.uniform(0.75, 1.25)))
    mean = rng.uniform(85.0, 170.0)
    streaks = _rolling_streaks(rng, size)
    if look.axis == 1:
        streaks = streaks.T
    low = _smooth_noise(rng, (size, size), int(rng.integers(3, 6))) * rng.uniform(4.0, 12.0)
    grain = _grain(rng, size) * np.float32(rng.uniform(3.0, 5.0))
    texture = (streaks + low + grain) * look.gain
    image = mean + texture
    if rng.random() < 0.5:
        image *= _vignette(size, rng.uniform(0.05, 0.2))
    return image.astype(np.float32), look


@functools.cache
def _radius2(size: int) -> np.ndarray:
    """Squared distance from the centre, 2 at the corners (cached: same for every image)."""
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    radius2 = ramp[None, :] ** 2 + ramp[:, None] ** 2
    radius2.flags.writeable = False
    return radius2


def _vignette(size: int, strength: float) -> np.ndarray:
    """Radial darkening towards the corners, as from uneven line-scan lighting."""
    return 1.0 - np.float32(strength / 2.0) * _radius2(size)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 255.0)).astype(np.uint8)


def _background_only(index: int, seed: int = 0, size: int = 200) -> np.ndarray:
    """The sample's defect-free background, pixel-identical outside its defects (for tests)."""
    bg_rng, _ = _rngs(index, seed)
    image, _look = _background(bg_rng, size)
    return _to_uint8(image)


# ---------------------------------------------------------------------------------------------
# Defects: each returns a float patch of signed gray-level offsets, drawn rolled along x.


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float (N, 2) x/y points as cv2 fixed-point polyline vertices."""
    return np.rint(np.asarray(points) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _ellipse_mask(h: int, w: int, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Soft irregular elliptical envelope filling the patch inside its padding."""
    ys = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max((h - 2 * pad) / 2, 1.0)
    xs = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max((w - 2 * pad) / 2, 1.0)
    dist = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    # Wobble the rim so clusters do not all look like clean ellipses.
    dist = dist + 0.25 * _smooth_noise(rng, (h, w), 4)
    return np.clip((1.0 - dist) * 4.0, 0.0, 1.0)


def _crazing(rng: np.random.Generator, k: float) -> np.ndarray:
    """A large, low-contrast mesh of fine wavy cracks (Voronoi cell walls, partly faded out)."""
    w = int(rng.uniform(60, 125) * k)
    h = int(w * rng.uniform(0.55, 1.0))
    pad = 3
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    # Cells stretched one way, as crazing follows the surface stress.
    stretch = rng.uniform(1.0, 1.8)
    spacing = rng.uniform(8.0, 13.0) * k
    count = max(8, int(w * h / spacing**2))
    seeds = rng.uniform((0, 0), (w * stretch, h), (count, 2)).astype(np.float32)
    subdiv = cv2.Subdiv2D((0, 0, math.ceil(w * stretch) + 1, h + 1))
    subdiv.insert(seeds)
    facets, _centers = subdiv.getVoronoiFacetList([])
    cells = _wavy(rng, facets, (1.0 / stretch, 1.0), pad, canvas.shape)
    cv2.polylines(canvas, cells, True, 255, 1, cv2.LINE_AA, _SHIFT)
    cracks = canvas.astype(np.float32) / 255.0
    envelope = _ellipse_mask(*canvas.shape, pad, rng)
    # Fade parts of the mesh so it reads as cracking, not as a drawn grid.
    strength = np.clip(0.55 + 0.5 * _smooth_noise(rng, canvas.shape, 5), 0.0, 1.0)
    patch = cracks * envelope * strength * -rng.uniform(34, 50)
    return cv2.GaussianBlur(patch, (0, 0), 0.5)


def _wavy(
    rng: np.random.Generator,
    polygons: list[np.ndarray],
    scale: tuple[float, float],
    offset: float,
    shape: tuple[int, int],
) -> list[np.ndarray]:
    """Scaled, shifted closed polygons with a jittered midpoint on every edge, in fixed point."""
    sizes = np.array([len(p) for p in polygons])
    points = np.concatenate(polygons).astype(np.float64) * scale + offset
    # Each vertex's successor, wrapping to the first vertex of its own polygon.
    ends = np.cumsum(sizes)
    following = np.arange(1, len(points) + 1)
    following[ends - 1] = ends - sizes
    mids = (points + points[following]) / 2 + rng.normal(0, 1.0, points.shape)
    dense = np.stack((points, mids), axis=1).reshape(-1, 2)
    # Unbounded Voronoi cells reach far away; clamp so fixed-point coordinates stay small.
    dense = np.clip(dense, -4, (shape[1] + 4, shape[0] + 4))
    return np.split(_fixed(dense), 2 * ends[:-1])


def _inclusion(rng: np.random.Generator, k: float) -> np.ndarray:
    """Several dark elongated streaks lying along the rolling direction."""
    length = rng.uniform(45, 105) * k
    # Wide enough a group that a coarse CAM cell can land inside its box.
    width = rng.uniform(28, 48) * k
    pad = 4
    canvas = np.zeros((int(width) + 2 * pad, int(length) + 2 * pad), np.uint8)
    count = int(rng.integers(2, 6))
    # Spread the streaks evenly across the width so the group fills its box.
    lanes = np.linspace(pad + 2, pad + width - 2, count) + rng.uniform(-2, 2, count)
    for lane in lanes:
        span = rng.uniform(0.35, 0.95) * length
        cx = pad + rng.uniform(span / 2, length - span / 2)
        for _blob in range(int(rng.integers(1, 4))):
            half = span / 2 * rng.uniform(0.4, 1.0)
            x = cx + rng.uniform(-1, 1) * (span / 2 - half)
            thick = rng.uniform(1.2, 3.5) * k
            center = _fixed(np.array([x, lane + rng.normal(0, 1.0)])).ravel()
            axes = (int(half * _ONE), int(thick * _ONE))
            angle = rng.normal(0, 3.0)
            value = int(rng.uniform(150, 255))
            cv2.ellipse(canvas, center, axes, angle, 0, 360, value, -1, cv2.LINE_AA, _SHIFT)
    patch = canvas.astype(np.float32) / 255.0 * -rng.uniform(60, 95)
    return cv2.GaussianBlur(patch, (0, 0), 0.8)


def _patches(rng: np.random.Generator, k: float) -> np.ndarray:
    """A large irregular soft-edged dark blotch with mottled inside."""
    radius = rng.uniform(24, 60) * k
    aspect = rng.uniform(0.55, 1.0)
    pad = int(radius * 0.5) + 6
    side = int(2 * radius) + 2 * pad
    canvas = np.zeros((side, side), np.uint8)
    angles = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    wobble = np.zeros_like(angles)
    # Weaker higher harmonics: an irregular outline rather than a star.
    for harmonic in (2, 3, 4, 6, 9):
        amplitude = rng.uniform(0.05, 0.2) * (2 / harmonic) ** 0.8
        wobble += amplitude * np.cos(harmonic * angles + rng.uniform(0, 2 * math.pi))
    radii = radius * (1.0 + wobble) * rng.uniform(0.93, 1.07, angles.shape)
    # Squashed across the rolling direction, as blotches smear along the strip.
    outline = np.stack((radii * np.cos(angles), radii * np.sin(angles) * aspect), 1)
    cv2.fillPoly(canvas, [_fixed(outline + side / 2)], 255, cv2.LINE_AA, _SHIFT)
    blob = cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), rng.uniform(2.5, 5.0) * k)
    # Soft edge that reaches zero, so the blur's long faint tail does not loosen the box.
    blob = np.clip((blob - 0.12) / 0.88, 0.0, 1.0)
    mottle = 0.8 + 0.2 * _smooth_noise(rng, blob.shape, 6)
    return blob * mottle * -rng.uniform(50, 80)


def _pitted_surface(rng: np.random.Generator, k: float) -> np.ndarray:
    """A cluster of many small round dark pits on a faintly darkened area."""
    w = rng.uniform(36, 90) * k
    h = w * rng.uniform(0.6, 1.0)
    pad = 4
    canvas = np.zeros((int(h) + 2 * pad, int(w) + 2 * pad), np.uint8)
    count = int(w * h / rng.uniform(35, 60))
    # Uniform points in the ellipse, so the pits fill the cluster evenly.
    radius = np.sqrt(rng.random(count))
    theta = rng.uniform(0, 2 * math.pi, count)
    centers = np.stack((w / 2 * radius * np.cos(theta), h / 2 * radius * np.sin(theta)), 1)
    centers += (pad + w / 2, pad + h / 2)
    sizes = rng.uniform(0.9, 2.3, count) * k
    values = rng.uniform(140, 255, count)
    for (x, y), r, v in zip(centers, sizes, values, strict=True):
        center = (int(x * _ONE), int(y * _ONE))
        cv2.circle(canvas, center, int(r * _ONE), int(v), -1, cv2.LINE_AA, _SHIFT)
    pits = canvas.astype(np.float32) / 255.0 * -rng.uniform(70, 100)
    envelope = _ellipse_mask(*canvas.shape, pad, rng)
    haze = cv2.GaussianBlur(envelope, (0, 0), 3.0) * -rng.uniform(6, 12)
    return cv2.GaussianBlur(pits, (0, 0), 0.5) + haze


def _rolled_in_scale(rng: np.random.Generator, k: float) -> np.ndarray:
    """Scattered angular flakes pressed into the surface: dark with a bright rim on one side."""
    w = rng.uniform(45, 110) * k
    h = w * rng.uniform(0.5, 0.9)
    pad = 10
    shape = (int(h) + 2 * pad, int(w) + 2 * pad)
    dark = np.zeros(shape, np.uint8)
    bright = np.zeros(shape, np.uint8)
    count = int(w * h / rng.uniform(260, 400)) + 3
    light = rng.normal(0, 1, 2)
    light = 2.0 * k * light / (np.linalg.norm(light) + 1e-6)
    for _flake in range(count):
        corners = int(rng.integers(4, 7))
        angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
        radii = rng.uniform(4.0, 10.0) * k * rng.uniform(0.55, 1.0, corners)
        # Rolling stretches flakes along x.
        stretch = rng.uniform(1.2, 2.2)
        points = np.stack((radii * np.cos(angles) * stretch, radii * np.sin(angles)), 1)
        points += (pad + rng.uniform(0, w), pad + rng.uniform(0, h))
        value = int(rng.uniform(170, 255))
        cv2.fillPoly(bright, [_fixed(points + light)], value, cv2.LINE_AA, _SHIFT)
        cv2.fillPoly(dark, [_fixed(points)], value, cv2.LINE_AA, _SHIFT)
    rim = np.clip(bright.astype(np.float32) - dark.astype(np.float32), 0, None) / 255.0
    patch = rim * rng.uniform(50, 75) - dark.astype(np.float32) / 255.0 * rng.uniform(55, 85)
    return cv2.GaussianBlur(patch, (0, 0), 0.6)


def _scratches(rng: np.random.Generator, k: float) -> np.ndarray:
    """One long thin slightly curved line, bright or dark, fading at its ends."""
    length = rng.uniform(75, 170) * k
    # Diagonal-ish so the box is not a sliver a coarse CAM grid can never hit.
    angle = math.radians(rng.uniform(25, 65)) * rng.choice((-1.0, 1.0))
    dx, dy = math.cos(angle) * length, math.sin(angle) * length
    pad = 6
    w, h = int(abs(dx)) + 2 * pad, int(abs(dy)) + 2 * pad
    canvas = np.zeros((h, w), np.uint8)
    t = np.linspace(0.0, 1.0, 24)[:, None]
    start = np.array([pad + (abs(dx) - dx) / 2, pad + (abs(dy) - dy) / 2])
    chord = np.array([dx, dy])
    normal = np.array([-dy, dx]) / length
    bend = rng.uniform(-0.06, 0.06) * length
    points = start + t * chord + (4 * t * (1 - t)) * bend * normal
    fade = np.minimum(1.0, np.minimum(t, 1 - t).ravel() * rng.uniform(4, 10)) * 0.9 + 0.1
    strength = fade * rng.uniform(0.7, 1.0, fade.shape)
    thick = int(rng.integers(1, 3))
    fixed = _fixed(points)
    for i in range(len(points) - 1):
        value = int(255 * (strength[i] + strength[i + 1]) / 2)
        cv2.line(canvas, fixed[i, 0], fixed[i + 1, 0], value, thick, cv2.LINE_AA, _SHIFT)
    sign = rng.choice((-1.0, 1.0))
    patch = canvas.astype(np.float32) / 255.0 * sign * rng.uniform(55, 90)
    return cv2.GaussianBlur(patch, (0, 0), 0.6)


_DRAWERS: dict[str, Callable[[np.random.Generator, float], np.ndarray]] = {
    "crazing": _crazing,
    "inclusion": _inclusion,
    "patches": _patches,
    "pitted_surface": _pitted_surface,
    "rolled-in_scale": _rolled_in_scale,
    "scratches": _scratches,
}


# ---------------------------------------------------------------------------------------------
# Composition.


def _visible_bounds(patch: np.ndarray) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 (exclusive) of the patch's non-zero pixels; None when empty."""
    rows = np.flatnonzero(patch.any(axis=1))
    cols = np.flatnonzero(patch.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _overlaps(a: Box, b: Box, gap: int) -> bool:
    return a.x0 < b.x1 + gap and b.x0 < a.x1 + gap and a.y0 < b.y1 + gap and b.y0 < a.y1 + gap


def _place(
    rng: np.random.Generator, bounds: tuple[int, int, int, int], size: int, taken: list[Box]
) -> tuple[int, int]:
    """Patch offset keeping its visible part inside the image, avoiding earlier defects."""
    x0, y0, x1, y1 = bounds
    offset = (0, 0)
    for _try in range(_PLACEMENT_TRIES):
        offset = (int(rng.integers(-x0, size - x1 + 1)), int(rng.integers(-y0, size - y1 + 1)))
        box = Box(x0 + offset[0], y0 + offset[1], x1 + offset[0], y1 + offset[1])
        if not any(_overlaps(box, other, 4) for other in taken):
            break
    return offset


def _paste(layer: np.ndarray, patch: np.ndarray, offset: tuple[int, int]) -> None:
    """Draw the patch into the layer at offset, clipping whatever falls outside."""
    size_y, size_x = layer.shape
    ox, oy = offset
    ly0, lx0 = max(oy, 0), max(ox, 0)
    ly1, lx1 = min(oy + patch.shape[0], size_y), min(ox + patch.shape[1], size_x)
    region = layer[ly0:ly1, lx0:lx1]
    part = patch[ly0 - oy : ly1 - oy, lx0 - ox : lx1 - ox]
    # Where defects overlap the stronger one shows; adding them would leave unnatural dark spots.
    np.copyto(region, part, where=np.abs(part) > np.abs(region))


def _fit(patch: np.ndarray, size: int) -> np.ndarray:
    """Crop a patch larger than the image to its centre (only possible for tiny images)."""
    h, w = patch.shape
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return patch[top : top + size, left : left + size]


def _draw_defects(
    rng: np.random.Generator, label: str, look: _Look, size: int
) -> tuple[np.ndarray, tuple[Box, ...]]:
    """The signed defect layer and one tight box per defect."""
    count = int(rng.choice(len(_DEFECT_COUNT_P), p=_DEFECT_COUNT_P)) + 1
    k = size / 200.0 * _CROWD_SCALE[count - 1]
    layer = np.zeros((size, size), np.float32)
    boxes: list[Box] = []
    for _defect in range(count):
        patch = _DRAWERS[label](rng, k) * look.gain
        if look.axis == 1:
            patch = np.ascontiguousarray(patch.T)
        patch[np.abs(patch) < _VISIBLE] = 0.0
        patch = _fit(patch, size)
        bounds = _visible_bounds(patch)
        if bounds is None:
            continue
        ox, oy = _place(rng, bounds, size, boxes)
        _paste(layer, patch, (ox, oy))
        x0, y0, x1, y1 = bounds
        boxes.append(Box(x0 + ox, y0 + oy, x1 + ox, y1 + oy, label))
    return layer, tuple(boxes)


def generate_sample(index: int, seed: int = 0, size: int = 200) -> DemoSample:
    """Sample `index` of stream `seed`: class NEU_CLASSES[index % 6], 1 to 3 defects."""
    if size < _MIN_SIZE:
        raise InspectorError(f"Demo images must be at least {_MIN_SIZE} pixels, got {size}.")
    bg_rng, defect_rng = _rngs(index, seed)
    background, look = _background(bg_rng, size)
    label = NEU_CLASSES[index % len(NEU_CLASSES)]
    layer, boxes = _draw_defects(defect_rng, label, look, size)
    return DemoSample(_to_uint8(background + layer), label, boxes, index)


def generate_samples(count: int, seed: int = 0, start: int = 0) -> Iterator[DemoSample]:
    """Samples start .. start+count-1 of stream `seed`, each independent of count."""
    if count < 0:
        raise InspectorError(f"Cannot generate a negative number of samples ({count}).")
    for index in range(start, start + count):
        yield generate_sample(index, seed)


# ---------------------------------------------------------------------------------------------
# NEU-DET style export.


def _text(parent: ET.Element, tag: str, value: str | int) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = str(value)
    return child


def voc_xml(filename: str, sample: DemoSample) -> str:
    """Pascal VOC annotation like NEU-DET's, with 1-based inclusive box corners."""
    height, width = sample.image.shape[:2]
    depth = 1 if sample.image.ndim == 2 else sample.image.shape[2]
    root = ET.Element("annotation")
    _text(root, "folder", "ANNOTATIONS")
    _text(root, "filename", filename)
    size = ET.SubElement(root, "size")
    _text(size, "width", width)
    _text(size, "height", height)
    _text(size, "depth", depth)
    for box in sample.boxes:
        obj = ET.SubElement(root, "object")
        _text(obj, "name", box.label or sample.label)
        _text(obj, "pose", "Unspecified")
        _text(obj, "truncated", 0)
        _text(obj, "difficult", int(box.difficult))
        bndbox = ET.SubElement(obj, "bndbox")
        # VOC counts pixels from 1 and includes the last one; Box is 0-based, x1/y1 exclusive.
        _text(bndbox, "xmin", box.x0 + 1)
        _text(bndbox, "ymin", box.y0 + 1)
        _text(bndbox, "xmax", box.x1)
        _text(bndbox, "ymax", box.y1)
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InspectorError("Could not encode a demo image as JPEG.")
    return buffer.tobytes()


def write_neu_det(output_dir: Path, count: int, seed: int = 0, quality: int = 95) -> list[Path]:
    """Write IMAGES/<class>_<n>.jpg and ANNOTATIONS/<class>_<n>.xml; return the image paths."""
    if not 1 <= count <= _MAX_COUNT:
        raise InspectorError(f"Demo data count must be between 1 and {_MAX_COUNT}, got {count}.")
    if not 0 <= quality <= 100:
        raise InspectorError(f"JPEG quality must be between 0 and 100, got {quality}.")
    images_dir, notes_dir = Path(output_dir) / "IMAGES", Path(output_dir) / "ANNOTATIONS"
    paths: list[Path] = []
    try:
        images_dir.mkdir(parents=True, exist_ok=True)
        notes_dir.mkdir(parents=True, exist_ok=True)
        for sample in generate_samples(count, seed):
            # Classes cycle, so the n-th sample of a class is index // 6 + 1 (NEU-DET's crazing_1).
            stem = f"{sample.label}_{sample.index // len(NEU_CLASSES) + 1}"
            image_path = images_dir / f"{stem}.jpg"
            image_path.write_bytes(_encode_jpeg(sample.image, quality))
            (notes_dir / f"{stem}.xml").write_text(voc_xml(image_path.name, sample), "utf-8")
            paths.append(image_path)
    except OSError as exc:
        raise InspectorError(f"Cannot write demo data to {output_dir}: {exc.strerror}.") from exc
    return paths
