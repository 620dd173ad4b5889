"""Tests for reviewing as a team in the window: reviewer names, others' verdicts, blind mode,
the disagreements filter, final verdicts, agreement and the team-session dialog."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from engine.agreement import kappa_text
from engine.session import Session, SessionContext, default_reviewer
from engine.session_pg import display
from tests.pg_server import PgServer
from tests.ui.conftest import open_window
from ui.images_dock import VERDICT_COLUMN
from ui.main_window import MainWindow
from ui.review import ReviewController
from ui.settings import SettingsStore


def _press(qtbot, window: MainWindow, key: Qt.Key, modifier=Qt.KeyboardModifier.NoModifier):
    window.activateWindow()
    window.images.table.setFocus()
    qtbot.keyClick(window.images.table, key, modifier)


def _give(window: MainWindow, reviewer: str, code: int, corrected: str | None = None) -> str:
    """The current image's verdict under this reviewer name; its relative path."""
    assert window.team.set_reviewer(reviewer)
    window.set_verdict(code)
    if corrected is not None:
        window.set_corrected(corrected)
    return window.current_rel_path()


def _reviewers_in_file(path: Path) -> dict[tuple[str, str], int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT rel_path, reviewer, code FROM verdicts").fetchall()
    finally:
        conn.close()
    return {(rel, who): code for rel, who, code in rows}


def _shown_texts(window: MainWindow) -> str:
    """Everything the list shows of its rows: the verdict column and every tooltip."""
    model = window.images.model
    texts = []
    for row in range(model.rowCount()):
        texts.append(model.index(row, VERDICT_COLUMN).data())
        texts.append(model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole))
    return "\n".join(texts)


@pytest.fixture
def quiet(window: MainWindow) -> MainWindow:
    """The window with auto-advance off: a verdict stays on its image."""
    window.auto_advance.setChecked(False)
    return window


def test_reviewer_name_defaults_to_the_os_user_and_reopens_the_session(quiet) -> None:
    window = quiet
    assert window.team.label.text() == f"reviewer: {default_reviewer()}"
    assert window.review.session.reviewer == default_reviewer()
    rel = _give(window, "alice", 3)
    assert window.settings.value("reviewer") == "alice"
    assert window.review.session.reviewer == "alice"
    assert window.team.label.text() == "reviewer: alice"
    assert _reviewers_in_file(window.review.session.path) == {(rel, "alice"): 3}
    # The new name's own verdicts: bob has none yet, so the list shows none.
    assert window.team.set_reviewer("bob")
    assert window.images.model.index(0, VERDICT_COLUMN).data() == ""
    assert window.session_label.text().startswith("reviewed 0 /")


def test_others_verdicts_show_with_the_corrected_class(quiet) -> None:
    window = quiet
    rel = _give(window, "bob", 3, corrected="patches")
    assert window.team.set_reviewer("alice")
    assert window.current_rel_path() == rel
    assert window.prediction.team.text() == "bob: 3 wrong class (→ patches)"
    assert window.prediction.team.isVisibleTo(window.prediction)


def test_blind_mode_hides_others_until_this_reviewer_gives_a_verdict(quiet) -> None:
    window = quiet
    rel = _give(window, "bob", 3, corrected="patches")
    window.blind_action.setChecked(True)
    assert window.review.session.blind
    assert window.team.set_reviewer("alice")
    assert window.blind_action.isChecked()  # a session's setting, seen by every reviewer
    panel = window.prediction.team.text()
    assert "bob" not in panel and "wrong class" not in panel
    assert "Blind mode" in panel
    shown = _shown_texts(window)
    assert "bob" not in shown and "≠" not in shown and "wrong class" not in shown
    window.images.set_filter_mode("disputed")
    assert window.images.visible_records() == []
    window.images.set_filter_mode("all")
    window.images.select_rel_path(rel)
    window.set_verdict(1)
    assert window.prediction.team.text() == "bob: 3 wrong class (→ patches)"
    row = window.images.model.row_of_path(str(window.images.current_record().path))
    assert window.images.model.index(row, VERDICT_COLUMN).data() == "1 on defect ≠"
    tooltip = window.images.model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert tooltip.endswith("≠ reviewers gave different verdicts")
    window.images.set_filter_mode("disputed")
    assert [r.rel_path.as_posix() for r in window.images.visible_records()] == [rel]


