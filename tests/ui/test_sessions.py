"""Tests for the window's inspection sessions: verdicts, corrections, undo, resume, lock, file."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from engine.session import Session, SessionContext, default_session_path
from tests.ui.conftest import RESULT_TIMEOUT_MS, open_window, stored_rows, stored_verdicts
from ui.images_dock import VERDICT_COLUMN
from ui.main_window import MainWindow


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
    session = window.review.session
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
    assert stored_verdicts(window.review.session.path) == {first: 1}
    assert window.images.current_row() == 1
    model = window.images.model
    assert model.index(0, VERDICT_COLUMN).data().startswith("1 ")
    assert model.index(0, 0).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert model.index(1, 0).data(Qt.ItemDataRole.BackgroundRole) is None
    assert window.session_label.text().startswith("reviewed 1 /")
    # The result of the first image was recorded for the report.
    record = next(r for r in window.review.session.records() if r.rel_path == first)
    assert record.predicted == model.index(0, 2).data()
    assert record.confidence is not None


def test_button_records_and_shows_the_verdict(qtbot, window: MainWindow) -> None:
    window.auto_advance.setChecked(False)
    assert window.settings.value("autoAdvance") == "false"
    rel = window.images.current_record().rel_path.as_posix()
    window.prediction.verdict_buttons[2].click()
    assert stored_verdicts(window.review.session.path) == {rel: 3}
    assert window.images.current_row() == 0
    assert [b.isChecked() for b in window.prediction.verdict_buttons] == [0, 0, 1, 0]


def test_undo_removes_the_verdict_and_goes_back(qtbot, window: MainWindow) -> None:
    first = window.images.current_record().rel_path.as_posix()
    _verdict_key(qtbot, window, Qt.Key.Key_2)
    assert window.images.current_row() == 1
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        _press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert stored_verdicts(window.review.session.path) == {}
    assert window.images.current_row() == 0
    assert window.images.current_record().rel_path.as_posix() == first
    assert window.images.model.index(0, VERDICT_COLUMN).data() == ""
    assert window.session_label.text().startswith("reviewed 0 /")


def test_note_is_stored_for_the_current_image(window: MainWindow) -> None:
    rel = window.images.current_record().rel_path.as_posix()
    window.set_note("scratch at the edge")
    assert window.review.session.verdict(rel).note == "scratch at the edge"
    assert "scratch at the edge" in window.prediction.note.text()


def test_reopening_resumes_the_verdicts(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path
) -> None:
    first = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False)
    rel = first.images.current_record().rel_path.as_posix()
    _verdict_key(qtbot, first, Qt.Key.Key_3)
    path = first.review.session.path
    first.close()
    assert first.review.session is None
    second = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False)
    try:
        assert second.review.session is not None and second.review.session.path == path
        assert second.review.session.verdict(rel).code == 3
        assert second.review.session.warnings == ()
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
        assert other.review.session is None
        assert "another window" in other.session_label.toolTip()
        assert other.session_label.text() == "no session"
        assert not any(b.isEnabled() for b in other.prediction.verdict_buttons)
        other.set_verdict(1)  # no session: nothing recorded, no crash
        assert other.explain.last_explained is not None
        assert window.review.session is not None
    finally:
        other.close()
    assert stored_verdicts(window.review.session.path) == {}


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
    with qtbot.waitSignal(window.sig_report_written, timeout=RESULT_TIMEOUT_MS) as written:
        assert window.export_report(tmp_path / "report") is not None
    files = written.args[0]
    with files.csv.open(newline="", encoding="utf-8") as fh:
        rows = {row["path"]: row for row in csv.DictReader(fh)}
    assert len(rows) == window.images.model.rowCount()
    assert rows[rel]["verdict"] == "3"
    assert rows[rel]["note"] == "wrong class, heat on the roller mark"
    assert rows[rel]["prediction"] == window.explain.last_explained.result.predicted.name
    page = files.html.read_text(encoding="utf-8")
    assert "roller mark" in page
    assert "data:image/jpeg;base64," in page  # the marked image's overlay, drawn again


def test_summary_counts_verdicts_per_predicted_class(qtbot, window: MainWindow) -> None:
    predicted = window.explain.last_explained.result.predicted.name
    _verdict_key(qtbot, window, Qt.Key.Key_4)
    summary = window.summary
    summary.raise_()  # a hidden Summary tab is brought up to date when it is shown
    assert summary.heights.sum() == window.images.model.rowCount()
    assert summary.heights[:, 3].sum() == 1  # one image marked 4
    row = summary.classes.index(predicted)
    assert summary.heights[row, 3] == 1
    assert summary.heights[:, :3].sum() == 0
    assert "Reviewed 1 of" in summary.caption.text()


def test_corrected_class_is_stored_with_the_verdict(qtbot, window: MainWindow) -> None:
    window.auto_advance.setChecked(False)
    rel = window.images.current_record().rel_path.as_posix()
    combo = window.prediction.corrected
    assert combo.itemData(0) is None
    assert [combo.itemText(i) for i in range(1, combo.count())] == list(window.classes)
    combo.setCurrentIndex(1)  # no verdict yet: refused, nothing stored
    assert stored_rows(window.review.session.path) == {}
    assert combo.currentIndex() == 0
    _press(qtbot, window, Qt.Key.Key_3)
    window.set_note("rolled-in scale, not a scratch")
    chosen = window.classes[-1]
    combo.setCurrentIndex(combo.findData(chosen))
    assert stored_rows(window.review.session.path) == {
        rel: (3, chosen, "rolled-in scale, not a scratch")
    }
    assert window.review.session.history(rel)[-1].new == (
        3,
        chosen,
        "rolled-in scale, not a scratch",
    )
    _press(qtbot, window, Qt.Key.Key_4)  # unsure: the correction stays
    assert stored_rows(window.review.session.path)[rel][:2] == (4, chosen)
    _press(qtbot, window, Qt.Key.Key_1)  # right class: no correction
    assert stored_rows(window.review.session.path)[rel][:2] == (1, None)
    assert combo.currentIndex() == 0
    combo.setCurrentIndex(combo.findData(chosen))
    assert stored_rows(window.review.session.path)[rel][:2] == (1, chosen)
    combo.setCurrentIndex(0)
    assert stored_rows(window.review.session.path)[rel][:2] == (1, None)
    combo.setCurrentIndex(combo.findData(chosen))
    window.images.step(1)
    assert combo.currentIndex() == 0  # the next image has no correction
    window.images.step(-1)
    assert combo.currentData() == chosen


def test_summary_shows_confusion_and_localisation_of_the_session(qtbot, window: MainWindow) -> None:
    for _ in range(3):
        with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
            window.images.step(1)
    records = [r for r in window.review.session.records() if r.predicted is not None]
    assert len(records) == 4
    summary = window.summary
    summary.raise_()  # the Summary tab is brought up to date when it is shown
    pairs = Counter((r.ground_truth, r.predicted) for r in records)
    classes = sorted({name for pair in pairs for name in pair})
    assert summary.confusion_classes == classes
    assert summary.confusion.sum() == 4
    table = summary.confusion_table
    for row, truth in enumerate(classes):
        assert table.verticalHeaderItem(row).text() == truth
        for column, predicted in enumerate(classes):
            assert table.horizontalHeaderItem(column).text() == predicted
            assert summary.confusion[row, column] == pairs[(truth, predicted)]
            assert table.item(row, column).text() == str(pairs[(truth, predicted)])
    by_class: dict[str, list] = {}
    for r in records:
        assert r.pointing_hit is not None and r.energy_in_box is not None  # NEU has boxes
        by_class.setdefault(r.ground_truth, []).append(r)
    assert summary.localisation_classes == sorted(by_class)
    for i, cls in enumerate(summary.localisation_classes):
        hits = [r.pointing_hit for r in by_class[cls]]
        energies = [r.energy_in_box for r in by_class[cls]]
        assert summary.pointing_rate[i] == pytest.approx(sum(hits) / len(hits))
        assert summary.mean_energy[i] == pytest.approx(sum(energies) / len(energies))


def test_session_file_can_be_chosen_and_resumed(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.auto_advance.setChecked(False)
    default = window.review.session.path
    chosen = tmp_path / "elsewhere" / "x.sqlite"
    asked = []

    def save_dialog(parent, title, start, *args, **kwargs):
        asked.append((title, start))
        return str(chosen), ""

    monkeypatch.setattr("ui.main_window.QFileDialog.getSaveFileName", save_dialog)
    window.choose_session_file()
    assert asked == [(f"Session file (now {default})", str(default))]  # shows where it lives
    assert window.review.session.path == chosen
    assert window.session_path() == chosen
    assert str(chosen) in window.session_label.toolTip()
    rel = window.images.current_record().rel_path.as_posix()
    _press(qtbot, window, Qt.Key.Key_1)
    assert stored_verdicts(chosen) == {rel: 1}
    assert stored_verdicts(default) == {}
    Session.open_existing(default).close()  # the old session's lock was released
    assert window.use_session_file(default)  # back to the default: no verdicts there
    assert [b.isChecked() for b in window.prediction.verdict_buttons] == [0, 0, 0, 0]
    assert window.use_session_file(chosen)  # resumed, with its verdict shown
    assert [b.isChecked() for b in window.prediction.verdict_buttons] == [1, 0, 0, 0]
    assert window.session_label.text().startswith("reviewed 1 /")


def test_bad_session_file_is_refused_and_left_untouched(
    qtbot, window: MainWindow, neu_folder: Path, tmp_path: Path
) -> None:
    """The window's side: one notice, work goes on (each kind of bad file: test_review)."""
    window.auto_advance.setChecked(False)
    current = window.review.session.path
    bad = tmp_path / "bad.sqlite"
    expected = "another window"
    # Open elsewhere: this session holds the file's lock.
    holder = Session.open(bad, SessionContext(neu_folder, None, "0" * 64, "layer4", "gradcam"))
    before = bad.read_bytes()
    try:
        assert not window.use_session_file(bad)
        assert bad.read_bytes() == before
    finally:
        holder.close()
    assert not [m for m in window.findChildren(QMessageBox) if m.isVisible()]  # nothing modal
    text = window.banner.text()  # one notice above the image, taking no key
    assert str(bad) in text and expected in text and f"{current} stays open" in text
    assert window.review.session.path == current
    # Usable at once, the notice still shown: D explains the next image and verdicts go to
    # the current session.
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        _press(qtbot, window, Qt.Key.Key_D)
    assert window.images.current_row() == 1
    rel = window.images.current_record().rel_path.as_posix()
    _press(qtbot, window, Qt.Key.Key_2)
    assert stored_verdicts(current) == {rel: 2}
    assert window.banner.isVisible()
    _press(qtbot, window, Qt.Key.Key_Escape)  # the user has read it
    assert not window.banner.isVisible()


def test_hidden_summary_is_not_rebuilt_for_each_result(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = window.summary.show_counts
    monkeypatch.setattr(
        window.summary, "show_counts", lambda *a: (calls.append(1), original(*a))[1]
    )
    window.model_dock.raise_()  # the Summary tab goes behind the Model tab
    window.auto_advance.setChecked(False)
    _press(qtbot, window, Qt.Key.Key_4)
    assert calls == []  # hidden: nothing rebuilt
    window.summary.raise_()
    qtbot.waitUntil(lambda: calls == [1])
    assert window.summary.heights[:, 3].sum() == 1
    _press(qtbot, window, Qt.Key.Key_1)  # visible: rebuilt at once
    assert len(calls) == 2 and window.summary.heights[:, 0].sum() == 1
