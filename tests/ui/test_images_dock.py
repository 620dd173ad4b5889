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


def test_filter_modes_by_review_state_and_result(qtbot) -> None:
    dock = ImagesDock()
    qtbot.addWidget(dock)
    records = _records(6)  # ground truth: the six NEU classes in order
    dock.set_records(records, "/nowhere")
    model = dock.model
    model.set_result(records[0], RowResult(NEU[0], 0.9, pointing_hit=True))
    model.set_result(records[1], RowResult(NEU[0], 0.95, pointing_hit=True))  # wrong class
    model.set_result(records[2], RowResult(NEU[2], 0.4, pointing_hit=True))  # low confidence
    model.set_result(records[3], RowResult(NEU[3], 0.8, pointing_hit=False))  # pointing miss
    model.set_verdicts({records[0].rel_path.as_posix(): 1, records[3].rel_path.as_posix(): 2})

    def shown(mode: str) -> list[int]:
        dock.set_filter_mode(mode)
        return [records.index(r) for r in dock.visible_records()]

    assert shown("all") == [0, 1, 2, 3, 4, 5]
    assert shown("unreviewed") == [1, 2, 4, 5]
    assert shown("v1") == [0]
    assert shown("v2") == [3]
    assert shown("v3") == []
    assert shown("disagree") == [1]
    assert shown("low") == [2]
    assert shown("miss") == [3]
    assert "1 of 6 images" in dock.summary.text()
    assert shown("v2") == [3]
    model.set_verdict(records[1].rel_path.as_posix(), 2)  # the filter follows new verdicts
    assert [records.index(r) for r in dock.visible_records()] == [1, 3]
    assert model.index(1, 4).data() == "2 elsewhere"
