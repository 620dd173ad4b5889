"""Top-5 classes as bars, the explained class, the method chooser and the localisation scores."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.localization import Box, energy_in_box, pointing_hit
from engine.methods.registry import METHODS
from ui.theme import SMALL, scrolling, spaced

if TYPE_CHECKING:
    from engine.cam import CamResult

ROWS = 5
# What the bars mean for each kind of head (CamResult.head).
HEAD_HEADERS = {
    "softmax": "Top classes, softmax probability (click one to explain it):",
    "binary": "Classes, sigmoid probability: positive p, negative 1 - p (click one to explain it):",
    "multilabel": (
        "Top labels, sigmoid probability each: they need not add up to 100% "
        "(click one to explain it):"
    ),
}


class PredictionPanel(QDockWidget):
    """Click a class to explain it; 'Explain prediction' goes back to the predicted class."""

    sig_target_chosen = Signal(object)  # "pred" or a class index
    sig_method_chosen = Signal(str)
    sig_verdict_chosen = Signal(int)  # code 1..4, for the current image
    sig_corrected_chosen = Signal(object)  # a class name, or None for no correction

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Prediction", parent)
        self.setObjectName("PredictionPanel")
        self.method = QComboBox()
        for spec in METHODS:
            self.method.addItem(spec.label, spec.name)
        self.method.currentIndexChanged.connect(
            lambda i: self.sig_method_chosen.emit(self.method.itemData(i))
        )
        self.buttons: list[QPushButton] = []
        self.bars: list[QProgressBar] = []
        grid = spaced(QGridLayout(), margin=0)
        grid.setColumnStretch(1, 1)
        for row in range(ROWS):
            button = QPushButton()
            button.setCheckable(True)
            button.setStyleSheet("QPushButton { text-align: left; padding: 2px 6px; }")
            button.clicked.connect(lambda _=False, r=row: self._clicked(r))
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(True)
            grid.addWidget(button, row, 0)
            grid.addWidget(bar, row, 1)
            self.buttons.append(button)
            self.bars.append(bar)
        self.explained = QLabel()
        self.explained.setWordWrap(True)
        self.truth = QLabel()
        self.truth.setWordWrap(True)
        self.scores = QLabel()
        self.scores.setWordWrap(True)
        self.back = QPushButton("Explain prediction")
        self.back.setToolTip("Explain the predicted class again (P)")
        self.back.clicked.connect(lambda: self.sig_target_chosen.emit("pred"))
        self.verdict_box = QGroupBox("Verdict (keys 1-4, N for a note)")
        verdict_layout = spaced(QVBoxLayout(self.verdict_box), margin=SMALL)
        self.verdict_buttons: list[QPushButton] = []
        for code in (1, 2, 3, 4):
            button = QPushButton()
            button.setCheckable(True)
            button.setStyleSheet("QPushButton { text-align: left; padding: 2px 6px; }")
            button.setToolTip(f"Record this verdict and move on (key {code})")
            button.clicked.connect(lambda _=False, c=code: self._verdict_clicked(c))
            verdict_layout.addWidget(button)
            self.verdict_buttons.append(button)
        self.corrected = QComboBox()
        self.corrected.setToolTip(
            "The class this image really shows, stored with the current verdict"
        )
        self.corrected.currentIndexChanged.connect(
            lambda i: self.sig_corrected_chosen.emit(self.corrected.itemData(i))
        )
        corrected_form = QFormLayout()
        corrected_form.addRow("Corrected class", self.corrected)
        verdict_layout.addLayout(corrected_form)
        self.set_classes(())
        self.note = QLabel()
        self.note.setWordWrap(True)
        verdict_layout.addWidget(self.note)
        self.team = QLabel()  # the other reviewers' verdicts and the final one
        self.team.setWordWrap(True)
        self.team.setToolTip("Other reviewers' verdicts on this image and the lead's final one")
        self.team.hide()
        verdict_layout.addWidget(self.team)
        self.set_verdict_labels(None)
        form = QFormLayout()
        form.addRow("Method", self.method)
        body = QWidget()
        layout = spaced(QVBoxLayout(body), spacing=SMALL)
        layout.addLayout(form)
        self.header = QLabel(HEAD_HEADERS["softmax"])
        self.header.setWordWrap(True)
        layout.addWidget(self.header)
        layout.addLayout(grid)
        layout.addWidget(self.explained)
        layout.addWidget(self.truth)
        layout.addWidget(self.scores)
        layout.addWidget(self.back)
        layout.addWidget(self.verdict_box)
        layout.addStretch(1)
        self.setWidget(scrolling(body))  # shrinks below its content on a short screen
        self._indices: list[int] = []
        self.clear()

    def set_method(self, name: str) -> None:
        with QSignalBlocker(self.method):
            self.method.setCurrentIndex(max(0, self.method.findData(name)))

    def clear(self, message: str = "") -> None:
        for button, bar in zip(self.buttons, self.bars, strict=True):
            button.setText("")
            button.setEnabled(False)
            button.setChecked(False)
            bar.setValue(0)
            bar.setFormat("")
        self._indices = []
        self.explained.setText(message)
        self.truth.setText("")
        self.scores.setText("")

    def show_result(
        self, result: CamResult, ground_truth: str | None, boxes: Sequence[Box]
    ) -> None:
        self._indices = [p.index for p in result.top_k]
        self.header.setText(HEAD_HEADERS.get(result.head, HEAD_HEADERS["softmax"]))
        for row, (button, bar) in enumerate(zip(self.buttons, self.bars, strict=True)):
            if row < len(result.top_k):
                prediction = result.top_k[row]
                button.setText(prediction.name)
                button.setEnabled(True)
                button.setChecked(prediction.index == result.target_index)
                bar.setValue(round(1000 * prediction.probability))
                bar.setFormat(f"{prediction.probability:.1%}")
            else:
                button.setText("")
                button.setEnabled(False)
                bar.setValue(0)
                bar.setFormat("")
        predicted = result.predicted
        which = "predicted class" if result.target_index == predicted.index else "chosen class"
        self.explained.setText(f"Explaining <b>{result.target_name}</b> ({which})")
        if result.note:
            self.explained.setText(self.explained.text() + f"<br><i>{result.note}</i>")
        if result.warning:  # a map that shows nothing must not look like an answer
            warning = html.escape(result.warning, quote=False)
            self.explained.setText(
                self.explained.text() + f'<br><b style="color: #c5221f;">⚠ {warning}</b>'
            )
        if ground_truth is None:
            self.truth.setText("Ground truth: unknown")
            self.truth.setStyleSheet("")
        elif ground_truth == predicted.name:
            self.truth.setText(f"Ground truth: {ground_truth} ✓ matches the prediction")
            self.truth.setStyleSheet("color: #188038;")
        else:
            self.truth.setText(f"Ground truth: {ground_truth} ✗ prediction is {predicted.name}")
            self.truth.setStyleSheet("color: #c5221f; font-weight: bold;")
        self.scores.setText(_scores_text(result, boxes))

    def set_verdict_labels(self, labels: Sequence[str] | None) -> None:
        """The session's four labels on the buttons; None disables them (no session)."""
        for code, button in enumerate(self.verdict_buttons, start=1):
            label = labels[code - 1] if labels else "no session"
            button.setText(f"{code}  {label}")
            button.setEnabled(labels is not None)
        self.corrected.setEnabled(labels is not None)
        if labels is None:
            self.show_verdict(None, None)

    def set_classes(self, classes: Sequence[str]) -> None:
        """The model's classes as corrections; the first, empty entry means no correction."""
        with QSignalBlocker(self.corrected):
            self.corrected.clear()
            self.corrected.addItem("", None)
            for name in classes:
                self.corrected.addItem(name, name)

    def show_verdict(
        self, code: int | None, note: str | None, corrected: str | None = None
    ) -> None:
        """Check the current image's verdict button, show its corrected class and note."""
        for button_code, button in enumerate(self.verdict_buttons, start=1):
            button.setChecked(button_code == code)
        with QSignalBlocker(self.corrected):
            index = self.corrected.findData(corrected) if corrected else 0
            if index < 0:  # a class the loaded model does not list: show it anyway
                self.corrected.addItem(corrected, corrected)
                index = self.corrected.count() - 1
            self.corrected.setCurrentIndex(index)
        self.note.setText(f"Note: {note}" if note else "")
        self.note.setVisible(bool(note))  # an empty line would push the team's lines down

    def show_team(self, text: str) -> None:
        """The other reviewers' verdicts and the final one (rich text; empty hides the line)."""
        self.team.setText(text)
        self.team.setVisible(bool(text))

    def _verdict_clicked(self, code: int) -> None:
        self.sig_verdict_chosen.emit(code)

    def _clicked(self, row: int) -> None:
        if row < len(self._indices):
            self.sig_target_chosen.emit(self._indices[row])


def _scores_text(result: CamResult, boxes: Sequence[Box]) -> str:
    if not boxes:
        return "No ground-truth boxes: no pointing game or energy-in-box."
    hit = pointing_hit(result.cam, boxes)
    energy = energy_in_box(result.cam, boxes)
    hit_text = "—" if hit is None else ("hit ✓" if hit else "miss ✗")
    energy_text = "—" if energy is None else f"{energy:.1%}"
    return f"Pointing game: {hit_text}<br>Energy in boxes: {energy_text}"
