"""Reviewing as a team in the window: the team-session dialog and how others' verdicts read."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSignalBlocker, Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.session_records import (
    DEFAULT_LABELS,
    Adjudication,
    HistoryEntry,
    Verdict,
    is_team_location,
)
from ui.review import TeamView

if TYPE_CHECKING:
    from ui.main_window import MainWindow

REFRESH_MS = 10_000  # how often a team session's other reviewers are read again
URL_HINT = "postgresql://user@host[:port]/database[?sslmode=verify-full&sslrootcert=ca.pem]"


class TeamTools(QObject):
    """The window's team commands: the reviewer name, the team session, blind mode, the lead's
    final verdicts, and the timer that reads the other reviewers' verdicts again."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.review = window.review
        self.label = QLabel()  # the status bar's reviewer name
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # a name is text, never markup
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self._asked: str | None = None  # --session, opened once the model is ready

    # -- reviewer -------------------------------------------------------------------------------
    def ask_reviewer(self) -> None:
        name, ok = QInputDialog.getText(
            self.window,
            "Reviewer name",
            "Your name on the verdicts you give (empty: your login name):",
            text=self.review.reviewer,
        )
        if ok:
            self.set_reviewer(name)

    def set_reviewer(self, name: str) -> bool:
        """Review under this name; the session is opened again under it."""
        w = self.window
        return self.review.set_reviewer(name, w.session_context(), w.rel_paths())

    # -- team session ---------------------------------------------------------------------------
    def ask_session(self, location: str) -> None:
        """Open this session (a file or a postgresql:// URL) once the model is ready."""
        self._asked = location

    def open_asked(self) -> bool:
        """Open the --session location, if one is waiting; True when it opened (else the
        folder's own session is used, and a refused URL's dialog is shown to try again)."""
        location, self._asked = self._asked, None
        if location is None:
            return False
        if not is_team_location(location):
            return self.window.use_session_file(Path(location))
        if self.use_team(location, None):
            return True
        self.open_dialog(location)  # the password may be what was missing
        return False

    def open_dialog(self, url: str | None = None) -> TeamSessionDialog:
        """The team-session dialog (not modal: the window keeps its keys)."""
        dialog = TeamSessionDialog(self.window, url or self.review.settings.team_url())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.use_team(dialog.location(), dialog.secret()))
        dialog.open()
        return dialog

    def show_history(self) -> QDialog:
        """The current image's history (who, when, what before and after), not modal."""
        rel = self.window.current_rel_path()
        labels = self.review.labels() or DEFAULT_LABELS
        dialog = HistoryDialog(
            self.window, rel or "", history_rows(self.review.history(rel), labels)
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def use_team(self, url: str, password: str | None) -> bool:
        context = self.window.session_context()
        if context is None:
            self.review.sig_warning.emit("No session yet", "Wait for the model to load first.")
            return False
        return self.review.use_team(url, password, context, self.window.rel_paths())

    # -- what the others said -------------------------------------------------------------------
    def session_changed(self) -> None:
        """Another session (or name): the status label, blind mode's check, the timer."""
        session = self.review.session
        self.label.setText(f"reviewer: {self.review.reviewer}")
        self.label.setToolTip("Your verdicts are recorded under this name (Review > Reviewer name)")
        blind = self.window.blind_action
        with QSignalBlocker(blind):
            blind.setChecked(self.review.blind())
        blind.setEnabled(session is not None)
        if session is not None and session.is_team:
            self.timer.start()
        else:
            self.timer.stop()

    def show(self) -> None:
        """The current image's others and final verdict in the panel, and the list's marks."""
        self.show_panel()
        self.show_disputes()

    def show_disputes(self) -> None:
        """The list's marks of images whose reviewers disagree (blind mode applied)."""
        self.window.images.model.set_disputed(self.review.disputed())

    def show_panel(self) -> None:
        """The current image's others and final verdict (read again: another image shown)."""
        view = self.review.team_view(self.window.current_rel_path())
        self.window.prediction.show_team(team_html(view, self.review.labels()))

    def refresh(self) -> None:
        """Read the other reviewers' verdicts again (the timer, F5); cheap when nothing is
        shown: the summary is rebuilt only when its tab is visible."""
        if self.review.session is None or self.window.isMinimized():
            return  # a minimised window reads again at the first tick after it is restored
        if self.review.refresh():
            self.show()

    def set_blind(self, on: bool) -> None:
        self.review.set_blind(on)
        self.show()

    def adjudicate(self, code: int) -> None:
        """The lead's final verdict on the current image."""
        self.review.adjudicate(self.window.current_rel_path(), code)
        self.show()

    def clear_adjudication(self) -> None:
        self.review.clear_adjudication(self.window.current_rel_path())
        self.show()


class TeamSessionDialog(QDialog):
    """URL, user and password of a team session. The password is handed to the session and
    forgotten; only the URL without it is remembered (by the caller)."""

    def __init__(self, parent: QWidget | None, url: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Team session")
        self.url = QLineEdit(url)
        self.url.setPlaceholderText(URL_HINT)
        self.url.setMinimumWidth(420)
        self.url.setToolTip(
            "A PostgreSQL database; TLS options go in the URL's query (sslmode, sslrootcert, "
            "sslcert, sslkey)"
        )
        self.user = QLineEdit(_user_of(url))
        self.user.setPlaceholderText("the URL's user")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        from_env = bool(os.environ.get("PGPASSWORD"))
        self.password.setPlaceholderText(
            "from PGPASSWORD" if from_env else "typed here, or PGPASSWORD / ~/.pgpass"
        )
        form = QFormLayout()
        form.addRow("URL", self.url)
        form.addRow("User", self.user)
        form.addRow("Password", self.password)
        note = QLabel("The password is never saved; the URL is remembered without it.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def location(self) -> str:
        """The URL with the user field as its user (text the session refuses in one line when
        it is not a URL)."""
        text, user = self.url.text().strip(), self.user.text().strip()
        if not user:
            return text
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(text)
        except ArgumentError:
            return text
        return url.set(username=user).render_as_string(hide_password=False)

    def secret(self) -> str | None:
        """The typed password; None leaves it to libpq (PGPASSWORD, ~/.pgpass)."""
        return self.password.text() or None


def _user_of(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not url:
        return ""
    try:
        return make_url(url).username or ""
    except ArgumentError:
        return ""


class HistoryDialog(QDialog):
    """One image's history as a table, newest last."""

    def __init__(self, parent: QWidget, rel: str, rows: list[tuple[str, ...]]) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"History of {rel}" if rel else "History")
        self.table = QTableWidget(len(rows), len(HISTORY_COLUMNS))
        self.table.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        empty = QLabel("No changes recorded for this image yet." if not rows else "")
        empty.setVisible(not rows)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (empty, self.table, buttons):
            layout.addWidget(widget)
        self.resize(760, 320)


HISTORY_COLUMNS = ("time (UTC)", "reviewer", "change", "before", "after")


def history_rows(entries: Sequence[HistoryEntry], labels: Sequence[str]) -> list[tuple[str, ...]]:
    """The history table's rows: when, who, what, and the state before and after."""
    return [
        (
            entry.time[:19].replace("T", " "),
            entry.reviewer,
            _CHANGES.get(entry.action, entry.action),
            _state_text(entry.old, labels),
            _state_text(entry.new, labels),
        )
        for entry in entries
    ]


_CHANGES = {"verdict": "verdict", "note": "note", "undo": "undo", "adjudicate": "final verdict"}


def _state_text(state: tuple[int | None, str | None, str | None], labels: Sequence[str]) -> str:
    code, corrected, note = state
    parts = [verdict_text(code, labels, corrected)] if code is not None else []
    if note:
        parts.append(f"note: {note}")
    return "; ".join(parts) or "(none)"


def verdict_text(code: int, labels: Sequence[str], corrected: str | None) -> str:
    """ "3 wrong class (→ patches)" """
    fix = f" (→ {corrected})" if corrected else ""
    return f"{code} {labels[code - 1]}{fix}"


def team_html(view: TeamView | None, labels: Sequence[str] | None) -> str:
    """The panel's lines on the other reviewers and the final verdict (empty: nothing to say)."""
    if view is None or labels is None:
        return ""
    lines: list[str] = []
    if view.hidden and view.reviewers > 1:
        lines.append("<i>Blind mode: others' verdicts show once you give yours.</i>")
    lines += [_other_line(v, labels) for v in view.others]
    if view.final is not None:
        lines.append(_final_line(view.final, labels))
    return "<br>".join(lines)


def _other_line(verdict: Verdict, labels: Sequence[str]) -> str:
    assert verdict.code is not None  # others() lists verdicts given, never notes alone
    shown = verdict_text(verdict.code, labels, verdict.corrected)
    return f"{html.escape(verdict.reviewer)}: {html.escape(shown)}"


def _final_line(final: Adjudication, labels: Sequence[str]) -> str:
    shown = verdict_text(final.code, labels, final.corrected)
    when = final.time[:16].replace("T", " ")
    return f"<b>final: {html.escape(shown)}</b> by {html.escape(final.lead)} at {when} UTC"
