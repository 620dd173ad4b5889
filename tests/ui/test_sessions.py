"""Tests for the window's inspection sessions: verdict keys, undo, resume, lock, filter, report."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from engine.session import Session, default_session_path
from tests.ui.conftest import RESULT_TIMEOUT_MS, open_window
from ui.images_dock import VERDICT_COLUMN
from ui.main_window import MainWindow


def _stored_verdicts(path: Path) -> dict[str, int | None]:
    """What is on disk now, read by a connection of the test's own."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT rel_path, code FROM verdicts").fetchall())
    finally:
        conn.close()


def _press(qtbot, window: MainWindow, key: Qt.Key, modifier=Qt.KeyboardModifier.NoModifier):
    window.activateWindow()
    window.images.table.setFocus()
    qtbot.keyClick(window.images.table, key, modifier)


def _verdict_key(qtbot, window: MainWindow, key: Qt.Key) -> None:
    """Press a verdict key and wait for the next image's map (auto-advance)."""
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        _press(qtbot, window, key)


def test_session_opens_beside_the_user_data(
    window: MainWindow, data_home: Path, neu_folder: Path, tiny_profile: Path
) -> None:
    session = window.session
    assert session is not None
    assert session.path == default_session_path(neu_folder, tiny_profile)
    assert session.path.is_relative_to(data_home)
    assert str(session.path) in window.session_label.toolTip()
    assert window.session_label.text() == f"reviewed 0 / {window.images.model.rowCount()}"
    buttons = [b.text() for b in window.prediction.verdict_buttons]
    assert buttons[0].startswith("1") and session.labels[0] in buttons[0]
    assert all(b.isEnabled() for b in window.prediction.verdict_buttons)


def test_verdict_key_records_and_advances(qtbot, window: MainWindow) -> None:
    first = window.images.current_record().rel_path.as_posix()
    _verdict_key(qtbot, window, Qt.Key.Key_1)
    assert _stored_verdicts(window.session.path) == {first: 1}
    assert window.images.current_row() == 1
    model = window.images.model
    assert model.index(0, VERDICT_COLUMN).data().startswith("1 ")
    assert model.index(0, 0).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert model.index(1, 0).data(Qt.ItemDataRole.BackgroundRole) is None
    assert window.session_label.text().startswith("reviewed 1 /")
    # The result of the first image was recorded for the report.
    record = next(r for r in window.session.records() if r.rel_path == first)
    assert record.predicted == model.index(0, 2).data()
    assert record.confidence is not None


def test_button_records_and_shows_the_verdict(qtbot, window: MainWindow) -> None:
    window.auto_advance.setChecked(False)
    assert window.settings.value("autoAdvance") == "false"
    rel = window.images.current_record().rel_path.as_posix()
    window.prediction.verdict_buttons[2].click()
    assert _stored_verdicts(window.session.path) == {rel: 3}
    assert window.images.current_row() == 0
    assert [b.isChecked() for b in window.prediction.verdict_buttons] == [0, 0, 1, 0]


def test_undo_removes_the_verdict_and_goes_back(qtbot, window: MainWindow) -> None:
    first = window.images.current_record().rel_path.as_posix()
    _verdict_key(qtbot, window, Qt.Key.Key_2)
    assert window.images.current_row() == 1
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        _press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _stored_verdicts(window.session.path) == {}
    assert window.images.current_row() == 0
    assert window.images.current_record().rel_path.as_posix() == first
    assert window.images.model.index(0, VERDICT_COLUMN).data() == ""
    assert window.session_label.text().startswith("reviewed 0 /")


def test_note_is_stored_for_the_current_image(window: MainWindow) -> None:
    rel = window.images.current_record().rel_path.as_posix()
    window.set_note("scratch at the edge")
    assert window.session.verdict(rel).note == "scratch at the edge"
    assert "scratch at the edge" in window.prediction.note.text()


