"""The image list: a table model over scanned records, a filter box and next/previous."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.dataset import ImageRecord
from engine.lru import LruCache
from ui.theme import SMALL, spaced, verdict_tint
from ui.thumbnails import THUMBNAIL_SIZE, ThumbnailLoader

COLUMNS = ("File", "Truth", "Predicted", "Conf.", "Verdict")
COLUMN_TIPS = (
    "File name (hover for the path)",
    "Ground truth",
    "Predicted class",
    "Confidence",
    "Your verdict (keys 1-4)",
)
TRUTH_COLUMN, VERDICT_COLUMN = 1, 4
SHORT_LABELS = ("on defect", "elsewhere", "wrong class", "unsure")
LOW_CONFIDENCE = 0.6
# (key, label) of the list filters; "v1".."v4" keep one verdict.
FILTERS = (
    ("all", "All images"),
    ("unreviewed", "Unreviewed"),
    ("disputed", "Reviewers disagree"),
    ("v1", "Verdict 1"),
    ("v2", "Verdict 2"),
    ("v3", "Verdict 3"),
    ("v4", "Verdict 4"),
    ("disagree", "Prediction ≠ truth"),
    ("low", f"Confidence < {LOW_CONFIDENCE:.0%}"),
    ("miss", "Pointing-game miss"),
)
FILTER_ROLE = Qt.ItemDataRole.UserRole + 1  # what the filter box matches: the relative path
AnyIndex = QModelIndex | QPersistentModelIndex
THUMBNAIL_CACHE_SIZE = 4000


@dataclass(frozen=True)
class RowResult:
    predicted: str
    confidence: float | None  # None: the image failed
    error: str = ""
    pointing_hit: bool | None = None  # None: no boxes, or not computed for this row


class ImageTableModel(QAbstractTableModel):
    """Records as rows; predicted class and confidence are filled in as results arrive."""

    def __init__(self, thumbnails: ThumbnailLoader | None = None) -> None:
        super().__init__()
        self.records: list[ImageRecord] = []
        self._results: dict[int, RowResult] = {}
        self._rows: dict[str, int] = {}
        self._verdicts: dict[str, int] = {}  # relative posix path -> code 1..4
        self._disputed: set[str] = set()  # images whose reviewers disagree (blind mode applied)
        self._loader = thumbnails
        self._thumbnails: LruCache[str, QPixmap | None] = LruCache(THUMBNAIL_CACHE_SIZE)
        if thumbnails is not None:
            thumbnails.sig_ready.connect(self._thumbnail_ready)

    def _thumbnail(self, record: ImageRecord) -> QPixmap | None:
        """The cached preview; asks the loader for it the first time a row is painted."""
        key = str(record.path)
        if key in self._thumbnails:  # None stored: the image has no preview
            return self._thumbnails.get(key)
        if self._loader is not None:
            self._loader.request(key)
        return None

    def _thumbnail_ready(self, path: str, thumb: np.ndarray | None) -> None:
        pixmap = None
        if thumb is not None:
            height, width = thumb.shape[:2]
            image = QImage(thumb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
            pixmap = QPixmap.fromImage(image.copy())
        self._thumbnails.put(path, pixmap)
        row = self._rows.get(path)
        if row is not None:
            index = self.index(row, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def set_records(self, records: list[ImageRecord]) -> None:
        self.beginResetModel()
        self.records = records
        self._results = {}
        self._rows = {str(r.path): i for i, r in enumerate(records)}
        self.endResetModel()

    def row_of(self, record: ImageRecord) -> int | None:
        return self._rows.get(str(record.path))

    def row_of_path(self, path: str) -> int | None:
        return self._rows.get(path)

    def set_verdicts(self, verdicts: dict[str, int]) -> None:
        """Replace every row's verdict (relative posix path -> code)."""
        self._verdicts = dict(verdicts)
        if self.records:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.records) - 1, 4))

    def set_verdict(self, rel_path: str, code: int | None) -> None:
        if code is None:
            self._verdicts.pop(rel_path, None)
        else:
            self._verdicts[rel_path] = code
        for row, record in enumerate(self.records):
            if record.rel_path.as_posix() == rel_path:
                self.dataChanged.emit(self.index(row, 0), self.index(row, VERDICT_COLUMN))

    def set_disputed(self, disputed: set[str]) -> None:
        """The images whose reviewers gave different verdicts (marked ≠ in the verdict column)."""
        if disputed == self._disputed:
            return
        self._disputed = set(disputed)
        if self.records:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.records) - 1, 4))

    def disputed(self, row: int) -> bool:
        return self.records[row].rel_path.as_posix() in self._disputed

    def verdict(self, row: int) -> int | None:
        return self._verdicts.get(self.records[row].rel_path.as_posix())

    def result(self, row: int) -> RowResult | None:
        return self._results.get(row)

    def set_result(self, record: ImageRecord, result: RowResult) -> None:
        row = self.row_of(record)
        if row is None:
            return
        self._results[row] = result
        self.dataChanged.emit(self.index(row, 2), self.index(row, 3))

    def clear_results(self) -> None:
        self._results = {}
        if self.records:
            self.dataChanged.emit(self.index(0, 2), self.index(len(self.records) - 1, 3))

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> object:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMN_TIPS[section]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        record = self.records[row]
        result = self._results.get(row)
        if role == FILTER_ROLE:
            if column == 0:
                return record.rel_path.as_posix()
            role = Qt.ItemDataRole.DisplayRole
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return record.rel_path.name
            if column == 1:
                return record.ground_truth or ""
            if column == VERDICT_COLUMN:
                code = self.verdict(row)
                mark = " ≠" if self.disputed(row) else ""
                return "" if code is None else f"{code} {SHORT_LABELS[code - 1]}{mark}"
            if result is None:
                return ""
            if column == 2:
                return result.predicted
            return "" if result.confidence is None else f"{result.confidence:.1%}"
        if role == Qt.ItemDataRole.DecorationRole and column == 0:
            return self._thumbnail(record)
        if role == Qt.ItemDataRole.ToolTipRole:
            if result is not None and result.error:
                return result.error
            # The full path (the name column may be elided) and the truth (its column hidden).
            truth = f"\nground truth: {record.ground_truth}" if record.ground_truth else ""
            dispute = "\n≠ reviewers gave different verdicts" if self.disputed(row) else ""
            return f"{record.path}{truth}{dispute}"
        if role == Qt.ItemDataRole.BackgroundRole and (code := self.verdict(row)) is not None:
            return QBrush(verdict_tint(code))
        if role == Qt.ItemDataRole.ForegroundRole and result is not None and column == 2:
            if result.confidence is None:
                return QBrush(QColor("#c5221f"))
            if record.ground_truth and result.predicted != record.ground_truth:
                return QBrush(QColor("#b06000"))
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class ImageFilterProxy(QSortFilterProxyModel):
    """The filter box's text match, narrowed by one of FILTERS (review state or result)."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "all"

    def set_mode(self, mode: str) -> None:
        if not hasattr(self, "endFilterChange"):  # Qt < 6.10, where this is not deprecated
            self.mode = mode
            self.invalidateRowsFilter()
            return
        self.beginFilterChange()
        self.mode = mode
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        if not super().filterAcceptsRow(source_row, source_parent):
            return False
        model = self.sourceModel()
        assert isinstance(model, ImageTableModel)
        return row_passes(self.mode, model, source_row)


def row_passes(mode: str, model: ImageTableModel, row: int) -> bool:
    """Whether the row passes one of FILTERS (the list and the gallery share them)."""
    if mode == "all":
        return True
    code = model.verdict(row)
    if mode == "unreviewed":
        return code is None
    if mode == "disputed":
        return model.disputed(row)
    if mode.startswith("v"):
        return code == int(mode[1:])
    result = model.result(row)
    if result is None or result.confidence is None:
        return False  # not computed yet: nothing to judge it by
    if mode == "disagree":
        truth = model.records[row].ground_truth
        return truth is not None and result.predicted != truth
    if mode == "low":
        return result.confidence < LOW_CONFIDENCE
    return result.pointing_hit is False


class ImagesDock(QDockWidget):
    """The list of images with a filter; emits the record the user selected."""

    sig_selected = Signal(object)  # ImageRecord

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Images", parent)
        self.setObjectName("ImagesDock")
        self.thumbnails = ThumbnailLoader()
        self.model = ImageTableModel(self.thumbnails)
        self.proxy = ImageFilterProxy()
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterRole(FILTER_ROLE)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter (file name or class)…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._filter_changed)
        self.filter_mode = QComboBox()
        for key, label in FILTERS:
            self.filter_mode.addItem(label, key)
        self.filter_mode.setToolTip("Show only images in this review state or with this result")
        self.filter_mode.currentIndexChanged.connect(self._filter_mode_changed)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.verticalHeader().hide()
        # Fixed row heights: a 10,000-row table never measures its rows.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(THUMBNAIL_SIZE + 4)
        self.table.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(24)
        for column in (1, 2, 3, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._column_menu)
        self._classes: tuple[str, ...] = ()
        self._fit_columns()
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        body = QWidget()
        layout = spaced(QVBoxLayout(body))
        filters = spaced(QHBoxLayout(), margin=0)
        filters.addWidget(self.filter, 1)
        filters.addWidget(self.filter_mode)
        layout.addLayout(filters)
        layout.addWidget(self.table)
        layout.addWidget(self.summary)
        self.setWidget(body)

    def set_records(
        self, records: list[ImageRecord], folder: str, classes: tuple[str, ...] = ()
    ) -> None:
        """List these records; ``classes`` (the model's) size the class columns."""
        self.model.set_records(records)
        self._classes = classes
        self._fit_columns()
        self._update_summary(folder)

    def _text_width(self, texts: Iterable[str], header: str) -> int:
        """Width of a column holding these texts and this header, padding included."""
        cell = self.table.fontMetrics()
        head = self.table.horizontalHeader().fontMetrics()
        widest = max((cell.horizontalAdvance(t) for t in texts), default=0)
        return max(widest, head.horizontalAdvance(header) + SMALL) + 2 * SMALL

    def _fit_columns(self) -> None:
        """Every column but the name as wide as its content can be, so the name gets the rest.

        Measured from what the cells can hold (the classes, '100.0%', the verdict labels),
        not from the rows: a 10,000-row list is never walked for its widths.
        """
        header = self.table.horizontalHeader()
        classes = set(self._classes) | {
            r.ground_truth for r in self.model.records if r.ground_truth
        }
        widths = {
            1: self._text_width(classes, COLUMNS[1]),
            2: self._text_width(classes | {"error"}, COLUMNS[2]),
            3: self._text_width(["100.0%"], COLUMNS[3]),
            4: self._text_width([f"{i} {label} ≠" for i, label in enumerate(SHORT_LABELS, 1)], "V"),
        }
        for column, width in widths.items():
            header.resizeSection(column, width)

    def content_width(self) -> int:
        """The dock width at which no file name is elided (the longest name, then the columns)."""
        names = (r.rel_path.name for r in self.model.records)
        name = self._text_width(names, COLUMNS[0]) + THUMBNAIL_SIZE + SMALL
        header = self.table.horizontalHeader()
        others = sum(
            header.sectionSize(c) for c in range(1, len(COLUMNS)) if not header.isSectionHidden(c)
        )
        scrollbar = self.table.verticalScrollBar().sizeHint().width()
        return name + others + scrollbar + 4 * SMALL

    def fit_columns(self, width: int) -> None:
        """Hide the Truth column when the file names would be elided in this width otherwise
        (Predicted turns orange where it disagrees, the tooltip names the truth); the header's
        right-click menu shows it again."""
        header = self.table.horizontalHeader()
        header.setSectionHidden(TRUTH_COLUMN, False)
        if self.content_width() > width:
            header.setSectionHidden(TRUTH_COLUMN, True)

    def _column_menu(self, pos: QPoint) -> None:
        """Right-click on the header: show or hide the columns other than the name."""
        menu = QMenu(self)
        header = self.table.horizontalHeader()
        for column in range(1, len(COLUMNS)):
            action = menu.addAction(COLUMNS[column])
            action.setCheckable(True)
            action.setChecked(not header.isSectionHidden(column))
            action.toggled.connect(lambda on, c=column: header.setSectionHidden(c, not on))
        menu.popup(header.mapToGlobal(pos))

    def _update_summary(self, folder: str | None = None) -> None:
        if folder is not None:
            self._folder = folder
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        count = f"{total} images" if shown == total else f"{shown} of {total} images"
        self.summary.setText(f"{count} in {self._folder}")
        self.summary.setToolTip(self._folder)

    def _filter_changed(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        self._update_summary()

    def _filter_mode_changed(self, index: int) -> None:
        self.proxy.set_mode(self.filter_mode.itemData(index))
        self._update_summary()

    def set_filter_mode(self, mode: str) -> None:
        self.filter_mode.setCurrentIndex(self.filter_mode.findData(mode))

    def select_rel_path(self, rel_path: str) -> bool:
        """Select the row of the image at this relative posix path, if the filter shows it."""
        for record in self.model.records:
            if record.rel_path.as_posix() == rel_path:
                return self.select_record(str(record.path))
        return False

    def visible_records(self) -> list[ImageRecord]:
        """The records the filter shows, in list order."""
        return [
            self.model.records[self.proxy.mapToSource(self.proxy.index(row, 0)).row()]
            for row in range(self.proxy.rowCount())
        ]

    def current_record(self) -> ImageRecord | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.model.records[self.proxy.mapToSource(index).row()]

    def current_row(self) -> int:
        index = self.table.currentIndex()
        return index.row() if index.isValid() else -1

    def neighbours(self, count: int = 1) -> tuple[ImageRecord, ...]:
        """The next ``count`` records after the current one (what the worker prefetches)."""
        row = self.current_row()
        found = []
        for nxt in range(row + 1, min(row + 1 + count, self.proxy.rowCount())):
            found.append(self.model.records[self.proxy.mapToSource(self.proxy.index(nxt, 0)).row()])
        return tuple(found)

    def select_row(self, row: int) -> None:
        rows = self.proxy.rowCount()
        if rows == 0:
            return
        row = max(0, min(rows - 1, row))
        index = self.proxy.index(row, 0)
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)

    def select_record(self, record_path: str) -> bool:
        for row, record in enumerate(self.model.records):
            if str(record.path) == record_path:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                if index.isValid():
                    self.select_row(index.row())
                    return True
        return False

    def step(self, delta: int) -> None:
        self.select_row(max(0, self.current_row()) + delta if self.current_row() >= 0 else 0)

    def first(self) -> None:
        self.select_row(0)

    def last(self) -> None:
        self.select_row(self.proxy.rowCount() - 1)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.sig_selected.emit(self.model.records[self.proxy.mapToSource(current).row()])
