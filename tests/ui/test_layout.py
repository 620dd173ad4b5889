"""Tests for the window's layout: it fits 1280x720, the overlay comes first, geometry is fitted."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRect, QSettings
from PySide6.QtWidgets import QApplication, QWidget

from tests.ui.conftest import RESULT_TIMEOUT_MS
from ui.images_dock import TRUTH_COLUMN
from ui.main_window import LIST_SHARE, MainWindow
from ui.settings import fit_rect

# 1280x720 less a title bar and a desktop panel: what the docks and the overlay share.
SMALL_SCREEN = (1280, 660)


def _wholly_shown(widget: QWidget, window: MainWindow) -> bool:
    """Shown, not clipped by a scroll area or a dock, and inside the window."""
    if not widget.isVisible() or widget.visibleRegion().boundingRect() != widget.rect():
        return False
    top_left = widget.mapTo(window, widget.rect().topLeft())
    return window.rect().contains(QRect(top_left, widget.size()))


def test_the_window_fits_1280x720_with_every_docks_key_widgets_shown(
    qtbot, window: MainWindow
) -> None:
    hint = window.minimumSizeHint()
    assert hint.width() <= SMALL_SCREEN[0] and hint.height() <= SMALL_SCREEN[1]
    window.resize(*SMALL_SCREEN)
    window.fit_docks()
    QApplication.processEvents()
    assert (window.width(), window.height()) == SMALL_SCREEN
    # The overlay has the largest area: wider than the list and than the panels.
    assert window.view.width() > max(window.images.width(), window.prediction.width())
    assert window.view.width() * window.view.height() > 0.3 * window.width() * window.height()
    assert _wholly_shown(window.statusBar(), window)
    assert _wholly_shown(window.images.filter, window)
    assert _wholly_shown(window.images.summary, window)
    for widget in (*window.prediction.bars, *window.prediction.verdict_buttons):
        assert _wholly_shown(widget, window)
    window.model_dock.raise_()  # a tab behind the prediction panel on this short screen
    QApplication.processEvents()
    assert _wholly_shown(window.model_dock.tree, window)
    tree = window.model_dock.tree
    last = tree.header().sectionViewportPosition(3) + tree.header().sectionSize(3)
    assert last <= tree.viewport().width()  # the layer table's last column is not cut off


def test_file_names_are_whole_in_the_list(qtbot, window: MainWindow) -> None:
    window.resize(*SMALL_SCREEN)
    window.fit_docks()
    QApplication.processEvents()
    table = window.images.table
    metrics = table.fontMetrics()
    widest = max(metrics.horizontalAdvance(r.rel_path.name) for r in window.images.model.records)
    room = table.columnWidth(0) - table.iconSize().width()
    assert widest < room
    # Hidden to make that room on a small screen; the tooltip still names the truth.
    assert table.isColumnHidden(TRUTH_COLUMN)
    record = window.images.model.records[0]
    tip = window.images.model.index(0, 0).data(3)  # ToolTipRole
    assert tip == f"{record.path}\nground truth: {record.ground_truth}"
    window.resize(2400, 1300)
    window.fit_docks()
    QApplication.processEvents()
    assert not table.isColumnHidden(TRUTH_COLUMN)  # room for every column


def test_fit_rect_shrinks_and_moves_onto_the_screen() -> None:
    laptop = QRect(0, 0, 1366, 740)
    assert fit_rect(QRect(1920, 80, 2400, 1300), laptop) == QRect(0, 0, 1366, 740)
    assert fit_rect(QRect(1200, 500, 800, 600), laptop) == QRect(566, 140, 800, 600)
    assert fit_rect(QRect(10, 20, 800, 600), laptop) == QRect(10, 20, 800, 600)


def test_a_geometry_saved_on_a_bigger_screen_is_fitted_to_this_one(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path
) -> None:
    first = MainWindow(settings, neu_folder, tiny_profile, device="cpu", prefetch=False)
    qtbot.addWidget(first)
    first.setGeometry(2000, 300, 2400, 1300)  # on a second 4K monitor, now unplugged
    first.save_settings()
    first.shutdown()
    second = MainWindow(settings, neu_folder, tiny_profile, device="cpu", prefetch=False)
    qtbot.addWidget(second)
    second.show()
    with qtbot.waitSignal(second.sig_result, timeout=RESULT_TIMEOUT_MS):
        second.start()
    available = second.screen().availableGeometry()
    assert available.contains(second.frameGeometry())
    # The docks were fitted again to the smaller window, not squeezed from the big one's sizes.
    assert second.images.width() <= round(LIST_SHARE * second.width()) + 1
    second.close()
