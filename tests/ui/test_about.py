"""Tests for ui/about.py and the window's title: versions, device, profile and log folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchvision
from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion

import engine
from ui import about
from ui.main_window import MainWindow


def test_about_box_shows_what_the_window_runs_with(
    window: MainWindow, tiny_profile: Path, tmp_path: Path
) -> None:
    window.log_path = tmp_path / "logs" / "gradcam-inspector.log"
    info = window.about_info()
    assert info.version == engine.__version__
    assert info.torch == torch.__version__ and info.torchvision == torchvision.__version__
    expected_cuda = "not available" if not torch.cuda.is_available() else "available"
    assert info.cuda.startswith(expected_cuda)
    assert info.profile == f"tiny — {tiny_profile}"
    assert info.qt == f"PySide6 {pyside_version}, Qt {qVersion()}"
    assert info.log_folder == str(tmp_path / "logs")
    box = window.show_about()
    try:
        text = box.text()
        assert f"Grad-CAM Inspector {engine.__version__}" in text
        for value in (torch.__version__, torchvision.__version__, str(tiny_profile), qVersion()):
            assert value in text
        assert str(tmp_path / "logs") in text
        assert box.isVisible()  # open(): shown without blocking the test
    finally:
        box.close()


def test_about_never_imports_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the worker has imported torch, the box says so instead of importing it."""
    for name in ("torch", "torchvision"):
        monkeypatch.delitem(sys.modules, name)
    info = about.gather(None, None, None, "auto", None)
    assert "torch" not in sys.modules and "torchvision" not in sys.modules
    assert info.torch == info.torchvision == about.NOT_LOADED
    assert info.cuda.startswith("not known yet")
    assert info.profile == "none loaded" and info.log_folder == "not logging to a file"


def test_cuda_line_names_the_device_only_once_initialised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"Fake GPU {device}")
    assert about._cuda(True, "cuda:0") == "available, in use: Fake GPU cuda:0"
    assert about._cuda(True, "cpu") == "available (the model runs on the CPU)"
    assert about._cuda(False, "cpu") == "not available"


def test_title_names_folder_profile_and_version(window: MainWindow, neu_folder: Path) -> None:
    assert window.windowTitle() == (
        f"{neu_folder.name} — tiny — Grad-CAM Inspector {engine.__version__}"
    )


def test_window_title_leaves_out_what_is_not_known() -> None:
    name = f"Grad-CAM Inspector {engine.__version__}"
    assert about.window_title(Path("/data/neu"), "tiny") == f"neu — tiny — {name}"
    assert about.window_title(Path("/data/neu"), None) == f"neu — {name}"
    assert about.window_title(None, "tiny") == f"tiny — {name}"
    assert about.window_title(None, None) == name
    assert about.window_title(Path("/"), None) == f"/ — {name}"  # a root folder has no name
