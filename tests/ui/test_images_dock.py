"""Tests for ui/images_dock.py and ui/thumbnails.py: a big list, the filter, lazy previews."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QApplication

from engine.dataset import ImageRecord, scan_images
from tests.conftest import NEU
from ui.images_dock import ImagesDock, RowResult
from ui.thumbnails import THUMBNAIL_SIZE


def _records(count: int) -> list[ImageRecord]:
    return [
        ImageRecord(
            Path(f"/nowhere/{NEU[i % 6]}_{i}.jpg"), Path(f"{NEU[i % 6]}_{i}.jpg"), NEU[i % 6], None
        )
        for i in range(count)
    ]


def test_ten_thousand_rows_list_at_once(qtbot) -> None:
    dock = ImagesDock()
    qtbot.addWidget(dock)
    dock.show()
    records = _records(10_000)
    start = time.perf_counter()
    dock.set_records(records, "/nowhere")
    dock.last()
    QApplication.processEvents()  # the view lays out and paints its visible rows
    assert time.perf_counter() - start < 2.0
    assert dock.current_record() == records[-1]
    assert "10000 images" in dock.summary.text()
    dock.filter.setText("scratches_99")
    visible = dock.visible_records()
    assert visible and all("scratches_99" in r.rel_path.name for r in visible)
    assert len(visible) == sum("scratches_99" in r.rel_path.name for r in records)
    assert "of 10000" in dock.summary.text()
    dock.model.set_result(records[5], RowResult("patches", 0.875))
    assert dock.model.index(5, 2).data() == "patches" and dock.model.index(5, 3).data() == "87.5%"
    dock.thumbnails.close()


def test_thumbnails_arrive_for_visible_rows(qtbot, neu_folder: Path) -> None:
    dock = ImagesDock()
    qtbot.addWidget(dock)
    dock.resize(400, 600)
    dock.show()
    dock.set_records(scan_images(neu_folder, NEU), str(neu_folder))
    index = dock.model.index(0, 0)
    dock.model.data(index, Qt.ItemDataRole.DecorationRole)  # what painting the row asks
    qtbot.waitUntil(
        lambda: isinstance(dock.model.data(index, Qt.ItemDataRole.DecorationRole), QPixmap),
        timeout=10_000,
    )
    pixmap = dock.model.data(index, Qt.ItemDataRole.DecorationRole)
    assert max(pixmap.width(), pixmap.height()) == THUMBNAIL_SIZE
    dock.thumbnails.close()
