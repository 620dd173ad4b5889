"""Tests for engine.images: decoding every supported kind of image file to gray or RGB."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.errors import InspectorError
from engine.images import (
    IMAGE_EXTENSIONS,
    _channels_to_rgb,
    decode_image,
    load_image,
    to_rgb,
)

RED_BGR = (0, 0, 255)


def _write_cv(path: Path, array: np.ndarray) -> Path:
    ok, encoded = cv2.imencode(path.suffix, array)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def _write_pil(path: Path, image: Image.Image, fmt: str, **options: object) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    path.write_bytes(buffer.getvalue())
    return path


def _gradient(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth BGR image, so JPEG data is realistic but compresses well."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 4 % 256, y * 5 % 256, (x + y) * 2 % 256]).astype(np.uint8)


def test_extensions_are_lowercase_with_dot() -> None:
    assert {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"} <= IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)


def test_bmp_gray(tmp_path: Path) -> None:
    path = _write_cv(tmp_path / "g.bmp", np.full((5, 7), 42, np.uint8))
    image = load_image(path)
    assert image.shape == (5, 7)
    assert image.dtype == np.uint8
    assert (image == 42).all()


def test_bmp_color_is_rgb(tmp_path: Path) -> None:
    path = _write_cv(tmp_path / "c.bmp", np.full((4, 4, 3), RED_BGR, np.uint8))
    image = load_image(path)
    assert image.shape == (4, 4, 3)
    assert image[0, 0].tolist() == [255, 0, 0]


def test_png_8bit_gray(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    image = load_image(_write_cv(tmp_path / "g.png", array))
    assert image.shape == (3, 4)
    np.testing.assert_array_equal(image, array)


def test_png_rgb_pure_red_is_rgb_order(tmp_path: Path) -> None:
    image = load_image(_write_pil(tmp_path / "r.png", Image.new("RGB", (3, 2), (255, 0, 0)), "PNG"))
    assert image.shape == (2, 3, 3)
    assert image[1, 2].tolist() == [255, 0, 0]


def test_png_rgba_drops_alpha(tmp_path: Path) -> None:
    source = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    image = load_image(_write_pil(tmp_path / "a.png", source, "PNG"))
    assert image.shape == (4, 4, 3)
    assert image[0, 0].tolist() == [10, 20, 30]


def test_png_gray_alpha_stays_gray(tmp_path: Path) -> None:
    image = load_image(_write_pil(tmp_path / "la.png", Image.new("LA", (4, 3), (77, 5)), "PNG"))
    assert image.shape == (3, 4)
    assert (image == 77).all()


def test_png_palette_is_rgb(tmp_path: Path) -> None:
    source = Image.new("RGB", (4, 4), (0, 0, 255)).convert("P")
    image = load_image(_write_pil(tmp_path / "p.png", source, "PNG"))
    assert image.shape == (4, 4, 3)
    assert image[0, 0].tolist() == [0, 0, 255]


def test_png_16bit_gray_is_scaled_by_257(tmp_path: Path) -> None:
    array = np.array([[0, 257 * 100, 65535, 128], [129, 257 * 3 + 128, 1000, 65534]], np.uint16)
    image = load_image(_write_cv(tmp_path / "g16.png", array))
    assert image.dtype == np.uint8
    # round(v / 257): 128/257 and 899/257 round down, 129/257 and 1000/257 round up.
    assert image.tolist() == [[0, 100, 255, 0], [1, 3, 4, 255]]


def test_png_16bit_color(tmp_path: Path) -> None:
    array = np.zeros((2, 2, 3), np.uint16)
    array[..., 2] = 65535  # red in BGR
    array[..., 1] = 257 * 100
    image = load_image(_write_cv(tmp_path / "c16.png", array))
    assert image[0, 0].tolist() == [255, 100, 0]


def test_jpeg_gray(tmp_path: Path) -> None:
    image = load_image(_write_pil(tmp_path / "g.jpg", Image.new("L", (16, 16), 100), "JPEG"))
    assert image.shape == (16, 16)
    assert abs(int(image[8, 8]) - 100) <= 2


def test_jpeg_rgb(tmp_path: Path) -> None:
    source = Image.new("RGB", (16, 16), (255, 0, 0))
    image = load_image(_write_pil(tmp_path / "c.jpeg", source, "JPEG", quality=95))
    assert image.shape == (16, 16, 3)
    assert np.abs(image[8, 8].astype(int) - [255, 0, 0]).max() <= 3


@pytest.mark.parametrize(
    ("cmyk", "rgb"),
    [
        ((0, 255, 255, 0), (255, 0, 0)),
        ((255, 0, 0, 0), (0, 255, 255)),
        ((0, 0, 0, 0), (255, 255, 255)),
        ((0, 0, 0, 255), (0, 0, 0)),
    ],
)
def test_jpeg_cmyk_becomes_rgb(
    tmp_path: Path, cmyk: tuple[int, int, int, int], rgb: tuple[int, int, int]
) -> None:
    source = Image.new("CMYK", (16, 16), cmyk)
    image = load_image(_write_pil(tmp_path / "cmyk.jpg", source, "JPEG", quality=95))
    assert image.shape == (16, 16, 3)
    assert np.abs(image[8, 8].astype(int) - rgb).max() <= 4


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    source = Image.new("RGB", (40, 16), (0, 0, 0))
    source.paste((255, 255, 255), (0, 0, 8, 8))  # white block top-left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = _write_pil(tmp_path / "rot.jpg", source, "JPEG", quality=100, exif=exif.tobytes())
    image = load_image(path)
    assert image.shape == (40, 16, 3)
    # After a clockwise turn the stored top-left corner is shown top-right.
    assert image[2, 13].min() > 200
    assert image[2, 2].max() < 50


def test_tiff_16bit(tmp_path: Path) -> None:
    array = np.array([[0, 25700], [65535, 514]], np.uint16)
    image = load_image(_write_cv(tmp_path / "g16.tif", array))
    assert image.tolist() == [[0, 100], [255, 2]]


def test_tiff_float_in_unit_range_is_clipped(tmp_path: Path) -> None:
    array = np.array([[0.0, 0.5], [1.0, -0.25]], np.float32)
    image = load_image(_write_cv(tmp_path / "f.tiff", array))
    assert image.tolist() == [[0, 128], [255, 0]]


def test_tiff_float_over_one_is_stretched(tmp_path: Path) -> None:
    array = np.array([[10.0, 20.0], [30.0, 20.0]], np.float32)
    image = load_image(_write_cv(tmp_path / "f.tiff", array))
    assert image.tolist() == [[0, 128], [255, 128]]


def test_webp_lossless_color(tmp_path: Path) -> None:
    source = Image.new("RGB", (8, 8), (255, 0, 0))
    image = load_image(_write_pil(tmp_path / "c.webp", source, "WEBP", lossless=True))
    assert image.shape == (8, 8, 3)
    assert image[4, 4].tolist() == [255, 0, 0]


def test_non_ascii_file_name(tmp_path: Path) -> None:
    path = _write_cv(tmp_path / "сталь_1.png", np.full((3, 3, 3), RED_BGR, np.uint8))
    assert load_image(path)[0, 0].tolist() == [255, 0, 0]
    assert load_image(str(path)).shape == (3, 3, 3)


def test_decode_image_from_bytes() -> None:
    ok, encoded = cv2.imencode(".png", np.full((2, 2, 3), RED_BGR, np.uint8))
    assert ok
    assert decode_image(encoded.tobytes())[0, 0].tolist() == [255, 0, 0]


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InspectorError, match=r"empty\.png.*zero bytes"):
        load_image(path)


@pytest.mark.parametrize("options", [{}, {"progressive": True}])
def test_truncated_jpeg(tmp_path: Path, options: dict[str, object]) -> None:
    full = _write_pil(tmp_path / "full.jpg", Image.fromarray(_gradient()), "JPEG", **options)
    data = full.read_bytes()
    assert load_image(full).shape == (48, 64, 3)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InspectorError, match=r"cut\.jpg.*truncated"):
        load_image(cut)


def test_jpeg_missing_only_its_end_marker_is_truncated() -> None:
    ok, encoded = cv2.imencode(".jpg", _gradient())
    assert ok
    data = encoded.tobytes()
    assert data.endswith(b"\xff\xd9")
    with pytest.raises(InspectorError, match="truncated"):
        decode_image(data[:-2], "x.jpg")


def test_jpeg_with_trailing_bytes_is_accepted() -> None:
    ok, encoded = cv2.imencode(".jpg", _gradient())
    assert ok
    assert decode_image(encoded.tobytes() + b"\x00" * 10).shape == (48, 64, 3)


def test_jpeg_cut_in_headers_is_truncated() -> None:
    ok, encoded = cv2.imencode(".jpg", _gradient())
    assert ok
    with pytest.raises(InspectorError, match=r"'h\.jpg'"):
        decode_image(encoded.tobytes()[:40], "h.jpg")


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(InspectorError, match=r"notes\.png.*not a decodable image"):
        load_image(path)


def test_truncated_png(tmp_path: Path) -> None:
    data = _write_cv(tmp_path / "full.png", _gradient()).read_bytes()
    path = tmp_path / "half.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InspectorError, match=r"half\.png"):
        load_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InspectorError, match=r"nowhere\.png.*does not exist"):
        load_image(tmp_path / "nowhere.png")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(InspectorError, match=r"folder\.png.*folder"):
        load_image(folder)


def test_unsupported_channel_count() -> None:
    with pytest.raises(InspectorError, match=r"'five'.*unsupported"):
        _channels_to_rgb(np.zeros((2, 2, 5), np.uint8), False, "five")


def test_to_rgb() -> None:
    gray = np.array([[0, 100], [200, 255]], np.uint8)
    rgb = to_rgb(gray)
    assert rgb.shape == (2, 2, 3)
    assert rgb[1, 0].tolist() == [200, 200, 200]
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    rgba = np.dstack([red, np.zeros((1, 1, 1), np.uint8)])
    assert to_rgb(rgba).tolist() == [[[255, 0, 0]]]
    with pytest.raises(ValueError):
        to_rgb(np.zeros((2, 2), np.float32))


def test_truncated_jpeg_with_embedded_thumbnail_is_caught() -> None:
    # A thumbnail in a header segment has its own end marker; it must not hide the cut.
    ok, thumb = cv2.imencode(".jpg", _gradient(8, 8))
    ok2, main = cv2.imencode(".jpg", _gradient())
    assert ok and ok2
    payload = b"THUMB\x00" + thumb.tobytes()
    segment = b"\xff\xe2" + (len(payload) + 2).to_bytes(2, "big") + payload
    data = main.tobytes()[:2] + segment + main.tobytes()[2:]
    assert decode_image(data).shape == (48, 64, 3)
    with pytest.raises(InspectorError, match=r"'t\.jpg'.*truncated"):
        decode_image(data[: len(data) - 200], "t.jpg")
