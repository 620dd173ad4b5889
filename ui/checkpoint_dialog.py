"""The open-checkpoint dialog: weights (a file or a Hugging Face folder) plus architecture,
classes, input height and width, and the normalisation the model was trained with."""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from engine.backends import architecture_for_file, dialog_architectures, weights_filter
from engine.backends.hf_backend import folder_defaults, is_hf_folder
from engine.errors import InspectorError
from ui.jobs import CheckpointSpec

Stats = tuple[tuple[float, ...], tuple[float, ...]]
CUSTOM = "Custom"
# Mean and std on pixels scaled to [0, 1], as the profile's [preprocess] holds them.
NORMALISATIONS: dict[str, Stats] = {
    "ImageNet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "0.5 (Keras, Inception: pixels to [-1, 1])": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "Raw 0-255 (no normalisation)": ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)),
    "CIFAR-10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


class CheckpointDialog(QDialog):
    """Asks what the profile would say; optionally saves it as a profile next to the weights."""

    def __init__(self, parent: QWidget | None, classes: tuple[str, ...] = ()) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open checkpoint")
        self.weights = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder = QPushButton("Folder…")
        folder.setToolTip("A Hugging Face save_pretrained folder (config.json and weights)")
        folder.clicked.connect(self._browse_folder)
        row = QHBoxLayout()
        row.addWidget(self.weights, 1)
        row.addWidget(browse)
        row.addWidget(folder)
        self.architecture = QComboBox()
        self.architecture.setEditable(True)
        # The common ones; any other name a profile may hold can be typed (the worker checks it).
        self.architecture.addItems(dialog_architectures())
        self.classes = QLineEdit(", ".join(classes))
        self.classes.setPlaceholderText("comma-separated; empty: class_0, class_1, …")
        self.height, self.width = _side(), _side()
        sides = QHBoxLayout()
        sides.addWidget(self.height)
        sides.addWidget(self.width)
        self.normalisation = QComboBox()
        self.normalisation.addItems([*NORMALISATIONS, CUSTOM])
        self.mean, self.std = QLineEdit(), QLineEdit()
        self.normalisation.currentTextChanged.connect(self._preset_chosen)
        self._preset_chosen(self.normalisation.currentText())
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #c5221f;")
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
        form.addRow("Input height × width", sides)
        form.addRow("Normalisation", self.normalisation)
        form.addRow("Mean (R, G, B)", self.mean)
        form.addRow("Std (R, G, B)", self.std)
        form.addRow(self.problem)
        form.addRow(self.save)
        form.addRow(buttons)
        self.resize(560, self.sizeHint().height())

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Weights file", "", weights_filter())
        if path:
            self.weights.setText(path)
            implied = architecture_for_file(path)  # an .onnx file is the model itself
            if implied is not None:
                self.architecture.setCurrentText(implied)
            if implied == "onnx":
                self._fill_onnx_size(Path(path))

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Hugging Face model folder")
        if path:
            self.weights.setText(path)
            if is_hf_folder(Path(path)):
                self.fill_from_folder(Path(path))

    def fill_from_folder(self, folder: Path) -> None:
        """What a Hugging Face folder says: architecture, classes, size, mean and std."""
        self.architecture.setCurrentText("hf")
        try:
            found = folder_defaults(folder)
        except InspectorError:
            return  # loading the folder will report what is wrong with it
        if found.get("classes"):
            self.classes.setText(", ".join(found["classes"]))
        pre = found.get("preprocess", {})
        if "size" in pre:
            self.height.setValue(pre["size"][0])
            self.width.setValue(pre["size"][1])
        if "mean" in pre and "std" in pre:
            self.set_stats((tuple(pre["mean"]), tuple(pre["std"])))

    def _fill_onnx_size(self, path: Path) -> None:
        # A fixed input size is the only size the graph runs at; a free one is left as typed.
        with contextlib.suppress(Exception):  # no onnx installed, or not a readable file
            import onnx

            from engine.backends.onnx_backend import fixed_size
            from engine.backends.onnx_graph import declared_input

            declared = declared_input(onnx.load(str(path), load_external_data=False))
            size = fixed_size(declared, "nchw") or fixed_size(declared, "nhwc")
            if size is not None:
                self.height.setValue(size[0])
                self.width.setValue(size[1])

    def set_stats(self, stats: Stats) -> None:
        """Show mean and std, under their preset's name when they are one."""
        name = next((n for n, s in NORMALISATIONS.items() if _same(s, stats)), CUSTOM)
        self.normalisation.setCurrentText(name)
        self.mean.setText(_numbers(stats[0]))
        self.std.setText(_numbers(stats[1]))

    def _preset_chosen(self, name: str) -> None:
        custom = name == CUSTOM
        self.mean.setReadOnly(not custom)
        self.std.setReadOnly(not custom)
        if not custom:
            mean, std = NORMALISATIONS[name]
            self.mean.setText(_numbers(mean))
            self.std.setText(_numbers(std))

    def accept(self) -> None:
        """Close only with 3 numbers each for mean and std: a model fed the wrong ones still
        predicts, wrongly, and says nothing."""
        for name, field in (("Mean", self.mean), ("Std", self.std)):
            values = _parse_numbers(field.text())
            if values is None or len(values) != 3:
                self.problem.setText(f"{name} needs three numbers, one per channel (R, G, B)")
                return
        # An empty field is Path("") (the current folder): it was loaded as the weights and,
        # with "Save as a profile" ticked, a profile.toml was written wherever the app started.
        if not self.weights.text().strip():
            self.problem.setText("Choose the weights: a file (Browse…) or a folder (Folder…)")
            return
        super().accept()

    def spec(self) -> CheckpointSpec:
        """The dialog's answers (mean and std as accept() checked them)."""
        weights = Path(self.weights.text().strip())
        classes = tuple(c.strip() for c in self.classes.text().split(",") if c.strip())
        target = weights.with_suffix(".toml") if self.save.isChecked() else None
        if weights.is_dir():
            target = weights / "profile.toml" if self.save.isChecked() else None
        return CheckpointSpec(
            weights,
            self.architecture.currentText().strip(),
            classes,
            (self.height.value(), self.width.value()),
            target,
            _parse_numbers(self.mean.text()),
            _parse_numbers(self.std.text()),
        )


def _side() -> QSpinBox:
    box = QSpinBox()
    box.setRange(16, 2048)
    box.setValue(224)
    box.setSuffix(" px")
    return box


def _numbers(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.6g}" for v in values)


def _parse_numbers(text: str) -> tuple[float, ...] | None:
    try:
        return tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError:
        return None


def _same(a: Stats, b: Stats) -> bool:
    pairs = [*zip(a[0], b[0], strict=False), *zip(a[1], b[1], strict=False)]
    return len(b[0]) == len(b[1]) == 3 and all(abs(x - y) < 1e-6 for x, y in pairs)
