"""Tests for ui/summary_dock.py: the confusion matrix and the localisation scores."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from engine.session import ReviewedImage
from ui.summary_dock import SummaryDock, confusion_matrix, localisation_scores


def _record(truth, predicted, hit=None, energy=None) -> ReviewedImage:
    return ReviewedImage(f"{truth}_{predicted}_{hit}", truth, predicted, 0.9, hit, energy, None)


RECORDS = [
    _record("crazing", "crazing", True, 0.8),
    _record("crazing", "patches", False, 0.2),
    _record("patches", "patches", True, 0.6),
    _record("patches", None),  # not explained yet: in neither table
    _record(None, "inclusion", True, 0.5),  # no ground truth
    _record("scratches", "scratches"),  # no boxes: in the matrix only
]


def test_confusion_matrix_counts_truth_against_prediction() -> None:
    classes, counts = confusion_matrix(RECORDS)
    assert classes == ["crazing", "patches", "scratches"]
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])


def test_localisation_scores_per_ground_truth_class() -> None:
    classes, rate, energy = localisation_scores(RECORDS)
    assert classes == ["crazing", "patches"]
    np.testing.assert_allclose(rate, [0.5, 1.0])
    np.testing.assert_allclose(energy, [0.5, 0.6])


def test_dock_labels_and_colours_the_cells(qtbot) -> None:
    dock = SummaryDock()
    qtbot.addWidget(dock)
    dock.show_records(RECORDS)
    table = dock.confusion_table
    assert [table.verticalHeaderItem(r).text() for r in range(3)] == dock.confusion_classes
    assert table.item(0, 1).text() == "1" and "50%" in table.item(0, 1).toolTip()
    right = table.item(1, 1).data(Qt.ItemDataRole.BackgroundRole).color()
    wrong = table.item(0, 1).data(Qt.ItemDataRole.BackgroundRole).color()
    assert right.green() > right.red() and wrong.red() > wrong.green()
    assert table.item(0, 2).data(Qt.ItemDataRole.BackgroundRole).color().alpha() == 0
    assert "3 of 4 images" in dock.confusion_caption.text()
    dock.show_records([])
    assert table.rowCount() == 0 and dock.pointing_rate.size == 0
    assert "No image with ground-truth boxes" in dock.localisation_caption.text()
