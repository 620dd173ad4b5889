"""Tests for packaging/make_icon.py and packaging/install-desktop.sh (Linux desktop entry)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
import make_icon  # noqa: E402

ICONS = ROOT / "resources" / "icons"


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def test_committed_icons_are_what_the_script_draws(tmp_path: Path) -> None:
    written = make_icon.write_icons(tmp_path)
    assert {p.name for p in written} == {p.name for p in ICONS.iterdir()}
    for path in written:
        if path.suffix != ".png":
            continue
        # Pixels, not bytes: another OpenCV or zlib may compress the same image differently.
        drawn = _decode(path.read_bytes()).astype(int)
        committed = _decode((ICONS / path.name).read_bytes()).astype(int)
        assert drawn.shape == committed.shape and np.abs(drawn - committed).max() <= 2, path.name


def test_icon_has_transparent_corners_and_a_hot_centre() -> None:
    icon = cv2.imread(str(ICONS / "gradcam-inspector-256.png"), cv2.IMREAD_UNCHANGED)
    assert icon.shape == (256, 256, 4)
    assert icon[0, 0, 3] == 0 and icon[255, 255, 3] == 0 and icon[128, 128, 3] == 255
    b, g, r = (int(v) for v in icon[100, 120, :3])  # next to the crosshair, on the heat peak
    assert r > 200 and b < 80, (b, g, r)  # jet's red end


def test_ico_holds_every_size_as_png() -> None:
    data = (ICONS / "gradcam-inspector.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind, count) == (0, 1, len(make_icon.ICO_SIZES))
    sizes = []
    for i in range(count):
        w, h, _, _, planes, bits, length, offset = struct.unpack(
            "<BBBBHHII", data[6 + 16 * i : 22 + 16 * i]
        )
        image = _decode(data[offset : offset + length])
        side = w or 256
        assert (w, planes, bits) == (h, 1, 32) and image.shape == (side, side, 4)
        sizes.append(side)
    assert sizes == sorted(make_icon.ICO_SIZES)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A stand-in bundle folder (with a space in its path) holding an executable."""
    folder = tmp_path / "my apps" / "gradcam-inspector"
    folder.mkdir(parents=True)
    exe = folder / "gradcam-inspector"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return folder


def _install(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    script = ROOT / "packaging" / "install-desktop.sh"
    return subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_install_desktop_writes_entry_and_icons(bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = _install(data, str(bundle))
    assert done.returncode == 0, done.stderr
    entry = data / "applications" / "gradcam-inspector.desktop"
    lines = entry.read_text(encoding="utf-8").splitlines()
    assert f'Exec="{bundle}/gradcam-inspector" %f' in lines
    assert f"TryExec={bundle}/gradcam-inspector" in lines
    for key in ("Type=Application", "Icon=gradcam-inspector", "Terminal=false"):
        assert key in lines
    assert any(line.startswith("Categories=Graphics;Science;") for line in lines)
    icon = data / "icons/hicolor/256x256/apps/gradcam-inspector.png"
    assert icon.read_bytes() == (ICONS / "gradcam-inspector-256.png").read_bytes()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(
            ["desktop-file-validate", "--no-hints", str(entry)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
    removed = _install(data, "--uninstall")
    assert removed.returncode == 0 and not entry.exists() and not icon.exists()


def test_install_desktop_refuses_a_folder_without_the_app(tmp_path: Path) -> None:
    done = _install(tmp_path / "data", str(tmp_path))
    assert done.returncode == 1
    assert "not a built bundle" in done.stderr or "not executable" in done.stderr
    assert not (tmp_path / "data" / "applications" / "gradcam-inspector.desktop").exists()
