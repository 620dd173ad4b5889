"""Review sessions: which file or team database, reviewer, verdicts, notes, undo, adjudication,
blind mode, progress, the summary and the report.

Needs no model and no window: it works on an engine Session and relative image paths, and tells
the window what to show through signals (tests/ui/test_review.py drives it on a temp folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from engine.dataset import ImageRecord
from engine.errors import InspectorError
from engine.report import ReportData
from engine.session_records import (
    Adjudication,
    HistoryEntry,
    SessionContext,
    Verdict,
    VerdictView,
    default_reviewer,
    default_session_path,
)
from ui.settings import SettingsStore

if TYPE_CHECKING:
    from engine.session import Session

CORRECTABLE = (3, 4)  # "wrong class" and "unsure" keep a corrected class; "right class" has none


@dataclass(frozen=True)
class VerdictChange:
    """A verdict written (or undone): the row to repaint and the image to show next, if any."""

    rel_path: str
    code: int | None
    go_to: str | None = None  # auto-advance's next image, or the image an undo went back to


@dataclass(frozen=True)
class TeamView:
    """What this reviewer may see of the others on one image (blind mode applied)."""

    others: tuple[Verdict, ...]
    final: Adjudication | None
    hidden: bool  # blind mode hides the others until this reviewer gives a verdict
    reviewers: int  # everyone who reviewed in this session, this reviewer included


@dataclass(frozen=True)
class _TeamLogin:
    """The team database in use; the password lives here, in memory only, to reopen it under
    another reviewer name (never in settings, logs or messages)."""

    url: str
    password: str | None


class ReviewController(QObject):
    """Owns the open Session (or none) and every change made to it from the window."""

    sig_message = Signal(str, int)  # status-bar text, timeout in ms (0: until replaced)
    sig_warning = Signal(str, str)  # title, message: something the user must act on
    sig_session_changed = Signal()  # another session, or none: labels and every row's verdict
    sig_progress = Signal(str, str)  # the status label's text and tooltip
    sig_summary = Signal(object, object, object)  # class counts, labels, rows ([], None, [])
    sig_agreement = Signal(object)  # engine.agreement.AgreementReport, or None: no session

    def __init__(self, settings: SettingsStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.session: Session | None = None
        self.auto_advance = settings.auto_advance()
        self.reviewer = settings.reviewer() or default_reviewer()
        self._team: _TeamLogin | None = None  # a team session chosen in the window
        self._refused: Path | None = None  # told once; later retries stay quiet
        self._refusal = ""  # why no session is open, for the status label's tooltip
        # A session file the user chose, for this (folder, profile) only.
        self._chosen: tuple[Path, Path | None, Path] | None = None
        # Rebuilding the summary plots costs 30-50 ms: a hidden Summary tab is rebuilt when shown.
        self._summary_stale = True
        self._summary_shown = True  # until the dock says otherwise, so nothing is missed

    # -- which file -----------------------------------------------------------------------------
    def session_path(self, folder: Path | None, profile_path: Path | None) -> Path | None:
        """Where this folder and profile's session lives: the chosen file, else the default."""
        if folder is None:
            return None
        if self._chosen is not None and self._chosen[:2] == (folder, profile_path):
            return self._chosen[2]
        default = default_session_path(folder, profile_path).absolute()
        remembered = self.settings.session_file(default)
        if remembered is not None and remembered.is_file():  # chosen earlier with Session file…
            return remembered
        return default

    def open(self, context: SessionContext, rel_paths: tuple[str, ...]) -> None:
        """Open or resume the session of this folder and profile (SQLite only, no torch).

        rel_paths: the folder's listed images, registered so progress counts them.
        """
        if self._team is not None and self.session is not None and self.session.is_team:
            self._add_images(rel_paths)  # a team session outlives the folder it was opened on
            return
        path = self.session_path(context.folder, context.profile_path)
        if self.session is not None and self.session.path == path:
            self._add_images(rel_paths)
            return
        self.close()
        try:
            session = _open(path, context, self.reviewer)
        except InspectorError as exc:
            if path != self._refused:
                self.sig_warning.emit("Verdicts will not be recorded", str(exc))
            self._refused, self._refusal = path, str(exc)
            self._session_changed()
            return
        self._adopt(session, rel_paths)

    def use_file(self, path: Path, context: SessionContext, rel_paths: tuple[str, ...]) -> bool:
        """Record this folder and profile's verdicts in path, creating or resuming it there.

        A file that cannot be used is left as it was and the current session stays open.
        """
        path = Path(path).expanduser().absolute()
        if self.session is not None and self.session.path == path:
            return True
        try:
            session = _open(path, context, self.reviewer)
        except InspectorError as exc:
            self.sig_warning.emit("Cannot use this session file", f"{exc}\n\n{self._kept()}")
            return False
        self._team = None
        self._chosen = (context.folder, context.profile_path, path)
        default = default_session_path(context.folder, context.profile_path).absolute()
        self.settings.remember_session_file(default, path)
        self.close()
        self._adopt(session, rel_paths)
        self.sig_message.emit(f"Session file: {path}", 8000)
        return True

    def use_team(
        self, url: str, password: str | None, context: SessionContext, rel_paths: tuple[str, ...]
    ) -> bool:
        """Review in the team session at url (PostgreSQL); the current session stays open when
        it cannot be used. password None: libpq's (PGPASSWORD, ~/.pgpass)."""
        from engine.session_pg import display

        if self.session is not None and self.session.location == display(url):
            return True  # open already (a second open would meet this reviewer's own lock)
        try:
            session = _open(url, context, self.reviewer, password)
        except InspectorError as exc:
            self.sig_warning.emit("Cannot open the team session", f"{exc}\n\n{self._kept()}")
            return False
        self.close()
        self._team = _TeamLogin(url, password)
        self.settings.remember_team_url(display(url))
        self._adopt(session, rel_paths)
        self.sig_message.emit(f"Team session: {session.location}", 8000)
        return True

    def _kept(self) -> str:
        if self.session is None:
            return "Verdicts are still not recorded."
        return f"The session in {self.session.location} stays open."

    def set_reviewer(
        self, name: str, context: SessionContext | None, rel_paths: tuple[str, ...]
    ) -> bool:
        """Review under another name from now on: the session is opened again under it (under
        the old name again when the new one is refused, e.g. already reviewing elsewhere)."""
        old, new = self.reviewer, name.strip() or default_reviewer()
        if new == old:
            return True
        if self.session is None or context is None:
            self.reviewer = new
            self.settings.set_reviewer(new)
            self._progress_changed()
            return True
        location = self._team.url if self._team is not None else self.session.path
        password = self._team.password if self._team is not None else None
        assert location is not None
        self.close()
        for who in (new, old):
            try:
                session = _open(location, context, who, password)
            except InspectorError as exc:
                title = "Reviewer name not changed" if who == new else "Session closed"
                self.sig_warning.emit(title, str(exc))
                continue
            self.reviewer = who
            if who == new:
                self.settings.set_reviewer(who)
            self._adopt(session, rel_paths)
            self.sig_message.emit(f"Reviewing as {who}", 8000)
            return who == new
        self._session_changed()
        return False

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def _adopt(self, session: Session, rel_paths: tuple[str, ...]) -> None:
        self._refused, self._refusal = None, ""
        self.session = session
        self._add_images(rel_paths)
        if session.warnings:
            self.sig_warning.emit(
                "The model changed since this session began", "\n".join(session.warnings)
            )
        self._session_changed()

    def _add_images(self, rel_paths: tuple[str, ...]) -> None:
        assert self.session is not None
        try:
            self.session.add_images(rel_paths)
        except InspectorError as exc:
            self.sig_message.emit(str(exc), 10000)
        self._progress_changed()

    def _session_changed(self) -> None:
        self.sig_session_changed.emit()
        self._progress_changed()

    # -- what the user records ------------------------------------------------------------------
    def set_auto_advance(self, on: bool) -> None:
        self.auto_advance = on
        self.settings.set_auto_advance(on)

    def verdict(self, rel: str | None) -> Verdict | None:
        return self.session.verdict(rel) if self.session is not None and rel else None

    def verdicts(self) -> dict[str, int]:
        """Every reviewed image's code (relative posix path -> 1..4)."""
        found = self.session.verdicts() if self.session is not None else {}
        return {rel: v.code for rel, v in found.items() if v.code is not None}

    def labels(self) -> tuple[str, str, str, str] | None:
        return self.session.labels if self.session is not None else None

    def record_result(
        self,
        record: ImageRecord,
        predicted: str,
        confidence: float,
        hit: bool | None,
        energy: float | None,
    ) -> None:
        """Store the model's prediction for an image, for the summary and the report."""
        if self.session is None:
            return
        rel = record.rel_path.as_posix()
        try:
            self.session.record_result(rel, predicted, confidence, record.ground_truth, hit, energy)
        except InspectorError as exc:
            self.sig_message.emit(str(exc), 10000)
            return
        self._progress_changed()  # the summary groups by the prediction just recorded

    def set_verdict(
        self,
        rel: str | None,
        code: int,
        following: str | None = None,
        view: VerdictView | None = None,
    ) -> VerdictChange | None:
        """Record a verdict (committed at once); None when nothing was recorded.

        ``following`` is the next listed image, shown next when auto-advance is on; ``view``
        the map shown, which the report draws again.
        """
        if self.session is None or rel is None:
            self.sig_message.emit("No session: the verdict is not recorded", 5000)
            return None
        current = self.session.verdict(rel)
        corrected = current.corrected if current is not None and code in CORRECTABLE else None
        try:
            self.session.set_verdict(rel, code, corrected=corrected, view=view)
        except InspectorError as exc:
            self.sig_warning.emit("Verdict not recorded", str(exc))
            return None
        self._progress_changed()
        self.sig_message.emit(f"{rel}: verdict {code} recorded", 5000)
        return VerdictChange(rel, code, following if self.auto_advance else None)

    def set_corrected(self, rel: str | None, corrected: str | None) -> None:
        """Store (or clear, with None) a corrected class with the image's verdict."""
        current = self.verdict(rel)
        if self.session is None or rel is None or current is None or current.code is None:
            self.sig_message.emit("Give a verdict (keys 1-4) before a corrected class", 5000)
            return
        try:
            # The engine stores the corrected class with a verdict: re-record the current code.
            self.session.set_verdict(rel, current.code, corrected=corrected)
        except InspectorError as exc:
            self.sig_warning.emit("Corrected class not recorded", str(exc))
            return
        self.sig_message.emit(f"{rel}: corrected class {corrected or 'cleared'}", 5000)

    def set_note(self, rel: str | None, text: str) -> None:
        """Set (or clear, with blank text) the image's note."""
        if self.session is None or rel is None:
            return
        try:
            self.session.set_note(rel, text)
        except InspectorError as exc:
            self.sig_warning.emit("Note not recorded", str(exc))

    def undo(self) -> VerdictChange | None:
        """Revert the latest verdict or note of this sitting; None when nothing changed."""
        if self.session is None:
            return None
        try:
            change = self.session.undo()
        except InspectorError as exc:
            self.sig_warning.emit("Cannot undo", str(exc))
            return None
        if change is None:
            self.sig_message.emit("Nothing to undo in this sitting", 5000)
            return None
        self._progress_changed()
        self.sig_message.emit(f"Undone: {change.rel_path}", 5000)
        return VerdictChange(change.rel_path, self._own_code(change.rel_path), change.rel_path)

    def _own_code(self, rel: str) -> int | None:
        """This reviewer's code on rel (an undone adjudication leaves it as it was)."""
        own = self.verdict(rel)
        return own.code if own is not None else None

    # -- the team: others' verdicts, blind mode, adjudication -----------------------------------
    def team_view(self, rel: str | None) -> TeamView | None:
        """The others' verdicts and the final one on rel; None without a session or image."""
        if self.session is None or rel is None:
            return None
        try:
            review = self.session.image_review(rel)
        except InspectorError as exc:
            self.sig_message.emit(str(exc), 10000)
            return None
        final, hidden = review.adjudication, review.hidden
        # A lead's final verdict is another reviewer's word too: blind mode hides it as well.
        if hidden and final is not None and final.lead != self.reviewer:
            final = None
        return TeamView(() if hidden else review.others, final, hidden, review.reviewers)

    def disputed(self) -> set[str]:
        """Images whose reviewers disagree; in blind mode only those this reviewer has
        reviewed, so the list tells nothing about an image before its verdict."""
        if self.session is None:
            return set()
        try:
            found = self.session.disagreements()
            if self.session.blind:
                found &= set(self.verdicts())
        except InspectorError as exc:
            self.sig_message.emit(str(exc), 10000)
            return set()
        return found

    def history(self, rel: str | None) -> list[HistoryEntry]:
        """Who changed rel's review state and when, oldest first; in blind mode, before this
        reviewer's own verdict, only their own entries (the others' would give theirs away)."""
        if self.session is None or rel is None:
            return []
        try:
            entries = self.session.history(rel)
            own = self.session.verdict(rel)
            hidden = self.session.blind and (own is None or own.code is None)
        except InspectorError as exc:
            self.sig_message.emit(str(exc), 10000)
            return []
        return [e for e in entries if e.reviewer == self.reviewer] if hidden else entries

    def blind(self) -> bool:
        return self.session is not None and self.session.blind

    def set_blind(self, on: bool) -> None:
        """Turn blind mode on or off for the whole session (every reviewer)."""
        if self.session is None:
            self.sig_message.emit("No session: blind mode is a session's setting", 5000)
            return
        try:
            self.session.set_blind(on)
        except InspectorError as exc:
            self.sig_warning.emit("Blind mode not changed", str(exc))
            return
        self.sig_message.emit(f"Blind mode {'on' if on else 'off'} for this session", 5000)

    def adjudicate(self, rel: str | None, code: int) -> Adjudication | None:
        """Record this reviewer's final verdict on rel, as its lead; the corrected class is the
        one the reviewers gave with that code, where they gave one."""
        if self.session is None or rel is None:
            self.sig_message.emit("No session: the final verdict is not recorded", 5000)
            return None
        try:
            # Every reviewer's, blind mode or not: the lead settles what they said.
            review = self.session.image_review(rel)
            given = [*review.others, review.own]
            named = {v.corrected for v in given if v is not None and v.code == code}
            corrected = named.pop() if code in CORRECTABLE and len(named) == 1 else None
            done = self.session.adjudicate(rel, code, corrected)
        except InspectorError as exc:
            self.sig_warning.emit("Final verdict not recorded", str(exc))
            return None
        self._progress_changed()
        self.sig_message.emit(f"{rel}: final verdict {code} by {done.lead}", 5000)
        return done

    def clear_adjudication(self, rel: str | None) -> None:
        if self.session is None or rel is None:
            return
        try:
            self.session.clear_adjudication(rel)
        except InspectorError as exc:
            self.sig_warning.emit("Final verdict not cleared", str(exc))
            return
        self._progress_changed()
        self.sig_message.emit(f"{rel}: final verdict cleared", 5000)

    def refresh(self) -> bool:
        """Read again what other reviewers wrote (a team session): progress and summary;
        False (nothing redrawn) when nobody wrote since the last time."""
        if self.session is None:
            return False
        try:
            changed = self.session.refresh()
        except InspectorError as exc:  # a team server out of reach: say so, try next time
            self.sig_message.emit(str(exc), 10000)
            return False
        if changed:
            self._progress_changed()
        return changed

    # -- progress, summary, report --------------------------------------------------------------
    def _progress_changed(self) -> None:
        self._summary_stale = True
        if self._summary_shown:
            self._refresh_summary()
        if self.session is None:
            self.sig_progress.emit("no session", self._refusal)
            return
        try:
            reviewed, total = self.session.progress()
        except InspectorError as exc:
            self.sig_message.emit(str(exc), 10000)
            return
        where = "Team session" if self.session.is_team else "Session file"
        self.sig_progress.emit(
            f"reviewed {reviewed} / {total}", f"{where}: {self.session.location}"
        )

    def set_summary_visible(self, visible: bool) -> None:
        """The Summary tab was shown or hidden; shown, it is brought up to date."""
        self._summary_shown = visible
        if visible and self._summary_stale:
            self._refresh_summary()

    def _refresh_summary(self) -> None:
        self._summary_stale = False
        if self.session is None:
            self.sig_summary.emit([], None, [])
            self.sig_agreement.emit(None)
            return
        session = self.session
        try:
            counts, labels, rows = session.class_counts(), session.labels, session.records()
            agreement = session.agreement()
        except InspectorError as exc:  # a team database gone away: said once, kept stale
            self.sig_message.emit(str(exc), 10000)
            return
        self.sig_summary.emit(counts, labels, rows)
        self.sig_agreement.emit(agreement)

    def report_data(self) -> ReportData | None:
        """The session as its report shows it, read now (the report is written on the worker);
        None, with a warning, when no session is open."""
        if self.session is None:
            self.sig_warning.emit("No session", "There is no open session to report on.")
            return None
        try:
            return ReportData.read(self.session)
        except InspectorError as exc:
            self.sig_warning.emit("Report failed", str(exc))
            return None


def _open(
    location: str | Path, context: SessionContext, reviewer: str, password: str | None = None
) -> Session:
    """Session.open; the store (SQLAlchemy, Alembic: ~0.25 s) is imported when a session
    first opens, after the window shows, not with the window."""
    from engine.session import Session

    return Session.open(location, context, reviewer=reviewer, password=password)
