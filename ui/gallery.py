"""The gallery: the folder's overlays as thumbnails, cached on disk, sorted and filtered.

Thumbnails are drawn from the maps the window computes (the images the user visits and every
image of a folder export) and cached per folder, profile, layer and method under the user cache
folder, so reopening a folder shows them at once. Decoding, drawing and writing run on one
helper thread; the view asks only for the rows it paints.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QSize,
    QStandardPaths,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QVBoxLayout,
    QWidget,
)

from engine.dataset import ImageRecord
from engine.errors import InspectorError
from engine.export import atomic_write_bytes
from engine.images import load_image, to_rgb
from engine.lru import LruCache
from engine.render import RenderStyle, render_overlay
from ui.images_dock import FILTERS, AnyIndex, ImageTableModel, row_passes
from ui.theme import SMALL, spaced
from ui.thumbnails import stop_helper

log = logging.getLogger(__name__)

GALLERY_SIZE = 128  # thumbnail side, px
GRID = QSize(GALLERY_SIZE + 16, GALLERY_SIZE + 28)  # the thumbnail and its name under it
TAKEN_PER_EVENT = 200  # thumbnails the GUI thread takes in (~0.05 ms each) before it paints
MEMORY_CACHE = 3000  # pixmaps kept: a 2,000-image folder scrolls without a reload
# (key, label): how the gallery orders images; the odd ones first where that means something.
SORTS = (
    ("name", "File name"),
    ("confidence", "Confidence, lowest first"),
    ("miss", "Pointing-game misses first"),
    ("disagree", "Prediction ≠ truth first"),
    ("predicted", "Predicted class"),
    ("verdict", "Verdict"),
)


def cache_root() -> Path:
    """The gallery's folder in the user cache (XDG_CACHE_HOME on Linux)."""
    location = QStandardPaths.StandardLocation.GenericCacheLocation
    return Path(QStandardPaths.writableLocation(location)) / "gradcam-inspector" / "gallery"


@dataclass(frozen=True)
class GalleryKey:
    """What a set of thumbnails was drawn from: another of any of these is another set."""

    folder: str
    profile: str
    layer: str
    method: str
    smoothing: str = ""  # "aug", "eigen", "aug+eigen": smoothed maps are other maps

    def directory(self, root: Path) -> Path:
        parts = (self.folder, self.profile, self.layer, self.method)
        text = "\n".join(parts + ((self.smoothing,) if self.smoothing else ()))
        return root / hashlib.sha256(text.encode()).hexdigest()[:24]


def thumbnail_name(record: ImageRecord) -> str:
    return hashlib.sha256(record.rel_path.as_posix().encode()).hexdigest()[:24] + ".png"


def render_thumbnail(
    image: np.ndarray, cam: np.ndarray, style: RenderStyle, size: int = GALLERY_SIZE
) -> np.ndarray:
    """The overlay at thumbnail size (image and map shrunk first: ~0.2 ms, not a full render)."""
    rgb = to_rgb(image)
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(rgb, target, interpolation=cv2.INTER_AREA)
    small_cam = cv2.resize(cam.astype(np.float32), target, interpolation=cv2.INTER_AREA)
    return render_overlay(small, small_cam, style)


def _encode_png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InspectorError("could not encode a gallery thumbnail")
    return data.tobytes()


Task = Callable[[], None]


