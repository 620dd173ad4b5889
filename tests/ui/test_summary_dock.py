"""Tests for ui/summary_dock.py: its tables, and that they show what the HTML report shows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.report import ReportData, report_html
from engine.session import ReviewedImage, Session, SessionContext
from ui.summary_dock import SummaryDock


def _record(truth, predicted, hit=None, energy=None) -> ReviewedImage:
    return ReviewedImage(f"{truth}_{predicted}_{hit}", truth, predicted, 0.9, hit, energy, None)


RECORDS = [
    _record("crazing", "crazing", True, 0.8),
    _record("crazing", "patches", False, 0.2),
    _record("patches", "patches", True, 0.6),
    _record("patches", None),  # not explained yet: in neither table
    _record(None, "inclusion", True, 0.5),  # no ground truth: its own localisation row
    _record("scratches", "scratches"),  # no boxes: in the matrix only
]


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
    assert dock.localisation_classes == ["(no ground truth)", "crazing", "patches"]
    np.testing.assert_allclose(dock.pointing_rate, [1.0, 0.5, 1.0])
    np.testing.assert_allclose(dock.mean_energy, [0.5, 0.5, 0.6])
    dock.show_records([])
    assert table.rowCount() == 0 and dock.pointing_rate.size == 0
    assert "No image with ground-truth boxes" in dock.localisation_caption.text()


def _report_tables(html: str) -> dict[str, list[list[str]]]:
    """Each figure's table in the report, by section title, header row first."""
    sections = re.findall(r"<section><h2>([^<]*)</h2>.*?<table>(.*?)</table>", html)
    return {
        title: [
            re.findall(r"<t[dh]>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", t)
        ]
        for title, t in sections
    }


def _n_a(values: np.ndarray) -> list[str]:
    return ["n/a" if np.isnan(v) else f"{v:.3f}" for v in values]


@pytest.fixture
def session(tmp_path: Path):
    """Images with and without ground truth, with and without boxes, one not explained."""
    with Session.open(
        tmp_path / "s.sqlite", SessionContext(tmp_path, None, "x", "l", "m"), "ann"
    ) as opened:
        opened.record_result("a.png", "crazing", 0.9, "crazing", True, 0.8)
        opened.record_result("b.png", "patches", 0.6, "crazing", False, 0.2)
        opened.record_result("c.png", "patches", 0.8, "patches", True, 0.6)
        opened.record_result("d.png", "patches", 0.7, None, False, 0.1)  # boxes, no truth
        opened.record_result("e.png", "inclusion", 0.7, None, True, 0.9)  # boxes, no truth
        opened.record_result("f.png", "crazing", 0.7, None)  # no truth, no boxes
        opened.record_result("g.png", "scratches", 0.7, "scratches", None, 0.4)  # energy only
        opened.add_images(["h.png"])  # not explained yet
        opened.set_verdict("a.png", 1)
        opened.set_verdict("d.png", 3)
        opened.set_note("e.png", "a note is not a verdict")
        yield opened


def test_summary_tab_and_report_show_the_same_numbers(qtbot, session: Session) -> None:
    dock = SummaryDock()
    qtbot.addWidget(dock)
    dock.show_counts(session.class_counts(), session.labels)  # as the window refreshes it
    dock.show_records(session.records())
    report = _report_tables(report_html(ReportData.read(session)))

    verdicts = report["Verdicts per class"][1:]
    assert [row[0] for row in verdicts] == dock.classes
    assert [[int(c) for c in row[1:]] for row in verdicts] == dock.heights.tolist()
    assert dock.heights.tolist() == [
        [0, 0, 0, 0, 1],  # (no prediction): h.png
        [1, 0, 0, 0, 1],  # crazing: a.png, f.png
        [0, 0, 0, 0, 1],  # inclusion: e.png (a note only)
        [0, 0, 1, 0, 2],  # patches: b.png, c.png, d.png
        [0, 0, 0, 0, 1],  # scratches: g.png
    ]

    confusion = report["Prediction vs ground truth"]
    assert confusion[0][1:] == dock.confusion_classes == ["crazing", "patches", "scratches"]
    assert [[int(c) for c in row[1:]] for row in confusion[1:]] == dock.confusion.tolist()
    assert dock.confusion.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]

    scores = report["Localisation per class"][1:]
    assert [row[0] for row in scores] == dock.localisation_classes
    assert dock.localisation_classes == ["(no ground truth)", "crazing", "patches", "scratches"]
    assert [row[1] for row in scores] == _n_a(dock.pointing_rate)
    assert [row[2] for row in scores] == _n_a(dock.mean_energy)
    # d.png and e.png count once, in their own row: not under patches/inclusion, not dropped.
    np.testing.assert_allclose(dock.pointing_rate, [0.5, 0.5, 1.0, np.nan])
    np.testing.assert_allclose(dock.mean_energy, [0.5, 0.5, 0.6, 0.4])
