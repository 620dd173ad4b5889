"""Tools > Sanity check / Compare methods / Compare layers / Metrics for the current image.

Each opens a dialog at once ("Computing…"), sends one TrustCheck job to the worker and fills
the dialog when the answer comes back; the model never runs on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QSignalBlocker, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from engine.methods.registry import Smoothing
from ui.jobs import ClassTrust, TrustCheck, TrustChecked

if TYPE_CHECKING:
    from engine.dataset import ImageRecord
    from ui.main_window import MainWindow

SMOOTH_AUG = "Augmentation smoothing (six passes)"
SMOOTH_EIGEN = "Eigen smoothing"
TITLES = {
    "sanity": "Sanity check",
    "methods": "Compare methods",
    "layers": "Compare layers",
    "metrics": "Metrics for this image",
}


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    """An RGB uint8 image as a QPixmap (copied: the array may go away)."""
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


class TrustDialog(QDialog):
    """A figure above its text; non-modal, so the review goes on while it computes."""

    def __init__(
        self,
        title: str,
        subject: str,
        parent: QWidget | None = None,
        more: tuple[str, Callable[[], object]] | None = None,
    ) -> None:
        """``more``: a button's text and what it does (Compare methods: add the slow ones)."""
        super().__init__(parent)
        self.setWindowTitle(f"{title}: {subject}")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.figure = QLabel()
        self.figure.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scroll = scroll = QScrollArea()
        scroll.setWidget(self.figure)
        scroll.setWidgetResizable(True)
        self.text = QLabel("Computing…")
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setStyleSheet("font-family: monospace")
        # A long summary line wraps instead of widening the dialog past the screen's edge.
        self.text.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        self.more_button: QPushButton | None = None
        if more is not None:
            self.more_button = buttons.addButton(more[0], QDialogButtonBox.ButtonRole.ActionRole)
            self.more_button.clicked.connect(more[1])
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(900, 420)

    def computing(self) -> None:
        self.text.setText("Computing… (Score-CAM's progress is in the status bar)")
        if self.more_button is not None:
            self.more_button.setEnabled(False)

    def show_answer(self, done: TrustChecked) -> None:
        if done.figure is not None:
            self.figure.setPixmap(to_pixmap(done.figure))
            self.scroll.show()
        else:
            self.scroll.hide()  # the metrics: text only, no empty frame above it
        prefix = "Could not finish: " if done.failed else ""
        self.text.setText(prefix + done.text)
        self._fit()

    def _fit(self) -> None:
        """Grow to show the whole figure and text where the screen allows, never beyond it."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        free = screen.availableGeometry()
        max_w, max_h = max(free.width() - 40, 300), max(free.height() - 60, 200)
        margins = self.layout().contentsMargins()
        frame = 2 * self.scroll.frameWidth()
        width = self.width()
        if self.scroll.isVisibleTo(self) and not self.figure.pixmap().isNull():
            figure = self.figure.pixmap().size()
            width = max(width, figure.width() + frame + margins.left() + margins.right())
        width = min(width, max_w)
        inner = width - margins.left() - margins.right()
        spacing = self.layout().spacing()
        height = margins.top() + margins.bottom() + self.text.heightForWidth(inner)
        height += self.findChild(QDialogButtonBox).sizeHint().height() + 2 * spacing
        if self.scroll.isVisibleTo(self) and not self.figure.pixmap().isNull():
            figure = self.figure.pixmap().size()
            bar = self.scroll.horizontalScrollBar().sizeHint().height()
            height += figure.height() + frame + (bar if figure.width() + frame > inner else 0)
        height = min(max(height, 200), max_h)
        self.resize(width, height)
        # Grown where it stood, it could run past the screen's right or bottom edge: move it in.
        frame = self.frameGeometry()
        left = max(free.left(), min(frame.left(), free.right() + 1 - frame.width()))
        top = max(free.top(), min(frame.top(), free.bottom() + 1 - frame.height()))
        self.move(left, top)


class ClassTrustTab(QWidget):
    """Where the model looks per class (the last folder export), with border heat and metrics."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.figure = QLabel()
        self.figure.setAlignment(Qt.AlignmentFlag.AlignCenter)
        scroll = QScrollArea()
        scroll.setWidget(self.figure)
        scroll.setWidgetResizable(True)
        self.text = QLabel()
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.text)

    def show_trust(self, trust: ClassTrust) -> None:
        self.figure.setPixmap(to_pixmap(trust.figure))
        self.text.setText("\n".join(trust.lines))


