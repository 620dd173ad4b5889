"""Tests for ui/review.py: the review controller on a real Session in a temp folder, no model."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from engine.dataset import ImageRecord
from engine.session import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Session,
    SessionContext,
    VerdictView,
    default_session_path,
)
from tests.ui.conftest import stored_rows, stored_verdicts
from ui.review import ReviewController
from ui.settings import SettingsStore

IMAGES = ("crazing/c1.jpg", "crazing/c2.jpg", "scratches/s1.jpg")


class Seen:
    """Everything the controller emitted, by signal."""

    def __init__(self, review: ReviewController) -> None:
        self.messages: list[str] = []
        self.warnings: list[tuple[str, str]] = []
        self.progress: list[tuple[str, str]] = []
        self.summaries: list[tuple[object, object, object]] = []
        self.sessions = 0
        review.sig_message.connect(lambda text, _ms: self.messages.append(text))
        review.sig_warning.connect(lambda title, text: self.warnings.append((title, text)))
        review.sig_progress.connect(lambda text, tip: self.progress.append((text, tip)))
        review.sig_summary.connect(lambda *args: self.summaries.append(args))
        review.sig_session_changed.connect(self._session_changed)

    def _session_changed(self) -> None:
        self.sessions += 1


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "images"
    path.mkdir()
    return path


@pytest.fixture
def context(folder: Path) -> SessionContext:
    return SessionContext(folder, None, "ab" * 32, "layer4", "gradcam")


def _controller(settings: QSettings) -> tuple[ReviewController, Seen]:
    review = ReviewController(SettingsStore(settings))
    return review, Seen(review)


@pytest.fixture
def review(qapp, settings: QSettings, context: SessionContext):
    controller, _ = _controller(settings)
    controller.open(context, IMAGES)
    yield controller
    controller.close()


def test_opens_the_default_session_beside_the_user_data(
    qapp, settings: QSettings, context: SessionContext, data_home: Path
) -> None:
    review, seen = _controller(settings)
    review.open(context, IMAGES)
    try:
        assert review.session is not None
        assert review.session.path == default_session_path(context.folder, None)
        assert review.session.path.is_relative_to(data_home)
        assert seen.progress[-1] == ("reviewed 0 / 3", f"Session file: {review.session.path}")
        assert seen.sessions == 1 and seen.warnings == []
        assert review.labels() == review.session.labels
        review.open(context, IMAGES)  # the same folder and profile: the open session is kept
        assert seen.sessions == 1
    finally:
        review.close()
    assert review.session is None


def test_verdict_is_committed_and_auto_advance_names_the_next_image(
    review: ReviewController, settings: QSettings
) -> None:
    seen = Seen(review)
    change = review.set_verdict(IMAGES[0], 1, following=IMAGES[1])
    assert change is not None and (change.rel_path, change.code) == (IMAGES[0], 1)
    assert change.go_to == IMAGES[1]
    assert stored_verdicts(review.session.path) == {IMAGES[0]: 1}
    assert seen.messages == [f"{IMAGES[0]}: verdict 1 recorded"]
    assert seen.progress[-1][0] == "reviewed 1 / 3"
    assert review.verdicts() == {IMAGES[0]: 1}
    review.set_auto_advance(False)
    assert settings.value("autoAdvance") == "false"
    assert review.set_verdict(IMAGES[1], 2, following=IMAGES[2]).go_to is None
    assert ReviewController(SettingsStore(settings)).auto_advance is False  # remembered


def test_no_session_records_nothing(qapp, settings: QSettings) -> None:
    review, seen = _controller(settings)
    assert review.set_verdict(IMAGES[0], 1) is None
    assert review.undo() is None
    review.set_note(IMAGES[0], "ignored")
    review.set_corrected(IMAGES[0], "crazing")
    assert seen.messages == [
        "No session: the verdict is not recorded",
        "Give a verdict (keys 1-4) before a corrected class",
    ]
    assert review.verdict(IMAGES[0]) is None and review.verdicts() == {}


def test_corrected_class_stays_with_wrong_and_unsure_only(review: ReviewController) -> None:
    rel = IMAGES[0]
    seen = Seen(review)
    review.set_corrected(rel, "scratches")  # no verdict yet: refused, nothing stored
    assert stored_rows(review.session.path) == {}
    assert seen.messages == ["Give a verdict (keys 1-4) before a corrected class"]
    review.set_verdict(rel, 3)
    review.set_note(rel, "rolled-in scale, not a scratch")
    review.set_corrected(rel, "scratches")
    assert seen.messages[-1] == f"{rel}: corrected class scratches"
    assert stored_rows(review.session.path) == {
        rel: (3, "scratches", "rolled-in scale, not a scratch")
    }
    review.set_verdict(rel, 4)  # unsure: the correction stays
    assert stored_rows(review.session.path)[rel][:2] == (4, "scratches")
    review.set_verdict(rel, 1)  # right class: no correction
    assert stored_rows(review.session.path)[rel][:2] == (1, None)
    review.set_corrected(rel, None)
    assert seen.messages[-1] == f"{rel}: corrected class cleared"


def test_undo_reverts_and_goes_back_to_that_image(review: ReviewController) -> None:
    review.set_verdict(IMAGES[0], 2, following=IMAGES[1])
    seen = Seen(review)
    change = review.undo()
    assert change is not None and (change.rel_path, change.code) == (IMAGES[0], None)
    assert change.go_to == IMAGES[0]
    assert stored_verdicts(review.session.path) == {}
    assert seen.messages == [f"Undone: {IMAGES[0]}"]
    assert seen.progress[-1][0] == "reviewed 0 / 3"
    assert review.undo() is None
    assert seen.messages[-1] == "Nothing to undo in this sitting"


def test_a_locked_session_is_refused_and_told_once(
    qapp, settings: QSettings, context: SessionContext
) -> None:
    path = default_session_path(context.folder, None)
    holder = Session.open(path, replace(context, weights_sha256="0" * 64))
    review, seen = _controller(settings)
    try:
        review.open(context, IMAGES)
        review.open(context, IMAGES)  # a retry (e.g. the model loaded again) stays quiet
        assert review.session is None
        assert len(seen.warnings) == 1
        assert seen.warnings[0][0] == "Verdicts will not be recorded"
        text, tooltip = seen.progress[-1]
        assert text == "no session" and "another window" in tooltip
        assert review.set_verdict(IMAGES[0], 1) is None  # nothing recorded, no crash
    finally:
        holder.close()
    assert stored_verdicts(path) == {}


def test_changed_model_warns_once_when_resuming(
    qapp, settings: QSettings, context: SessionContext
) -> None:
    path = default_session_path(context.folder, None)
    Session.open(path, replace(context, weights_sha256="0" * 64)).close()
    review, seen = _controller(settings)
    review.open(context, IMAGES)
    try:
        assert review.session is not None
        assert any("weights sha256 changed" in w for w in review.session.warnings)
        assert sum("weights sha256 changed" in text for _, text in seen.warnings) == 1
    finally:
        review.close()


def test_chosen_session_file_is_remembered_for_the_next_start(
    qapp, settings: QSettings, context: SessionContext, tmp_path: Path
) -> None:
    chosen = tmp_path / "line-3" / "shift.sqlite"
    first, seen = _controller(settings)
    first.open(context, IMAGES)
    try:
        assert first.use_file(chosen, context, IMAGES)
        assert seen.messages[-1] == f"Session file: {chosen}"
        assert first.session_path(context.folder, None) == chosen
        first.set_verdict(IMAGES[1], 2)
    finally:
        first.close()
    second, _ = _controller(settings)  # a new start: only the settings remember the choice
    second.open(context, IMAGES)
    try:
        assert second.session is not None and second.session.path == chosen
        assert second.session.verdict(IMAGES[1]).code == 2
    finally:
        second.close()
    chosen.unlink()  # a remembered file that has gone: back to the default place
    chosen.with_name(chosen.name + ".lock").unlink(missing_ok=True)
    third, _ = _controller(settings)
    third.open(context, IMAGES)
    try:
        assert third.session.path == default_session_path(context.folder, None).absolute()
    finally:
        third.close()


def _not_a_session(path: Path) -> None:
    path.write_bytes(b"defect list, not a database\n" * 20)


def _newer_schema(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.execute("CREATE TABLE future (x)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("not a session", "not an SQLite file"), ("newer", "newer"), ("locked", "another window")],
)
def test_bad_session_file_is_refused_and_left_untouched(
    review: ReviewController, context: SessionContext, tmp_path: Path, kind: str, expected: str
) -> None:
    seen = Seen(review)
    current = review.session.path
    bad = tmp_path / "bad.sqlite"
    holder = None
    if kind == "not a session":
        _not_a_session(bad)
    elif kind == "newer":
        _newer_schema(bad)
    else:  # open elsewhere: this session holds the file's lock
        holder = Session.open(bad, replace(context, weights_sha256="0" * 64))
    before = bad.read_bytes()
    try:
        assert not review.use_file(bad, context, IMAGES)
        assert bad.read_bytes() == before
    finally:
        if holder is not None:
            holder.close()
    assert len(seen.warnings) == 1
    title, text = seen.warnings[0]
    assert title == "Cannot use this session file"
    assert str(bad) in text and expected in text and f"{current} stays open" in text
    assert review.session.path == current
    review.set_verdict(IMAGES[1], 2)  # verdicts still go to the current session
    assert stored_verdicts(current) == {IMAGES[1]: 2}


def test_hidden_summary_is_rebuilt_only_when_shown(review: ReviewController, folder: Path) -> None:
    seen = Seen(review)
    review.set_summary_visible(False)
    record = ImageRecord(folder / IMAGES[0], Path(IMAGES[0]), "crazing", None)
    review.record_result(record, "crazing", 0.9, None, None)
    review.set_verdict(IMAGES[0], 4)
    assert seen.summaries == []  # hidden: nothing rebuilt
    review.set_summary_visible(True)
    assert len(seen.summaries) == 1
    counts, labels, rows = seen.summaries[0]
    assert labels == review.session.labels
    crazing = next(c for c in counts if c.cls == "crazing")
    assert crazing.per_code == (0, 0, 0, 1) and crazing.total == 1
    row = next(r for r in rows if r.rel_path == IMAGES[0])
    assert (row.predicted, row.ground_truth, row.verdict.code) == ("crazing", "crazing", 4)
    review.set_summary_visible(True)  # up to date: not rebuilt again
    review.set_verdict(IMAGES[0], 1)  # visible: rebuilt at once
    assert len(seen.summaries) == 2


def test_report_data_reads_the_verdicts_and_their_maps(review: ReviewController) -> None:
    view = VerdictView("layer4", "gradcam++", 2, 4.0)
    review.set_verdict(IMAGES[0], 3, view=view)
    review.set_note(IMAGES[0], "wrong class, heat on the roller mark")
    data = review.report_data()
    assert data is not None
    rows = {r.rel_path: r for r in data.records}
    assert set(rows) == set(IMAGES)
    assert rows[IMAGES[0]].verdict.code == 3
    assert rows[IMAGES[0]].verdict.note == "wrong class, heat on the roller mark"
    assert data.view(IMAGES[0]) == (view, True)  # the note kept the verdict's map
    assert (data.reviewed, data.total) == (1, len(IMAGES))


def test_report_data_without_a_session_says_so(qapp, settings: QSettings) -> None:
    review, seen = _controller(settings)
    assert review.report_data() is None
    assert seen.warnings == [("No session", "There is no open session to report on.")]