def test_disagreements_filter_lists_only_differing_images(quiet) -> None:
    window = quiet
    records = window.images.model.records[:3]
    for who, codes in (("bob", (1, 2, 4)), ("alice", (1, 3, 4))):
        assert window.team.set_reviewer(who)
        for record, code in zip(records, codes, strict=True):
            window.images.select_rel_path(record.rel_path.as_posix())
            window.set_verdict(code)
    window.images.set_filter_mode("disputed")
    assert window.images.visible_records() == [records[1]]
    assert window.review.session.disagreements() == {records[1].rel_path.as_posix()}


def test_final_verdict_is_shown_undone_and_cleared(qtbot, quiet) -> None:
    window = quiet
    rel = _give(window, "bob", 3)
    _give(window, "alice", 1)
    _press(qtbot, window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    final = window.review.session.adjudication(rel)
    assert (final.code, final.lead) == (2, "alice")
    text = window.prediction.team.text()
    when = final.time[:16].replace("T", " ")
    assert text == (
        f"bob: 3 wrong class<br><b>final: 2 right class, heat elsewhere</b> by alice at {when} UTC"
    )
    record = next(r for r in window.review.session.records() if r.rel_path == rel)
    assert record.verdict.code == 2 and record.verdict.reviewer == "alice"
    _press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.review.session.adjudication(rel) is None
    assert "final" not in window.prediction.team.text()
    assert window.review.session.verdict(rel).code == 1  # undo took the final one, not mine
    _press(qtbot, window, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert window.review.session.adjudication(rel).code == 4
    _press(qtbot, window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ControlModifier)
    assert window.review.session.adjudication(rel) is None
    assert window.prediction.team.text() == "bob: 3 wrong class"


def test_summary_shows_agreement_once_two_reviewers_gave_verdicts(quiet) -> None:
    window = quiet
    window.review.set_summary_visible(True)
    summary = window.summary
    assert summary.agreement_caption.text() == "No verdicts yet: agreement needs two reviewers."
    assert summary.agreement_table.isHidden()
    records = window.images.model.records[:4]
    for who, codes in (("bob", (1, 2, 3, 3)), ("alice", (1, 2, 3, 4))):
        assert window.team.set_reviewer(who)
        for record, code in zip(records, codes, strict=True):
            window.images.select_rel_path(record.rel_path.as_posix())
            window.set_verdict(code)
        if who == "bob":
            assert summary.agreement_caption.text() == (
                "One reviewer so far (bob): agreement needs two."
            )
            assert summary.agreement_table.isHidden()
    report = window.review.session.agreement()
    table = summary.agreement_table
    assert not table.isHidden()
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["kappa", "n", "agreed", "chance"]
    rows = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    assert rows == ["alice – bob", "all 2 (Fleiss)"]
    cells = [[table.item(r, c).text() for c in range(4)] for r in range(2)]
    pair, fleiss = report.pairs[0].overall, report.fleiss
    assert cells[0] == [kappa_text(pair), "4", "75%", f"{pair.expected:.0%}"]
    assert cells[1][:2] == [kappa_text(fleiss), "4"]
    assert "observed agreement 75.0%" in table.item(0, 0).toolTip()
    chooser = summary.agreement_class
    classes = list(report.fleiss_per_class)
    assert chooser.count() == 1 + len(classes) and chooser.currentText() == "all classes"
    chooser.setCurrentIndex(1)  # one predicted class: the table follows the choice
    assert table.item(0, 0).text() == kappa_text(report.pairs[0].per_class[classes[0]])
    assert table.item(0, 1).text() == str(report.pairs[0].per_class[classes[0]].n)
    summary.show_agreement(report)  # a refresh keeps the chosen class
    assert chooser.currentIndex() == 1
    assert summary.agreement_caption.text().startswith(
        "2 reviewers, 1 image with differing verdicts."
    )


def _settings_bytes(window: MainWindow) -> bytes:
    window.save_settings()
    window.settings.sync()
    return Path(window.settings.fileName()).read_bytes()


def _status_texts(window: MainWindow) -> str:
    labels = (window.team.label, window.session_label)
    return "\n".join(
        [window.windowTitle(), window.statusBar().currentMessage(), window.banner.text()]
        + [label.text() for label in labels]
        + [label.toolTip() for label in labels]
    )


def test_team_session_dialog_opens_and_shows_another_reviewers_verdict(
    quiet, pg_url: str, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = quiet
    monkeypatch.delenv("PGPASSWORD")  # typed in the dialog instead
    dialog = window.team.open_dialog()
    dialog.url.setText(pg_url)
    dialog.password.setText(pg_server.password)
    assert dialog.password.echoMode() == dialog.password.EchoMode.Password
    dialog.accept()
    session = window.review.session
    assert session.is_team and session.location == display(pg_url)
    assert window.team.timer.isActive()
    assert window.session_label.toolTip() == f"Team session: {display(pg_url)}"
    rel = window.current_rel_path()
    assert rel in {r.rel_path for r in session.records()}  # the folder's images registered
    with Session.open(
        pg_url, window.session_context(), reviewer="bob", password=pg_server.password
    ) as bob:
        bob.set_verdict(rel, 3)
        assert window.prediction.team.text() == ""  # not read again yet
        window.team.timer.timeout.emit()
        assert window.prediction.team.text() == "bob: 3 wrong class"
    assert window.team.use_team(pg_url, pg_server.password)  # open already: kept, no lock clash
    assert window.review.session is session and window.banner.text() == ""
    assert window.settings.value("teamSession") == display(pg_url)
    assert pg_server.password.encode() not in _settings_bytes(window)
    assert pg_server.password not in _status_texts(window)


def test_reviewer_names_switch_back_and_forth_on_a_team_session(quiet, pg_url: str) -> None:
    window = quiet
    assert window.team.use_team(pg_url, None)  # the password from PGPASSWORD
    rel = window.current_rel_path()
    _give(window, "bob", 3)
    _give(window, "alice", 1)
    assert window.team.set_reviewer("bob")  # bob's lock was released when he switched away
    assert window.review.session.is_team and window.review.session.reviewer == "bob"
    assert window.prediction.team.text() == "alice: 1 right class, heat on the defect"
    assert window.images.model.index(0, VERDICT_COLUMN).data() == "3 wrong class ≠"
    assert window.review.session.all_verdicts()[rel].keys() == {"alice", "bob"}


def test_a_refused_team_session_keeps_the_current_one(
    quiet, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = quiet
    before = window.review.session.path
    monkeypatch.delenv("PGPASSWORD")
    dialog = window.team.open_dialog()
    dialog.url.setText(pg_url)
    dialog.password.setText("wrong-password")
    dialog.accept()
    assert window.review.session.path == before
    message = window.statusBar().currentMessage()
    assert message.startswith(f"cannot reach team session '{display(pg_url)}': ")
    assert message.endswith(f"The session in {before} stays open.")
    assert "wrong-password" not in _status_texts(window)
    assert b"wrong-password" not in _settings_bytes(window)


def test_session_option_opens_a_team_session(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path, pg_url: str
) -> None:
    window = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False, session=pg_url)
    try:
        assert window.review.session.is_team
        assert window.review.session.location == display(pg_url)
    finally:
        window.close()


def test_session_option_opens_a_session_file(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path, tmp_path: Path
) -> None:
    chosen = tmp_path / "team.sqlite"
    window = open_window(
        qtbot, settings, neu_folder, tiny_profile, prefetch=False, session=str(chosen)
    )
    try:
        assert window.review.session.path == chosen
    finally:
        window.close()


def test_window_parser_takes_a_session() -> None:
    from main import window_parser

    url = "postgresql://ann@db.example/qa?sslmode=verify-full"
    assert window_parser().parse_args(["--session", url]).session == url


def test_a_refused_reviewer_name_keeps_the_old_one(qapp, settings: QSettings, tmp_path: Path):
    review = ReviewController(SettingsStore(settings))
    warnings: list[tuple[str, str]] = []
    review.sig_warning.connect(lambda title, text: warnings.append((title, text)))
    context = SessionContext(tmp_path, None, "ab" * 32, "layer4", "gradcam")
    review.open(context, ("a.jpg",))
    try:
        assert not review.set_reviewer("x" * 101, context, ("a.jpg",))
        assert warnings == [
            (
                "Reviewer name not changed",
                "a reviewer name is one line of at most 100 characters",
            )
        ]
        assert review.reviewer == default_reviewer() == review.session.reviewer
        assert settings.value("reviewer") is None
    finally:
        review.close()


def test_history_shows_who_changed_what_and_blind_mode_hides_the_others(quiet) -> None:
    window = quiet
    labels = window.review.labels()
    rel = _give(window, "bob", 3, corrected="patches")
    window.review.set_blind(True)
    assert window.team.set_reviewer("alice")
    assert window.current_rel_path() == rel
    dialog = window.team.show_history()
    assert dialog.table.rowCount() == 0  # blind: bob's entries would give his verdict away
    dialog.close()
    window.set_verdict(1)
    window.team.adjudicate(1)
    dialog = window.team.show_history()
    rows = [
        [dialog.table.item(r, c).text() for c in range(dialog.table.columnCount())]
        for r in range(dialog.table.rowCount())
    ]
    entries = window.review.session.history(rel)
    assert [row[0] for row in rows] == [e.time[:19].replace("T", " ") for e in entries]
    assert [row[1:3] for row in rows] == [
        ["bob", "verdict"],
        ["bob", "verdict"],  # the corrected class, set after the verdict
        ["alice", "verdict"],
        ["alice", "final verdict"],
    ]
    assert rows[1][3:] == [f"3 {labels[2]}", f"3 {labels[2]} (→ patches)"]
    assert rows[3][3:] == ["(none)", f"1 {labels[0]}"]
    assert dialog.windowTitle() == f"History of {rel}"
    dialog.close()


def test_a_reviewer_name_is_shown_as_text_never_as_markup(quiet) -> None:
    window = quiet
    name = "<b>eve</b><img src=x>"
    rel = _give(window, name, 2)
    assert window.team.label.text() == f"reviewer: {name}"
    assert window.team.label.textFormat() == Qt.TextFormat.PlainText
    assert window.team.set_reviewer("ann")
    window.images.select_rel_path(rel)
    shown = window.prediction.team.text()  # rich text: the name escaped, shown as typed
    assert "&lt;b&gt;eve&lt;/b&gt;&lt;img src=x&gt;: 2 " in shown and "<img" not in shown


def test_a_lead_in_blind_mode_settles_with_the_corrected_class_the_reviewers_gave(
    quiet,
) -> None:
    window = quiet
    rel = _give(window, "bob", 3, corrected="patches")
    window.review.set_blind(True)
    assert window.team.set_reviewer("lead")  # no verdict of the lead's own: others are hidden
    assert window.review.team_view(rel).others == ()
    done = window.review.adjudicate(rel, 3)
    assert done is not None and (done.code, done.corrected) == (3, "patches")