def test_reopening_resumes_the_verdicts(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path
) -> None:
    first = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False)
    rel = first.images.current_record().rel_path.as_posix()
    _verdict_key(qtbot, first, Qt.Key.Key_3)
    path = first.session.path
    first.close()
    assert first.session is None
    second = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False)
    try:
        assert second.session is not None and second.session.path == path
        assert second.session.verdict(rel).code == 3
        assert second.session.warnings == ()
        rows = {r.rel_path.as_posix(): i for i, r in enumerate(second.images.model.records)}
        assert second.images.model.index(rows[rel], VERDICT_COLUMN).data().startswith("3 ")
    finally:
        second.close()


def test_second_window_is_refused_and_keeps_working(
    qtbot, window: MainWindow, neu_folder: Path, tiny_profile: Path, tmp_path: Path
) -> None:
    other_settings = QSettings(str(tmp_path / "other.ini"), QSettings.Format.IniFormat)
    other = open_window(qtbot, other_settings, neu_folder, tiny_profile, prefetch=False)
    try:
        assert other.session is None
        assert "another window" in other.session_label.toolTip()
        assert other.session_label.text() == "no session"
        assert not any(b.isEnabled() for b in other.prediction.verdict_buttons)
        other.set_verdict(1)  # no session: nothing recorded, no crash
        assert other.last_explained is not None
        assert window.session is not None
    finally:
        other.close()
    assert _stored_verdicts(window.session.path) == {}


def test_unreviewed_filter_hides_reviewed_rows(qtbot, window: MainWindow) -> None:
    reviewed = window.images.current_record()
    _verdict_key(qtbot, window, Qt.Key.Key_1)
    total = window.images.model.rowCount()
    window.images.set_filter_mode("unreviewed")
    visible = window.images.visible_records()
    assert len(visible) == total - 1 and reviewed not in visible
    window.images.set_filter_mode("v1")
    assert window.images.visible_records() == [reviewed]
    window.images.set_filter_mode("all")
    assert len(window.images.visible_records()) == total


def test_export_report_writes_the_verdicts(qtbot, window: MainWindow, tmp_path: Path) -> None:
    window.auto_advance.setChecked(False)
    rel = window.images.current_record().rel_path.as_posix()
    window.set_verdict(3)
    window.set_note("wrong class, heat on the roller mark")
    files = window.export_report(tmp_path / "report")
    assert files is not None
    with files.csv.open(newline="", encoding="utf-8") as fh:
        rows = {row["path"]: row for row in csv.DictReader(fh)}
    assert len(rows) == window.images.model.rowCount()
    assert rows[rel]["verdict"] == "3"
    assert rows[rel]["note"] == "wrong class, heat on the roller mark"
    assert rows[rel]["prediction"] == window.last_explained.result.predicted.name
    page = files.html.read_text(encoding="utf-8")
    assert "roller mark" in page
    assert "data:image/png;base64," in page  # the cached overlay of the marked image


def test_changed_model_warns_once_when_resuming(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path
) -> None:
    path = default_session_path(neu_folder, tiny_profile)
    Session.open(path, neu_folder, tiny_profile, "0" * 64, "layer4", "gradcam").close()
    window = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False)
    try:
        assert window.session is not None
        assert any("weights sha256 changed" in w for w in window.session.warnings)
        notices = [m.text() for m in window.findChildren(QMessageBox) if m.isVisible()]
        assert sum("weights sha256 changed" in text for text in notices) == 1
    finally:
        window.close()


def test_summary_counts_verdicts_per_predicted_class(qtbot, window: MainWindow) -> None:
    predicted = window.last_explained.result.predicted.name
    _verdict_key(qtbot, window, Qt.Key.Key_4)
    summary = window.summary
    assert summary.heights.sum() == window.images.model.rowCount()
    assert summary.heights[:, 3].sum() == 1  # one image marked 4
    row = summary.classes.index(predicted)
    assert summary.heights[row, 3] == 1
    assert summary.heights[:, :3].sum() == 0
    assert "Reviewed 1 of" in summary.caption.text()
