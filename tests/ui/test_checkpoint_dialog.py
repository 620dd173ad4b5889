"""Tests for ui/checkpoint_dialog.py: the open dialog offers what the backend registry declares."""

from __future__ import annotations

import json
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
        tmp_path / "model.onnx",
        "onnx",
        ("ok", "defect"),
        (224, 224),
        None,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
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


def test_height_width_and_normalisation_presets(qtbot) -> None:
    dialog = CheckpointDialog(None)
    qtbot.addWidget(dialog)
    dialog.height.setValue(48)
    dialog.width.setValue(192)
    dialog.normalisation.setCurrentText("Raw 0-255 (no normalisation)")
    spec = dialog.spec()
    assert spec.size == (48, 192)
    assert spec.mean == (0.0, 0.0, 0.0) and spec.std == pytest.approx((1 / 255,) * 3)
    assert dialog.mean.isReadOnly()
    dialog.normalisation.setCurrentText("Custom")
    dialog.mean.setText("0.1, 0.2")
    dialog.accept()
    assert dialog.problem.text() == "Mean needs three numbers, one per channel (R, G, B)"
    dialog.mean.setText("0.1, 0.2, 0.3")
    assert dialog.spec().mean == (0.1, 0.2, 0.3)


def test_a_fixed_onnx_input_fills_the_size(
    qtbot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    from tests.engine.backends.common import export

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1))
    path = export(net.eval(), tmp_path / "ocr.onnx", (1, 3, 48, 192))
    dialog = CheckpointDialog(None)
    qtbot.addWidget(dialog)
    _pick(qtbot, dialog, monkeypatch, path)
    assert dialog.spec().size == (48, 192)


def test_a_hugging_face_folder_fills_the_dialog(qtbot, tmp_path: Path) -> None:
    config = {"id2label": {"0": "ok", "1": "defect"}, "image_size": 32}
    processor = {"size": {"height": 32, "width": 48}, "image_mean": [0.5] * 3}
    processor["image_std"] = [0.5] * 3
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor), encoding="utf-8")
    dialog = CheckpointDialog(None)
    qtbot.addWidget(dialog)
    dialog.weights.setText(str(tmp_path))
    dialog.fill_from_folder(tmp_path)
    assert dialog.spec() == CheckpointSpec(
        tmp_path, "hf", ("ok", "defect"), (32, 48), None, (0.5,) * 3, (0.5,) * 3
    )
    assert dialog.normalisation.currentText() == "0.5 (Keras, Inception: pixels to [-1, 1])"


def test_no_weights_is_refused(qtbot) -> None:
    """With the weights left empty, Open loaded the current folder as the weights and, with
    "Save as a profile" ticked, wrote profile.toml into the folder the app was started from."""
    dialog = CheckpointDialog(None)
    qtbot.addWidget(dialog)
    dialog.save.setChecked(True)
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted
    assert dialog.problem.text().startswith("Choose the weights")