class GalleryCache(QObject):
    """Thumbnails on disk and in memory for one GalleryKey at a time; one helper thread."""

    sig_changed = Signal(object)  # the image paths (a list) whose thumbnails arrived

    _sig_arrived = Signal()  # the helper thread has put the first of some thumbnails ready

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self.root = root if root is not None else cache_root()
        self.directory: Path | None = None
        self._generation = 0
        self._pixmaps: LruCache[str, QPixmap | None] = LruCache(MEMORY_CACHE)
        self._requested: set[str] = set()
        self._queue: queue.LifoQueue[Task | None] = queue.LifoQueue()
        # (generation, image path, QImage or None), appended by the helper thread.
        self._ready: deque[tuple[int, str, QImage | None]] = deque()
        self._sig_arrived.connect(self._take_ready)  # queued: emitted on the helper thread
        self._thread = threading.Thread(target=self._run, name="gallery", daemon=True)
        self._thread.start()

    def set_key(self, key: GalleryKey | None) -> None:
        """Show the thumbnails of this folder, profile, layer and method (None: none)."""
        directory = None if key is None else key.directory(self.root)
        if directory == self.directory:
            return
        self.directory = directory
        self._generation += 1
        self._pixmaps.clear()
        self._requested.clear()

    def pixmap(self, record: ImageRecord) -> QPixmap | None:
        """The thumbnail in memory; the first ask queues its read from disk (None meanwhile)."""
        key = str(record.path)
        if key in self._pixmaps:
            return self._pixmaps.get(key)
        if self.directory is not None and key not in self._requested:
            self._requested.add(key)
            path, generation = self.directory / thumbnail_name(record), self._generation
            self._queue.put(lambda: self._read(generation, key, path))
        return None

    def add(
        self, record: ImageRecord, cam: np.ndarray, style: RenderStyle, image: np.ndarray | None
    ) -> None:
        """Draw and store this image's thumbnail (decoding the image when it is not given)."""
        if self.directory is None:
            return
        path, generation = self.directory / thumbnail_name(record), self._generation
        self._queue.put(lambda: self._draw(generation, record, cam, style, image, path))

    def close(self) -> None:
        stop_helper(self._queue, self._thread)

    # -- the helper thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while (task := self._queue.get()) is not None:
            try:
                task()
            except Exception:  # one odd file must not end the thumbnails of all the others
                log.exception("gallery thumbnail failed")

    def _read(self, generation: int, key: str, path: Path) -> None:
        image = QImage(str(path)) if path.is_file() else QImage()
        self._hand_over(generation, key, None if image.isNull() else image)

    def _draw(
        self,
        generation: int,
        record: ImageRecord,
        cam: np.ndarray,
        style: RenderStyle,
        image: np.ndarray | None,
        path: Path,
    ) -> None:
        try:
            source = image if image is not None else load_image(record.path)
            rgb = np.ascontiguousarray(render_thumbnail(source, cam, style))
            atomic_write_bytes(path, _encode_png(rgb), durable=False)  # can be drawn again
        except InspectorError as exc:
            log.warning("no gallery thumbnail for %s: %s", record.path, exc)
            return
        height, width = rgb.shape[:2]
        qimage = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
        self._hand_over(generation, str(record.path), qimage)

    def _hand_over(self, generation: int, key: str, image: QImage | None) -> None:
        self._ready.append((generation, key, image))
        if len(self._ready) == 1:  # the GUI thread takes everything queued after this one too
            self._sig_arrived.emit()

    # -- back on the GUI thread -----------------------------------------------------------------
    def _take_ready(self) -> None:
        """Take the thumbnails ready (up to a bound) and announce them together: each
        announcement repaints the whole grid, so one per batch, not one per thumbnail."""
        arrived = []
        while self._ready and len(arrived) < TAKEN_PER_EVENT:
            generation, key, image = self._ready.popleft()
            if generation == self._generation:  # else drawn for another folder, layer, method
                self._pixmaps.put(key, None if image is None else QPixmap.fromImage(image))
                arrived.append(key)
        if arrived:
            self.sig_changed.emit(arrived)
        if self._ready:  # the rest after the paints and timers now due
            QTimer.singleShot(0, self._take_ready)


_SOURCE_ROLES = (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.BackgroundRole)


def sort_key(key: str, model: ImageTableModel, row: int) -> tuple:
    """The order of one source row for a SORTS key; the odd ones sort first, then by name."""
    record = model.records[row]
    result = model.result(row)
    name = record.rel_path.as_posix()
    if key == "confidence":  # unexplained images last
        confidence = None if result is None else result.confidence
        return (confidence is None, confidence or 0.0, name)
    if key == "miss":
        return (result is None or result.pointing_hit is not False, name)
    if key == "disagree":
        differs = result is not None and bool(record.ground_truth)
        return (not (differs and result.predicted != record.ground_truth), name)
    if key == "predicted":
        return (result is None, "" if result is None else result.predicted, name)
    if key == "verdict":
        code = model.verdict(row)
        return (code is None, code or 0, name)
    return (name,)


