"""Memory benchmark: peak RSS of a one-image batch run per kind of hostile image.

Run: `PYTHONPATH=. python benchmarks/bench_memory.py [--device cpu]`.
Each case is a fresh child process running `batch` on the demo model with one image (the last
case: a folder of four); its peak resident memory comes from os.wait4. The first case (a normal
200x200 image) is the model's own footprint, so every other figure is also printed as what it
adds to it.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MB = 1024**2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zeros_png(path: Path, width: int, height: int) -> Path:
    """A valid gray PNG of zeros compressed row by row: tiny on disk, huge decoded."""
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def smooth(height: int, width: int) -> np.ndarray:
    """An RGB image with some structure (a blown-up random 8x8 pattern)."""
    small = np.random.default_rng(0).integers(0, 255, (8, 8, 3), np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def make_cases(folder: Path) -> list[tuple[str, Path, list[str]]]:
    """(label, image file, extra batch options) per case; each image in a folder of its own."""
    cases = []

    def put(label: str, name: str, write, extra: list[str] | None = None) -> None:
        sub = folder / f"case{len(cases)}"
        sub.mkdir()
        path = sub / name
        write(path)
        cases.append((label, path, extra or []))

    put("normal 200x200 PNG", "normal.png", lambda p: cv2.imwrite(str(p), smooth(200, 200)))
    put(
        "10000x10000 JPEG (decoded at 1/2)",
        "big.jpg",
        lambda p: cv2.imwrite(str(p), smooth(10000, 10000)),
    )
    put(
        "10000x10000 PNG (refused)",
        "big.png",
        lambda p: cv2.imwrite(str(p), smooth(10000, 10000), [cv2.IMWRITE_PNG_COMPRESSION, 1]),
    )
    put(
        "1x100000 PNG with --panels",
        "strip.png",
        lambda p: cv2.imwrite(str(p), np.zeros((1, 100000), np.uint8)),
        ["--panels"],
    )
    put("20000x20000 PNG of zeros (refused)", "zeros.png", lambda p: zeros_png(p, 20000, 20000))
    put("4 x 5000x5000 JPEG, --batch-size 8", "many0.jpg", _four_large_jpegs, ["--batch-size", "8"])
    return cases


def _four_large_jpegs(first: Path) -> None:
    """Four 25 MP JPEGs in one folder: a chunk ends once it holds --max-pixels."""
    image = smooth(5000, 5000)
    for index in range(4):
        cv2.imwrite(str(first.with_name(f"many{index}.jpg")), np.roll(image, index, axis=0))


def peak_rss(image: Path, extra: list[str], device: str, output: Path) -> tuple[int, int]:
    """(peak RSS in bytes, exit code) of one batch run in a fresh process."""
    argv = ["batch", "--input", str(image), "--output", str(output), "--device", device, *extra]
    code = f"import sys\nfrom engine.cli import run\nsys.exit(run({argv!r}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024, child.returncode  # ru_maxrss is in KB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        cases = make_cases(folder)
        print(f"{'image':38} {'file':>9} {'exit':>4} {'peak RSS':>9} {'over normal':>11}")
        base = None
        for index, (label, image, extra) in enumerate(cases):
            source = image.parent if image.name.startswith("many") else image
            rss, code = peak_rss(source, extra, args.device, folder / f"out{index}")
            base = rss if base is None else base
            size = image.stat().st_size
            print(
                f"{label:38} {size / MB:7.1f}MB {code:4d} {rss / MB:7.0f}MB "
                f"{(rss - base) / MB:+9.0f}MB"
            )


if __name__ == "__main__":
    main()
