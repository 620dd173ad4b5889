"""Fixtures for the window tests: a tiny random-weight profile, a generated folder, settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from PySide6.QtCore import QSettings

from engine.demo_data import write_neu_det
from tests.conftest import NEU
from ui.main_window import MainWindow

RESULT_TIMEOUT_MS = 60_000  # the first result includes loading the model on a busy machine


@pytest.fixture(scope="session")
def tiny_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 profile at 64x64 with random weights the test saves."""
    folder = tmp_path_factory.mktemp("profile")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(NEU))
    torch.save(model.state_dict(), folder / "weights.pth")
    classes = ", ".join(f'"{c}"' for c in NEU)
    (folder / "tiny.toml").write_text(
        f'name = "tiny"\narchitecture = "resnet18"\nweights = "weights.pth"\n'
        f"classes = [{classes}]\n[preprocess]\nsize = [64, 64]\n"
        '[cam]\nlayer = "layer4"\nmethod = "gradcam"\ncolormap = "jet"\nalpha = 0.5\n',
        encoding="utf-8",
    )
    return folder / "tiny.toml"


@pytest.fixture(scope="session")
def neu_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("neu")
    write_neu_det(folder, 12, seed=3)
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """Settings in a file of this test's own, never the user's."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def open_window(qtbot, settings: QSettings, folder: Path, profile: Path, **kwargs) -> MainWindow:
    """A shown window on the folder, started, with its first result arrived."""
    window = MainWindow(settings, folder, profile, device="cpu", **kwargs)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        window.start()
    return window


@pytest.fixture
def window(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path
) -> Iterator[MainWindow]:
    win = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False)
    yield win
    win.close()
    assert not win.threads.thread.isRunning()
