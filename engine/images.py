"""Reading image files into uint8 gray or RGB arrays, whatever their format and bit depth."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from engine.errors import InspectorError, first_line

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".bmp", ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".webp"}
)

# ANYDEPTH keeps 16-bit and float samples so we scale them ourselves; ANYCOLOR keeps gray
# sources single-channel; unlike IMREAD_UNCHANGED these flags let OpenCV apply the EXIF
# orientation of JPEGs and drop any alpha channel.
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GRAY_COLOR_TYPES = (0, 4)  # IHDR colour types: gray, gray+alpha
_JPEG_SOI = b"\xff\xd8"
_JPEG_SOS = b"\xff\xda"
_JPEG_EOI = b"\xff\xd9"
# Start-of-frame markers (C0..CF but C4 DHT, C8 JPG, CC DAC): they hold the image's size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_REDUCED = (  # (factor, colour flag, gray flag): libjpeg decodes at 1/2, 1/4, 1/8 for free
    (2, cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
    (4, cv2.IMREAD_REDUCED_COLOR_4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    (8, cv2.IMREAD_REDUCED_COLOR_8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
)

# A decoded image costs about 21 bytes a pixel on its way through a batch (RGB, the map at
# image size, heatmap, overlay, PNG encoding): 25 megapixels is about 0.5 GB, and covers
# inspection cameras and most phones. Larger JPEGs are decoded reduced; other formats refused.
DEFAULT_MAX_PIXELS = 25_000_000
# Beyond this a file is refused before it is read (a 25 MP 16-bit RGB TIFF is 150 MB).
MAX_FILE_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class DecodeLimits:
    """How large an image may be: pixels once decoded, bytes on disk before reading."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = MAX_FILE_BYTES


DEFAULT_LIMITS = DecodeLimits()


def decode_image(
    data: bytes, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode encoded image bytes to uint8: HxW for gray sources, HxWx3 RGB otherwise.

    The size is read from the header first: a JPEG over max_pixels is decoded at 1/2, 1/4 or
    1/8 scale (the first that fits), any other image over it is refused without decoding.

    16-bit samples are scaled to 8 bits as round(v / 257) (65535 -> 255, 257 * k -> k).
    Float samples are clipped from [0, 1] when their maximum is <= 1, else min-max
    stretched; other integer depths are min-max stretched. Alpha is dropped. JPEG EXIF
    orientation is applied. Raises InspectorError naming `name` when the bytes are not
    a complete image.
    """
    if not data:
        raise _undecodable(name, "zero bytes")
    if _is_truncated_jpeg(data):
        raise _undecodable(name, "truncated JPEG data, no end-of-image marker")
    flags = _decode_flags(data, name, max_pixels)
    try:
        raw = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as err:  # e.g. an image over OpenCV's pixel limit
        raise _undecodable(name, f"OpenCV error: {first_line(err)}") from err
    if raw is None or raw.size == 0:
        raise _undecodable(name, "unknown format or corrupt data")
    height, width = raw.shape[:2]
    if height * width > max_pixels:  # a format whose header we do not read, or a lying one
        raise _too_large(name, width, height, max_pixels)
    return _channels_to_rgb(_to_uint8(raw), _is_gray_png(data), name)


def _decode_flags(data: bytes, name: str, max_pixels: int) -> int:
    """The imdecode flags that keep the decoded image within max_pixels, or a refusal."""
    size = image_size(data)
    if size is None or size[0] * size[1] <= max_pixels:
        return _DECODE_FLAGS
    width, height = size
    if data.startswith(_JPEG_SOI):
        gray = _jpeg_components(data) == 1
        for factor, colour, grayscale in _JPEG_REDUCED:
            if -(-width // factor) * -(-height // factor) <= max_pixels:
                return grayscale if gray else colour
    raise _too_large(name, width, height, max_pixels)


def _too_large(name: str, width: int, height: int, max_pixels: int) -> InspectorError:
    return InspectorError(
        f"cannot read '{name}': {width}x{height} pixels is over the limit of {max_pixels:,} "
        "pixels; shrink the image or raise --max-pixels"
    )


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP, WebP or TIFF header; None when not found."""
    for reader in (_png_size, _jpeg_size, _bmp_size, _webp_size, _tiff_size):
        size = reader(data)
        if size is not None:
            return size
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _jpeg_frame(data: bytes) -> int | None:
    """Offset of the JPEG's start-of-frame segment (the main image's, not a thumbnail's)."""
    if not data.startswith(_JPEG_SOI):
        return None
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker in _JPEG_SOF:
            return pos if pos + 10 <= len(data) else None
        elif 0xD0 <= marker <= 0xD9 or marker == 0x01:
            pos += 2
        elif marker == _JPEG_SOS[1]:
            return None
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = _jpeg_frame(data)
    if pos is None:
        return None
    # SOF: FF Cx, length (2), precision (1), height (2), width (2), components (1)
    return int.from_bytes(data[pos + 7 : pos + 9], "big"), int.from_bytes(
        data[pos + 5 : pos + 7], "big"
    )


def _jpeg_components(data: bytes) -> int:
    pos = _jpeg_frame(data)
    return data[pos + 9] if pos is not None else 3


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(b"BM") or len(data) < 26:
        return None
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)
    return abs(width), abs(height)  # a negative height means top-down rows


