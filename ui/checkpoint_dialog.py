"""The open-checkpoint dialog: a weights file plus architecture, classes and input size."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ui.jobs import CheckpointSpec

# The common ones; any torchvision classifier name or "timm:<name>" can be typed (the worker
# checks it). "onnx" is chosen by itself when an .onnx file is picked.
ARCHITECTURES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "densenet121",
    "efficientnet_b0",
    "mobilenet_v3_large",
    "convnext_tiny",
    "vgg16",
    "vit_b_16",
    "swin_t",
    "timm:resnet50",
    "timm:legacy_xception",
    "timm:vit_small_patch16_224",
    "onnx",
)


class CheckpointDialog(QDialog):
    """Asks what the profile would say; optionally saves it as a profile next to the weights."""

    def __init__(self, parent: QWidget | None, classes: tuple[str, ...] = ()) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open checkpoint")
        self.weights = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.weights, 1)
        row.addWidget(browse)
        self.architecture = QComboBox()
        self.architecture.setEditable(True)
        self.architecture.addItems(ARCHITECTURES)
        self.classes = QLineEdit(", ".join(classes))
        self.classes.setPlaceholderText("comma-separated; empty: class_0, class_1, …")
        self.size = QSpinBox()
        self.size.setRange(16, 2048)
        self.size.setValue(224)
        self.size.setSuffix(" px")
        self.save = QCheckBox("Save as a profile next to the weights")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Weights", row)
        form.addRow("Architecture", self.architecture)
        form.addRow("Classes", self.classes)
        form.addRow("Input size", self.size)
        form.addRow(self.save)
        form.addRow(buttons)
        self.resize(520, self.sizeHint().height())

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Weights file",
            "",
            "Weights (*.pth *.pt *.bin *.safetensors *.ckpt *.onnx);;All files (*)",
        )
        if path:
            self.weights.setText(path)
            if path.lower().endswith(".onnx"):
                self.architecture.setCurrentText("onnx")

    def spec(self) -> CheckpointSpec:
        weights = Path(self.weights.text().strip())
        classes = tuple(c.strip() for c in self.classes.text().split(",") if c.strip())
        side = self.size.value()
        target = weights.with_suffix(".toml") if self.save.isChecked() else None
        return CheckpointSpec(
            weights, self.architecture.currentText().strip(), classes, (side, side), target
        )
