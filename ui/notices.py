"""Messages that do not take the keyboard: the notice banner and the keyboard shortcuts sheet."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.actions import ActionSpec, MenuEntry
from ui.theme import MEDIUM, SMALL, spaced

# Keys the views handle themselves (not actions), listed on the sheet with the actions.
VIEW_KEYS = (
    ("Image list", "Up / Down, Page Up / Page Down", "Move through the list"),
    ("Image list", "Ctrl+L then Esc", "Type a filter, then back to the list"),
    ("Gallery", "Arrow keys", "Move between thumbnails"),
    ("Gallery", "Enter, or a click", "Open the thumbnail's image in the main view"),
    ("Notice", "Esc", "Close the notice above the image"),
)


class NoticeBanner(QFrame):
    """A line above the image for what the user must know; it takes no focus and blocks no key.

    It replaces window-modal message boxes, which swallowed the review keys until dismissed.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("NoticeBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setStyleSheet(
            "#NoticeBanner { background: #fff4ce; border: 1px solid #e0c060; }"
            " #NoticeBanner QLabel { color: #3d3000; }"
        )
        self.title = QLabel()
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("×")
        close.setToolTip("Close this notice (Esc)")
        close.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        close.clicked.connect(self.hide)
        row = spaced(QHBoxLayout(self), margin=SMALL, spacing=MEDIUM)
        row.addWidget(self.title)
        row.addWidget(self.label, 1)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def tell(self, title: str, message: str) -> None:
        """Show this notice (replacing the one shown; the status bar keeps the history)."""
        self.title.setText(title)
        self.label.setText(message)
        self.show()

    def text(self) -> str:
        return f"{self.title.text()}: {self.label.text()}" if self.isVisible() else ""


def shortcut_text(spec: ActionSpec) -> str:
    """The shortcut as the menus show it, in this platform's notation."""
    if spec.shortcut is None:
        return ""
    return QKeySequence(spec.shortcut).toString(QKeySequence.SequenceFormat.NativeText)


def shortcut_rows(
    entries: Sequence[MenuEntry], extra: Sequence[tuple[str, str, str]] = ()
) -> list[tuple[str, str, str]]:
    """(where, keys, what) for every action with a key, ``extra`` (the keys the window adds
    when it builds its menus: the dock toggles), then the views' own keys."""
    rows = []
    for entry in entries:
        if isinstance(entry, ActionSpec) and entry.shortcut is not None:
            where = (entry.menu or "Anywhere").replace("&", "")
            rows.append((where, shortcut_text(entry), entry.title.rstrip("…")))
    return rows + list(extra) + list(VIEW_KEYS)


class ShortcutsSheet(QDialog):
    """Help > Keyboard shortcuts: every key of the window in one table (not modal)."""

    def __init__(
        self,
        entries: Sequence[MenuEntry],
        parent: QWidget | None = None,
        extra: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcut_rows(entries, extra)
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "What"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, values in enumerate(rows):
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        layout = spaced(QVBoxLayout(self), margin=MEDIUM)
        layout.addWidget(self.table)
        self.resize(620, 560)
