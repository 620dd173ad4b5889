"""The model dock: which profile is loaded and the layer tree that picks the CAM's target layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ui.theme import scrolling, spaced

if TYPE_CHECKING:
    from engine.layers import LayerInventory

NAME_ROLE = Qt.ItemDataRole.UserRole + 1
SPATIAL_ROLE = Qt.ItemDataRole.UserRole + 2
GREY = QBrush(QColor("#9aa0a6"))
HIGHLIGHT = QBrush(QColor("#fde293"))
HIGHLIGHT_TEXT = QBrush(QColor("#202124"))


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "—" if shape is None else " × ".join(str(s) for s in shape)


def _params_text(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.2f} M"
    if count >= 1_000:
        return f"{count / 1e3:.1f} k"
    return str(count)


class ModelDock(QDockWidget):
    """Profile name, open buttons and a QTreeView over the engine's layer inventory."""

    sig_layer_clicked = Signal(str)
    sig_open_profile = Signal()
    sig_open_checkpoint = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.setObjectName("ModelDock")
        self.title = QLabel("Loading model…")
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.details = QLabel()
        self.details.setWordWrap(True)
        open_profile = QPushButton("Open profile…")
        open_profile.clicked.connect(self.sig_open_profile)
        open_checkpoint = QPushButton("Open checkpoint…")
        open_checkpoint.clicked.connect(self.sig_open_checkpoint)
        self.model = QStandardItemModel(0, 4)
        self.model.setHorizontalHeaderLabels(["Layer", "Type", "Output", "Params"])
        self.tree = QTreeView()
        self.tree.setModel(self.model)
        self.tree.setUniformRowHeights(True)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setAlternatingRowColors(True)
        self.tree.setIndentation(14)
        header = self.tree.header()
        # The name, output and parameters as wide as their content (the name is what is
        # chosen); the type takes what is left and is the one elided in a narrow dock.
        header.setStretchLastSection(False)
        for column in (0, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(40)
        self.tree.clicked.connect(self._clicked)
        hint = QLabel(
            "Click a layer with a spatial output (a map or transformer tokens, not greyed) "
            "to explain it."
        )
        hint.setWordWrap(True)
        hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)  # muted in light and dark
        buttons = spaced(QHBoxLayout(), margin=0)
        buttons.addWidget(open_profile)
        buttons.addWidget(open_checkpoint)
        body = QWidget()
        layout = spaced(QVBoxLayout(body))
        layout.addWidget(self.title)
        layout.addWidget(self.details)
        layout.addLayout(buttons)
        layout.addWidget(self.tree, 1)
        layout.addWidget(hint)
        self.setWidget(scrolling(body))  # shrinks below its content on a short screen
        self._items: dict[str, list[QStandardItem]] = {}
        self._current = ""

    def set_loading(self, text: str) -> None:
        self.title.setText(text)

    def set_model(self, title: str, details: str, inventory: LayerInventory) -> None:
        self.title.setText(title)
        self.details.setText(details)
        self.model.removeRows(0, self.model.rowCount())
        self._items = {}
        parents: dict[str, QStandardItem] = {}
        for info in inventory.layers:
            if not info.name:
                continue  # the root module is the model itself
            parent_name, _, short = info.name.rpartition(".")
            row = [
                QStandardItem(short),
                QStandardItem(info.type_name),
                QStandardItem(_shape_text(info.output_shape)),
                QStandardItem(_params_text(info.parameters)),
            ]
            row[0].setData(info.name, NAME_ROLE)
            row[0].setData(info.spatial, SPATIAL_ROLE)
            # Token (ViT) and channels-last (Swin) outputs are explainable too: say how they
            # are laid on the image.
            reading = "" if info.grid is None else info.grid.describe()
            row[0].setToolTip(f"{info.name}: {reading}" if info.spatial else info.name)
            if not info.spatial:
                for item in row:
                    item.setForeground(GREY)
                    item.setToolTip(f"{info.name}: no spatial output, no CAM here")
            owner = parents.get(parent_name)
            (owner or self.model.invisibleRootItem()).appendRow(row)
            parents[info.name] = row[0]
            self._items[info.name] = row
        self.tree.expandToDepth(0)
        self._current = ""

    def set_current(self, name: str) -> None:
        """Highlight the target layer (bold, tinted) and reveal it."""
        for layer, highlighted in ((self._current, False), (name, True)):
            for item in self._items.get(layer, ()):
                font = QFont(item.font())
                font.setBold(highlighted)
                item.setFont(font)
                item.setBackground(HIGHLIGHT if highlighted else QBrush())
                item.setForeground(HIGHLIGHT_TEXT if highlighted else QBrush())  # dark theme too
        self._current = name
        row = self._items.get(name)
        if row:
            index = row[0].index()
            self.tree.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)

    def _clicked(self, index: QModelIndex) -> None:
        first = index.siblingAtColumn(0)
        if first.data(SPATIAL_ROLE):
            self.sig_layer_clicked.emit(first.data(NAME_ROLE))