class GalleryModel(QAbstractListModel):
    """The list's rows, filtered as the list is, in the gallery's order, with overlay icons.

    The order is computed in Python in one sorted() call (~5 ms for 2,000 rows); a
    QSortFilterProxyModel would call a Python lessThan ~20,000 times (a 200-ms stall).
    """

    def __init__(self, source: ImageTableModel, cache: GalleryCache) -> None:
        super().__init__()
        self.source = source
        self.cache = cache
        self.sort_key = "name"
        self.mode = "all"
        self.text = ""  # a part of the path, the truth or the predicted class
        self._rows: list[int] = []  # source rows in display order
        self._position: dict[int, int] = {}  # source row -> display row
        self._blank: QPixmap | None = None
        cache.sig_changed.connect(self._thumbnails_changed)
        source.modelReset.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Filter and order again by the latest verdicts and results."""
        self.beginResetModel()
        passing = [r for r in range(self.source.rowCount()) if self._passes(r)]
        self._rows = sorted(passing, key=lambda r: sort_key(self.sort_key, self.source, r))
        self._position = {row: i for i, row in enumerate(self._rows)}
        self.endResetModel()

    def _passes(self, row: int) -> bool:
        if not row_passes(self.mode, self.source, row):
            return False
        if not self.text:
            return True
        record, result = self.source.records[row], self.source.result(row)
        predicted = result.predicted if result is not None else ""
        texts = (record.rel_path.as_posix(), record.ground_truth or "", predicted)
        return any(self.text in t.casefold() for t in texts)

    def set_text(self, text: str) -> None:
        self.text = text.casefold()
        self.refresh()

    def set_sort(self, key: str) -> None:
        self.sort_key = key
        self.refresh()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.refresh()

    def record(self, index: AnyIndex) -> ImageRecord:
        return self.source.records[self._rows[index.row()]]

    def index_of(self, record: ImageRecord) -> QModelIndex:
        """The display index of this record; invalid when the filter hides it."""
        row = self.source.row_of(record)
        position = None if row is None else self._position.get(row)
        return QModelIndex() if position is None else self.index(position, 0)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DecorationRole:
            return self.cache.pixmap(self.record(index)) or self._placeholder()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.record(index).rel_path.name
        if role in _SOURCE_ROLES:  # the path and truth, the verdict's tint
            return self.source.data(self.source.index(self._rows[index.row()], 0), role)
        return None  # a paint asks for ~7 roles: the others cost nothing

    def _placeholder(self) -> QPixmap:
        """A blank square while a thumbnail loads or is not drawn yet: every item has one size."""
        if self._blank is None:
            self._blank = QPixmap(GALLERY_SIZE, GALLERY_SIZE)
            self._blank.fill(QColor(128, 128, 128, 60))
        return self._blank

    def _thumbnails_changed(self, keys: list[str]) -> None:
        """One dataChanged over the span of the arrived thumbnails' rows."""
        rows = (self.source.row_of_path(key) for key in keys)
        positions = [self._position[r] for r in rows if r is not None and r in self._position]
        if positions:
            first, last = self.index(min(positions), 0), self.index(max(positions), 0)
            self.dataChanged.emit(first, last, [Qt.ItemDataRole.DecorationRole])


class GalleryView(QWidget):
    """Thumbnails in a grid with a sort and a filter; Enter or a click opens an image."""

    sig_open = Signal(object)  # ImageRecord

    def __init__(self, model: ImageTableModel, cache: GalleryCache | None = None) -> None:
        super().__init__()
        self.cache = cache if cache is not None else GalleryCache()
        self.proxy = GalleryModel(model, self.cache)
        self.sort = QComboBox()
        for key, label in SORTS:
            self.sort.addItem(label, key)
        self.sort.setToolTip("Sort the thumbnails")
        self.sort.currentIndexChanged.connect(lambda i: self.proxy.set_sort(self.sort.itemData(i)))
        self.filter_mode = QComboBox()
        for key, label in FILTERS:
            self.filter_mode.addItem(label, key)
        self.filter_mode.setToolTip("Show only images in this review state or with this result")
        self.filter_mode.currentIndexChanged.connect(self._filter_mode_changed)
        for combo in (self.sort, self.filter_mode):  # shrinkable: the window fits small screens
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(6)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter (file name or class)…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.set_text)
        self.count = QLabel()
        self.list = QListView()
        self.list.setModel(self.proxy)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(GALLERY_SIZE, GALLERY_SIZE))
        self.list.setGridSize(GRID)
        self.list.setUniformItemSizes(True)  # 2,000 items are laid out without measuring each
        self.list.setLayoutMode(QListView.LayoutMode.Batched)
        self.list.setBatchSize(500)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setWordWrap(False)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.clicked.connect(self._open)
        self.list.activated.connect(self._open)  # Enter (a click may activate too: harmless)
        bar = spaced(QHBoxLayout(), margin=0)
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.sort)
        bar.addWidget(self.filter_mode)
        bar.addWidget(self.count)
        layout = spaced(QVBoxLayout(self), margin=SMALL)
        layout.addLayout(bar)
        layout.addWidget(self.list, 1)
        self._kept: ImageRecord | None = None  # the current image across a re-sort
        self.proxy.modelAboutToBeReset.connect(self._keep_current)
        self.proxy.modelReset.connect(self._restore_current)

    def refresh(self) -> None:
        """Filter and order again (the gallery is re-sorted when shown, not on every result)."""
        self.proxy.refresh()

    def set_filter_mode(self, mode: str) -> None:
        self.filter_mode.setCurrentIndex(self.filter_mode.findData(mode))

    def show_record(self, record: ImageRecord | None) -> None:
        """Make this image the gallery's current one (where the list is)."""
        index = QModelIndex() if record is None else self.proxy.index_of(record)
        if index.isValid():
            self.list.setCurrentIndex(index)
            self.list.scrollTo(index)

    def _filter_mode_changed(self, index: int) -> None:
        self.proxy.set_mode(self.filter_mode.itemData(index))

    def _keep_current(self) -> None:
        index = self.list.currentIndex()
        self._kept = self.proxy.record(index) if index.isValid() else None

    def _restore_current(self) -> None:
        self._update_count()
        if self._kept is not None:
            self.show_record(self._kept)

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.proxy.source.rowCount()
        self.count.setText(f"{total} images" if shown == total else f"{shown} of {total} images")

    def _open(self, index: QModelIndex) -> None:
        if index.isValid():
            self.sig_open.emit(self.proxy.record(index))
