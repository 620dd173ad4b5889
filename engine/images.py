"""Reading image files into uint8 gray or RGB arrays, whatever their format and bit depth."""

from __future__ import annotations

from pathlib import Path

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


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes to uint8: HxW for gray sources, HxWx3 RGB otherwise.

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
    try:
        raw = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _DECODE_FLAGS)
    except cv2.error as err:  # e.g. an image over OpenCV's pixel limit
        raise _undecodable(name, f"OpenCV error: {first_line(err)}") from err
    if raw is None or raw.size == 0:
        raise _undecodable(name, "unknown format or corrupt data")
    return _channels_to_rgb(_to_uint8(raw), _is_gray_png(data), name)


def load_image(path: Path | str) -> np.ndarray:
    """Read and decode an image file; see decode_image for the returned layout."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise InspectorError(f"cannot read '{path}': the file does not exist") from err
    except IsADirectoryError as err:
        raise InspectorError(f"cannot read '{path}': it is a folder, not an image") from err
    except PermissionError as err:
        raise InspectorError(f"cannot read '{path}': permission denied") from err
    except OSError as err:
        raise InspectorError(f"cannot read '{path}': {err.strerror or err}") from err
    return decode_image(data, str(path))


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
