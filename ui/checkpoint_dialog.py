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

from engine.backends import architecture_for_file, dialog_architectures, weights_filter
from ui.jobs import CheckpointSpec


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
        # The common ones; any other name a profile may hold can be typed (the worker checks it).
        self.architecture.addItems(dialog_architectures())
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
        path, _ = QFileDialog.getOpenFileName(self, "Weights file", "", weights_filter())
        if path:
            self.weights.setText(path)
            implied = architecture_for_file(path)  # an .onnx file is the model itself
            if implied is not None:
                self.architecture.setCurrentText(implied)

    def spec(self) -> CheckpointSpec:
        weights = Path(self.weights.text().strip())
        classes = tuple(c.strip() for c in self.classes.text().split(",") if c.strip())
        side = self.size.value()
        target = weights.with_suffix(".toml") if self.save.isChecked() else None
        return CheckpointSpec(
            weights, self.architecture.currentText().strip(), classes, (side, side), target
        )