class TrustTools(QObject):
    """Opens a trust tool's dialog for the window's current image and fills it when done."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._job_id = 0
        self._dialogs: dict[int, TrustDialog] = {}
        # A bound method: the signal comes from the worker thread (see ARCHITECTURE.md).
        window.worker.sig_trust_checked.connect(self._answered)
        window.worker.sig_class_trust.connect(self._show_class_trust)
        self.class_tab: ClassTrustTab | None = None
        window.state.subscribe(self._show_smoothing)

    def open(self, tool: str) -> TrustDialog | None:
        """The tool's dialog, its job sent; None (and a status message) when there is no
        image or no model yet."""
        window = self.window
        record = window.images.current_record()
        if record is None or not window.model_ready:
            window.statusBar().showMessage("Open a model and an image first", 5000)
            return None
        more = None
        if tool == "methods":
            more = ("Add Score-CAM and Guided Grad-CAM", lambda: self._more(dialog, record))
        dialog = TrustDialog(TITLES[tool], record.rel_path.as_posix(), window, more)
        self._send(tool, record, dialog)
        dialog.show()
        return dialog

    def _more(self, dialog: TrustDialog, record: ImageRecord) -> None:
        """Compare methods again, with the methods that run the model (Score-CAM: slow)."""
        dialog.computing()
        self._send("all_methods", record, dialog)

    def _send(self, tool: str, record: ImageRecord, dialog: TrustDialog) -> None:
        options = self.window.state.options
        self._job_id += 1
        job_id = self._job_id
        self._dialogs[job_id] = dialog
        dialog.destroyed.connect(lambda _=None: self._dialogs.pop(job_id, None))
        job = TrustCheck(
            job_id,
            tool,
            record,
            options.layer,
            options.target,
            options.method,
            options.style,
            options.smoothing,
        )
        self.window.worker.submit(job)

    def set_smoothing(self, aug: bool | None = None, eigen: bool | None = None) -> None:
        """Turn the view's aug_smooth or eigen_smooth on or off (the map is computed again)."""
        old = self.window.state.options.smoothing
        new = Smoothing(old.aug if aug is None else aug, old.eigen if eigen is None else eigen)
        self.window.state.update(smoothing=new)

    def _show_smoothing(self, names: frozenset[str]) -> None:
        """Keep the Tools menu's smoothing ticks on the state (a profile can set them)."""
        if "smoothing" not in names:
            return
        smoothing = self.window.state.options.smoothing
        for action in self.window.actions():
            on = {SMOOTH_AUG: smoothing.aug, SMOOTH_EIGEN: smoothing.eigen}.get(action.text())
            if on is not None:
                with QSignalBlocker(action):
                    action.setChecked(on)

    def set_export_metrics(self, on: bool) -> None:
        """Folder exports add every metric this installation can compute (ROAD needs SciPy)."""
        from engine.metrics.registry import available_metrics, metric_names

        self.window.exports.metrics = available_metrics() if on else ()
        left_out = [n for n in metric_names() if n not in self.window.exports.metrics]
        if on and left_out:
            self.window.statusBar().showMessage(
                f"Without SciPy, folder exports leave out {', '.join(left_out)}", 10000
            )

    def _show_class_trust(self, trust: ClassTrust) -> None:
        """The last folder export's class averages, in a tab of the Summary dock."""
        if self.class_tab is None:
            self.class_tab = ClassTrustTab()
            self.window.summary.tabs.addTab(self.class_tab, "Class averages")
        self.class_tab.show_trust(trust)

    def _answered(self, done: TrustChecked) -> None:
        dialog = self._dialogs.pop(done.job_id, None)
        if dialog is not None:
            dialog.show_answer(done)
