"""Tests for engine/images.py's limits and render_panels' bounds: huge inputs, bounded memory."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import InspectorError
from engine.images import DecodeLimits, image_size, load_image
from engine.render import PANEL_MAX_SIDE, render_panels
from tests.engine.memory_child import run_limited

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux")

MB = 1024**2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zeros_png(path: Path, width: int, height: int) -> Path:
    """A valid 8-bit gray PNG of zeros, compressed row by row (never held whole in memory)."""
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + samples
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )
    return path


def _load_in_child(path: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """load_image(path) in a child capped at 64 MB of new memory; prints the refusal."""
    code = f"""
        try:
            load_image({str(path)!r})
        except InspectorError as exc:
            print(exc)
        """
    imports = "from engine.images import load_image\nfrom engine.errors import InspectorError"
    return run_limited(imports, code, 64 * MB, timeout)


def test_a_tiny_png_of_20000x20000_is_refused_from_its_header(tmp_path: Path) -> None:
    """389 KB on disk, 400 MB decoded: refused in one line, within 64 MB of new memory."""
    path = zeros_png(tmp_path / "zeros.png", 20000, 20000)
    assert path.stat().st_size < 1 * MB
    child = _load_in_child(path)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == (
        f"cannot read '{path}': 20000x20000 pixels is over the limit of 25,000,000 pixels; "
        "shrink the image or raise --max-pixels"
    )


def test_a_sparse_20_gb_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:
        handle.truncate(20 * 1024**3)  # sparse: no disk space used
    child = _load_in_child(path)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == (
        f"cannot read '{path}': the file is 20,480 MB, over the 256 MB limit for an image file"
    )


def test_a_large_jpeg_is_decoded_reduced_to_fit_the_limit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = cv2.resize(rng.integers(0, 255, (30, 40, 3), np.uint8), (4000, 3000))
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), image)
    decoded = load_image(path, DecodeLimits(max_pixels=1_000_000))
    reference = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_4), cv2.COLOR_BGR2RGB)
    assert decoded.shape == (750, 1000, 3)
    np.testing.assert_array_equal(decoded, reference)
    gray = tmp_path / "gray.jpg"
    cv2.imwrite(str(gray), image[:, :, 0])
    assert load_image(gray, DecodeLimits(max_pixels=3_000_000)).shape == (1500, 2000)


def test_a_png_over_the_limit_is_refused_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), np.zeros((50, 300), np.uint8))
    with pytest.raises(InspectorError, match=r"300x50 pixels is over the limit of 10,000 pixels"):
        load_image(path, DecodeLimits(max_pixels=10_000))
    assert load_image(path, DecodeLimits(max_pixels=15_000)).shape == (50, 300)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tiff"])
def test_header_sizes_match_the_decoder(ext: str) -> None:
    ok, data = cv2.imencode(ext, np.zeros((37, 53, 3), np.uint8))
    assert ok and image_size(data.tobytes()) == (53, 37)


def test_panels_of_a_1x100000_strip_stay_bounded() -> None:
    """The figure used to scale the strip up 224 times and ask for 15 GB."""
    child = run_limited(
        "import numpy as np\nfrom engine.render import render_panels",
        """
        image = np.zeros((1, 100000), np.uint8)
        figure = render_panels(image, np.zeros((1, 100000), np.float32), title="t")
        print(*figure.shape)
        """,
        256 * MB,
    )
    assert child.returncode == 0, child.stderr
    height, width, channels = map(int, child.stdout.split())
    # Panels 2048x1 (the strip shrunk, never grown), four 8 px margins, a caption strip.
    assert width == 3 * PANEL_MAX_SIDE + 4 * 8 and height < 100 and channels == 3


def test_panels_of_a_large_image_are_shrunk_to_the_maximum_side() -> None:
    image = np.zeros((3000, 5000), np.uint8)
    figure = render_panels(image, np.zeros((3000, 5000), np.float32))
    # Panels of 2048x1229 (5000x3000 scaled by 2048/5000), four margins of 3% of 1229 px.
    assert figure.shape[1] == 3 * PANEL_MAX_SIDE + 4 * 37
    assert 1229 < figure.shape[0] < 1229 + 200


def test_a_fifo_named_like_an_image_is_refused_without_waiting(tmp_path: Path) -> None:
    """Reading a FIFO used to block until something wrote to it (forever, in a batch)."""
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    child = _load_in_child(path, timeout=20)
    assert child.stdout.strip() == f"cannot read '{path}': not a regular file (a pipe or a device)"


def test_a_folder_named_like_an_image_keeps_its_message(tmp_path: Path) -> None:
    (tmp_path / "x.png").mkdir()
    with pytest.raises(InspectorError, match=r"it is a folder, not an image$"):
        load_image(tmp_path / "x.png")
