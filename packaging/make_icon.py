"""Draws the app icon (PNGs at 16-256 px and a Windows .ico) into resources/icons/.

A brushed-steel tile with a jet-coloured heat blob under a magnifier: what the app shows.
Deterministic (fixed noise seed), so rerunning it rewrites identical files:
`python packaging/make_icon.py [--output DIR]`.
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAME = "gradcam-inspector"
SIZES = (16, 24, 32, 48, 64, 128, 256)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
CANVAS = 1024  # drawn 4x larger, then shrunk with area averaging: smooth edges, no AA tricks
SEED = 7


def _rounded_mask(size: int, radius: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.rectangle(mask, (radius, 0), (size - 1 - radius, size - 1), 255, -1)
    cv2.rectangle(mask, (0, radius), (size - 1, size - 1 - radius), 255, -1)
    for cx in (radius, size - 1 - radius):
        for cy in (radius, size - 1 - radius):
            cv2.circle(mask, (cx, cy), radius, 255, -1, cv2.LINE_AA)
    return mask


def _steel(size: int) -> np.ndarray:
    """Steel gray with horizontal brushing and a soft top-left light (BGR float 0..1)."""
    rng = np.random.default_rng(SEED)
    streaks = rng.normal(0.0, 1.0, (size, 1)).repeat(size, axis=1)
    streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=40, sigmaY=1.5)
    grain = cv2.GaussianBlur(rng.normal(0.0, 1.0, (size, size)), (0, 0), sigmaX=6, sigmaY=0.8)
    yy, xx = np.mgrid[0:size, 0:size] / size
    light = 0.62 - 0.16 * (xx + yy) / 2
    gray = np.clip(light + 0.035 * streaks / streaks.std() + 0.015 * grain / grain.std(), 0, 1)
    tint = np.array([1.04, 1.0, 0.95])  # a little blue: steel, not concrete
    return np.clip(gray[..., None] * tint, 0, 1)


def _heat(size: int, centre: tuple[float, float], sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy = centre
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    second = np.exp(-((xx - cx - 0.5 * sigma) ** 2 + (yy - cy + 0.6 * sigma) ** 2) / (sigma**2))
    return np.clip(np.maximum(blob, 0.65 * second), 0, 1)


def draw_icon(size: int = CANVAS) -> np.ndarray:
    """The icon as BGRA uint8 at size x size."""
    s = size / 1024
    base = _steel(size)
    lens_c = (int(430 * s), int(430 * s))
    lens_r = int(270 * s)
    heat = _heat(size, (430 * s, 440 * s), 120 * s)
    colours = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET) / 255.0
    inside = np.zeros((size, size), np.uint8)
    cv2.circle(inside, lens_c, lens_r, 255, -1, cv2.LINE_AA)
    alpha = (0.85 * heat**0.7 * (inside / 255.0))[..., None]
    image = base * (1 - alpha) + colours * alpha
    # Glass: slightly brighter inside the lens.
    image = np.where(inside[..., None] > 0, np.clip(image * 1.06 + 0.03, 0, 1), image)
    out = (image * 255).astype(np.uint8)
    dark = (48, 44, 40)
    handle_a = (int(625 * s), int(625 * s))
    handle_b = (int(880 * s), int(880 * s))
    cv2.line(out, handle_a, handle_b, dark, int(110 * s), cv2.LINE_AA)
    cv2.line(out, handle_a, handle_b, (90, 86, 82), int(60 * s), cv2.LINE_AA)
    cv2.circle(out, lens_c, lens_r, dark, int(64 * s), cv2.LINE_AA)
    cv2.circle(out, lens_c, lens_r, (210, 206, 200), int(22 * s), cv2.LINE_AA)
    # Crosshair at the hot spot: where the model looked.
    for dx, dy in ((1, 0), (0, 1)):
        a = (lens_c[0] - dx * int(170 * s), lens_c[1] - dy * int(170 * s))
        b = (lens_c[0] + dx * int(170 * s), lens_c[1] + dy * int(170 * s))
        cv2.line(out, a, b, (255, 255, 255), max(1, int(14 * s)), cv2.LINE_AA)
    mask = _rounded_mask(size, int(180 * s))
    return np.dstack([out, mask])


def resized(icon: np.ndarray, size: int) -> np.ndarray:
    # Premultiply alpha before averaging, so transparent corners do not bleed dark edges.
    a = icon[..., 3:4].astype(np.float64) / 255
    premultiplied = np.dstack([icon[..., :3] * a, a * 255])
    small = cv2.resize(premultiplied, (size, size), interpolation=cv2.INTER_AREA)
    alpha = small[..., 3:4] / 255
    colour = np.where(alpha > 0, small[..., :3] / np.maximum(alpha, 1e-6), 0)
    return np.clip(np.dstack([colour, small[..., 3:4]]), 0, 255).round().astype(np.uint8)


def png_bytes(bgra: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A .ico holding PNG images (Windows Vista and later read PNG payloads at any size)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    entries, payload = b"", b""
    for size, data in sorted(pngs.items()):
        side = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
        payload += data
    return header + entries + payload


def write_icons(output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    big = draw_icon()
    pngs = {size: png_bytes(resized(big, size)) for size in SIZES}
    written = []
    for size, data in pngs.items():
        path = output / f"{NAME}-{size}.png"
        path.write_bytes(data)
        written.append(path)
    ico = output / f"{NAME}.ico"
    ico.write_bytes(ico_bytes({s: pngs[s] for s in ICO_SIZES}))
    written.append(ico)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "resources" / "icons")
    for path in write_icons(parser.parse_args().output):
        print(path)


if __name__ == "__main__":
    main()