def _webp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":  # 24-bit canvas size minus one
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":  # 14-bit sizes minus one, packed after a signature byte
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of a classic TIFF's first image directory."""
    order: Literal["little", "big"]
    if data[:4] == b"II*\x00":
        order = "little"
    elif data[:4] == b"MM\x00*":
        order = "big"
    else:
        return None

    def number(start: int, width: int) -> int:
        return int.from_bytes(data[start : start + width], order)

    ifd = number(4, 4)
    if ifd + 2 > len(data):
        return None
    found: dict[int, int] = {}
    for entry in range(ifd + 2, min(ifd + 2 + 12 * number(ifd, 2), len(data) - 11), 12):
        tag, kind = number(entry, 2), number(entry + 2, 2)
        if tag in (256, 257):
            found[tag] = number(entry + 8, 2 if kind == 3 else 4)  # SHORT or LONG
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def load_image(path: Path | str, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Read and decode an image file; see decode_image for the returned layout.

    A file over limits.max_file_bytes, or one that is not a regular file (a FIFO, a device),
    is refused before a byte of it is read.
    """
    path = Path(path)
    try:
        data = _read_bounded(path, limits.max_file_bytes)
    except FileNotFoundError as err:
        raise InspectorError(f"cannot read '{path}': the file does not exist") from err
    except IsADirectoryError as err:
        raise InspectorError(f"cannot read '{path}': it is a folder, not an image") from err
    except PermissionError as err:
        raise InspectorError(f"cannot read '{path}': permission denied") from err
    except OSError as err:
        raise InspectorError(f"cannot read '{path}': {err.strerror or err}") from err
    return decode_image(data, str(path), limits.max_pixels)


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer; regular files ignore it.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(info.st_mode):
            raise InspectorError(f"cannot read '{path}': not a regular file (a pipe or a device)")
        if info.st_size > max_bytes:
            raise _file_too_large(path, info.st_size, max_bytes)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        # read(n) allocates n bytes at once: ask for what the file holds, one more to see growth.
        data = handle.read(min(info.st_size, max_bytes) + 1)
    if len(data) > max_bytes:
        raise _file_too_large(path, len(data), max_bytes)
    return data


def _file_too_large(path: Path, size: int, max_bytes: int) -> InspectorError:
    return InspectorError(
        f"cannot read '{path}': the file is {size / 1024**2:,.0f} MB, over the "
        f"{max_bytes / 1024**2:,.0f} MB limit for an image file"
    )


def to_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB view of a decoded image (gray is replicated, alpha dropped)."""
    _require_uint8(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")


def _undecodable(name: str, reason: str) -> InspectorError:
    return InspectorError(f"cannot read '{name}': not a decodable image ({reason})")


def _is_truncated_jpeg(data: bytes) -> bool:
    """Whether JPEG bytes end before the end-of-image marker of their main image.

    Some OpenCV/libjpeg builds decode a cut-off JPEG "successfully", greying the missing
    part; we reject it instead. Header segments are skipped by their lengths so an EXIF
    thumbnail's own markers do not count; data appended after the marker is allowed.
    """
    if not data.startswith(_JPEG_SOI):
        return False
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False  # a layout we do not understand: leave the verdict to the decoder
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker == _JPEG_SOS[1]:
            # Entropy-coded data never contains FF D9, so the first one after the scan
            # header is the image's end (progressive scans are followed by more scans).
            return data.find(_JPEG_EOI, pos) < 0
        elif 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return True  # the data stops inside the headers


def _is_gray_png(data: bytes) -> bool:
    """Whether PNG bytes declare a gray (or gray+alpha) image in their IHDR chunk."""
    # OpenCV expands gray+alpha PNGs to three equal channels; the header tells the truth.
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 26 or data[12:16] != b"IHDR":
        return False
    return data[25] in _PNG_GRAY_COLOR_TYPES


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        # round(v / 257) maps 0..65535 exactly onto 0..255 (257 * 255 == 65535).
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    values = array.astype(np.float64)
    values[~np.isfinite(values)] = 0.0
    if np.issubdtype(array.dtype, np.floating) and values.max() <= 1.0:
        return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return _stretch(values)


def _stretch(values: np.ndarray) -> np.ndarray:
    """Min-max stretch to 0..255; a constant image becomes all zeros."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _channels_to_rgb(image: np.ndarray, gray_source: bool, name: str) -> np.ndarray:
    """Turn OpenCV's BGR(A)/gray layout into HxW gray or HxWx3 RGB."""
    if image.ndim == 2:
        return image
    channels = image.shape[2] if image.ndim == 3 else 0
    if channels in (1, 2) or (channels in (3, 4) and gray_source):
        # 2 channels is gray + alpha; a gray PNG comes back from OpenCV as equal channels.
        return np.ascontiguousarray(image[:, :, 0])
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise _undecodable(name, f"unsupported layout {image.shape}")


def _require_uint8(image: np.ndarray) -> None:
    # A programming error rather than a user one: decoded images are always uint8.
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 HxW or HxWxC array, got {image.dtype} {image.shape}")
