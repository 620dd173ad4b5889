"""Finds bundled resources the same way from source, an installed package or a frozen bundle."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

APP_DIR_NAME = "gradcam-inspector"


def resources_dir() -> Path:
    """The folder holding demo weights, profiles and sample images."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    """Path of one bundled resource, e.g. resource_path("profiles", "demo.toml")."""
    return resources_dir().joinpath(*parts)


def demo_images_dir() -> Path:
    """The bundled sample images (NEU-DET layout with annotations)."""
    return resource_path("samples")


def user_data_dir(
    platform: str = sys.platform, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Path:
    """The app's per-user data folder, where sessions and logs live."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    if platform == "win32":
        local = env.get("LOCALAPPDATA", "")
        base = Path(local) if local else home / "AppData" / "Local"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        # The XDG spec says a relative value is invalid and must be ignored.
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base / APP_DIR_NAME
