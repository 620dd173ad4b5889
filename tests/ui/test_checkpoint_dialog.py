"""Tests for ui/checkpoint_dialog.py: the open dialog offers what the backend registry declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QPushButton

from engine.backends import dialog_architectures
from ui.checkpoint_dialog import CheckpointDialog
from ui.jobs import CheckpointSpec


def _pick(qtbot, dialog: CheckpointDialog, monkeypatch: pytest.MonkeyPatch, path: Path) -> str:
    """Click Browse… with the file dialog answering ``path``; the filter it was given."""
    asked: list[str] = []

    def answer(parent, caption: str, folder: str, filters: str) -> tuple[str, str]:
        asked.append(filters)
        return str(path), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(answer))
    browse = next(b for b in dialog.findChildren(QPushButton) if b.text() == "Browse…")
    qtbot.mouseClick(browse, Qt.MouseButton.LeftButton)
    return asked[0]


def test_dialog_lists_the_registry_and_an_onnx_file_chooses_onnx(
    qtbot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dialog = CheckpointDialog(None, ("ok", "defect"))
    qtbot.addWidget(dialog)
    combo = dialog.architecture
    assert tuple(combo.itemText(i) for i in range(combo.count())) == dialog_architectures()
    assert combo.currentText() == "resnet18"
    filters = _pick(qtbot, dialog, monkeypatch, tmp_path / "model.onnx")
    assert filters == "Weights (*.pth *.pt *.bin *.safetensors *.ckpt *.onnx);;All files (*)"
    assert dialog.spec() == CheckpointSpec(
        tmp_path / "model.onnx", "onnx", ("ok", "defect"), (224, 224), None
    )


def test_a_weights_file_keeps_the_chosen_architecture(
    qtbot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dialog = CheckpointDialog(None)
    qtbot.addWidget(dialog)
    dialog.architecture.setCurrentText("timm:resnet50")
    _pick(qtbot, dialog, monkeypatch, tmp_path / "run7.pth")
    assert dialog.spec().architecture == "timm:resnet50"
    assert dialog.spec().weights == tmp_path / "run7.pth"
