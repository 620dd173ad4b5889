"""Tests for a day without the mouse: every command has a key, the sheet, focus given back."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from tests.ui.conftest import RESULT_TIMEOUT_MS, stored_verdicts
from ui.actions import ACTIONS, ActionSpec
from ui.main_window import MainWindow
from ui.notices import shortcut_rows, shortcut_text


def _specs() -> list[ActionSpec]:
    return [e for e in ACTIONS if isinstance(e, ActionSpec)]


def test_every_command_has_a_key_of_its_own(qapp) -> None:  # key names need the app
    keys = [shortcut_text(spec) for spec in _specs()]
    assert all(keys), [spec.id for spec in _specs() if spec.shortcut is None]
    assert len(set(keys)) == len(keys)  # no key does two things


def test_menus_and_tooltips_show_the_keys(window: MainWindow) -> None:
    actions = {a.text(): a for a in window.actions()}
    boxes = actions["Ground-truth boxes on/off"]
    assert boxes.shortcut() == QKeySequence("B") and boxes.toolTip().endswith("(B)")
    assert actions["Keyboard shortcuts"].shortcut() == QKeySequence("F1")
    assert window.prediction.verdict_buttons[2].toolTip().endswith("(key 3)")
    assert "(B)" in window.view_toolbar.boxes.toolTip()


def test_the_sheet_lists_every_key(qtbot, window: MainWindow) -> None:
    sheet = window.show_shortcuts()
    qtbot.addWidget(sheet)
    assert sheet.isVisible() and not sheet.isModal()
    listed = {sheet.table.item(r, 1).text() for r in range(sheet.table.rowCount())}
    assert {shortcut_text(spec) for spec in _specs()} <= listed
    assert ("Gallery", "Enter, or a click", "Open the thumbnail's image in the main view") in (
        shortcut_rows(ACTIONS)
    )


def test_view_keys_change_the_view(qtbot, window: MainWindow) -> None:
    before = window.state.options
    for key in (Qt.Key.Key_B, Qt.Key.Key_BracketRight, Qt.Key.Key_M):
        qtbot.keyClick(window.images.table, key)
    o = window.state.options
    assert o.show_boxes is not before.show_boxes
    assert round(o.alpha - before.alpha, 2) == 0.1
    assert o.mode == "panels" and before.mode == "overlay"


def test_keys_come_back_to_the_list_after_a_combo_or_the_filter(
    qtbot, window: MainWindow, neu_folder: Path
) -> None:
    window.auto_advance.setChecked(False)
    combo = window.prediction.corrected
    combo.setFocus()
    combo.activated.emit(0)  # what a choice made in its popup sends
    assert window.images.table.hasFocus()
    qtbot.keyClick(window.images.table, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.images.filter.hasFocus()
    qtbot.keyClicks(window.images.filter, "crazing")
    qtbot.keyClick(window.images.filter, Qt.Key.Key_Escape)
    assert window.images.table.hasFocus()
    rel = window.images.current_record().rel_path.as_posix()
    qtbot.keyClick(window.images.table, Qt.Key.Key_2)
    assert stored_verdicts(window.review.session.path) == {rel: 2}
    window.view_toolbar.mode.setFocus()  # a focused combo box does not eat the review keys
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        qtbot.keyClick(window.view_toolbar.mode, Qt.Key.Key_D)
    assert window.images.current_row() == 1


def test_the_sheet_gives_the_filter_key_and_the_dock_keys(qtbot, window: MainWindow) -> None:
    """The sheet said Ctrl+F filters the list (Ctrl+F fits the view; Ctrl+L filters) and left
    out Alt+1..Alt+4, which show or hide the docks."""
    sheet = window.show_shortcuts()
    qtbot.addWidget(sheet)
    rows = [
        tuple(sheet.table.item(r, c).text() for c in range(3))
        for r in range(sheet.table.rowCount())
    ]
    filter_rows = [r for r in rows if r[0] == "Image list" and "filter" in r[2]]
    assert filter_rows and all(r[1].startswith("Ctrl+L") for r in filter_rows)
    assert {f"Alt+{n}" for n in range(1, 5)} <= {r[1] for r in rows}
    shown = {r[1]: r[2] for r in rows}
    assert "Images" in shown["Alt+1"]
