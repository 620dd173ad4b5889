"""Finds bundled resources the same way from source, an installed package or a frozen bundle."""

from __future__ import annotations

import sys
from pathlib import Path


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
