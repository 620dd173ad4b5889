"""Review sessions: which file, verdicts, notes, undo, progress, the summary and the report.

Needs no model and no window: it works on an engine Session and relative image paths, and tells
the window what to show through signals (tests/ui/test_review.py drives it on a temp folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.dataset import ImageRecord
from engine.errors import InspectorError
from engine.report import ReportData
from engine.session import Session, SessionContext, Verdict, VerdictView, default_session_path
from ui.settings import SettingsStore

CORRECTABLE = (3, 4)  # "wrong class" and "unsure" keep a corrected class; "right class" has none


@dataclass(frozen=True)
class VerdictChange:
    """A verdict written (or undone): the row to repaint and the image to show next, if any."""

    rel_path: str
    code: int | None
    go_to: str | None = None  # auto-advance's next image, or the image an undo went back to


class ReviewController(QObject):
    """Owns the open Session (or none) and every change made to it from the window."""

    sig_message = Signal(str, int)  # status-bar text, timeout in ms (0: until replaced)
    sig_warning = Signal(str, str)  # title, message: something the user must act on
    sig_session_changed = Signal()  # another session, or none: labels and every row's verdict
    sig_progress = Signal(str, str)  # the status label's text and tooltip
    sig_summary = Signal(object, object, object)  # class counts, labels, rows ([], None, [])

    def __init__(self, settings: SettingsStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.session: Session | None = None
        self.auto_advance = settings.auto_advance()
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
        path = self.session_path(context.folder, context.profile_path)
        if self.session is not None and self.session.path == path:
            self._add_images(rel_paths)
            return
        self.close()
        try:
            session = Session.open(path, context)
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
            session = Session.open(path, context)
        except InspectorError as exc:
            kept = (
                f"The session in {self.session.path} stays open."
                if self.session is not None
                else "Verdicts are still not recorded."
            )
            self.sig_warning.emit("Cannot use this session file", f"{exc}\n\n{kept}")
            return False
        self._chosen = (context.folder, context.profile_path, path)
        default = default_session_path(context.folder, context.profile_path).absolute()
        self.settings.remember_session_file(default, path)
        self.close()
        self._adopt(session, rel_paths)
        self.sig_message.emit(f"Session file: {path}", 8000)
        return True

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
        return VerdictChange(change.rel_path, change.code, change.rel_path)

    # -- progress, summary, report --------------------------------------------------------------
    def _progress_changed(self) -> None:
        self._summary_stale = True
        if self._summary_shown:
            self._refresh_summary()
        if self.session is None:
            self.sig_progress.emit("no session", self._refusal)
            return
        reviewed, total = self.session.progress()
        self.sig_progress.emit(
            f"reviewed {reviewed} / {total}", f"Session file: {self.session.path}"
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
            return
        session = self.session
        self.sig_summary.emit(session.class_counts(), session.labels, session.records())

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
