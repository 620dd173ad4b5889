"""Crash safety: unexpected exceptions go to a rotating log file and a dialog, and the app goes on.

A double-clicked app has no console, so a traceback printed to stderr is lost. ``install()``
routes every uncaught exception (``sys.excepthook``: the main thread and Qt slots, which
PySide6 reports there from any thread; ``threading.excepthook``: Python threads) to the log
file in the user's data folder and asks the GUI thread for a non-modal dialog giving the
one-line message and where the log is. Nothing exits: verdicts are committed one by one by
the session, and the window's close path still closes the session cleanly.
"""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import os
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

import shiboken6
from PySide6.QtCore import QObject, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMessageBox

from engine.resources import APP_DIR_NAME, user_data_dir

LOG_FILE_NAME = "gradcam-inspector.log"
FAULT_FILE_NAME = "fatal-errors.log"
LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 3
LOG_FORMAT = "%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s"

log = logging.getLogger(__name__)

# Tests (or a headless run) set this to False: the request is still emitted and logged.
SHOW_DIALOGS = True

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def log_dir() -> Path:
    return user_data_dir() / "logs"


def one_line(exc: BaseException) -> str:
    """'ValueError: message' on one line, whatever the message holds."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CrashHandler(QObject):
    """Logs uncaught exceptions and asks the GUI thread to show them.

    ``sig_crashed(message, log_path)`` is emitted on the GUI thread for every uncaught
    exception, whichever thread raised it. At most one dialog is open at a time; later errors
    while it is open are only logged (a failing paint would otherwise open hundreds).
    """

    sig_crashed = Signal(str, str)
    _sig_report = Signal(str)

    def __init__(self, log_path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log_path = log_path
        self.dialog: QMessageBox | None = None
        self.crashes = 0
        self._previous: tuple[Callable, Callable] | None = None
        self._sig_report.connect(self._report)

    def install(self) -> None:
        self._previous = (sys.excepthook, threading.excepthook)
        sys.excepthook = self.excepthook
        threading.excepthook = self.thread_excepthook

    def uninstall(self) -> None:
        if self._previous is not None:
            sys.excepthook, threading.excepthook = self._previous
            self._previous = None

    def excepthook(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)  # Ctrl+C in a terminal still ends the app
            return
        self.handle((exc_type, exc, tb), threading.current_thread().name)

    def thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return  # what threading's own hook ignores too
        name = args.thread.name if args.thread is not None else "a thread"
        self.handle((args.exc_type, args.exc_value, args.exc_traceback), name)

    def handle(self, exc_info: ExcInfo, where: str) -> None:
        """Write the traceback to the log, then have the GUI thread tell the user."""
        self.crashes += 1
        try:
            log.critical("uncaught exception in %s", where, exc_info=exc_info)
            for handler in logging.getLogger().handlers:
                handler.flush()
        except Exception:  # the hook must never raise: fall back to stderr, if there is one
            if sys.stderr is not None:
                traceback.print_exception(*exc_info, file=sys.stderr)
        # Auto connection: a direct call on the GUI thread, queued to it from any other.
        self._sig_report.emit(one_line(exc_info[1]))

    @Slot(str)
    def _report(self, message: str) -> None:
        self.sig_crashed.emit(message, str(self.log_path))
        if not SHOW_DIALOGS or not isinstance(QApplication.instance(), QApplication):
            return
        try:
            self._show(message)
        except Exception:  # raising here would come straight back to this hook: log it only
            log.exception("could not show the error dialog")

    def _show(self, message: str) -> None:
        # The dialog goes with its parent window: a deleted one counts as closed.
        if self.dialog is not None and shiboken6.isValid(self.dialog) and self.dialog.isVisible():
            return
        parent = QApplication.activeWindow()
        box = QMessageBox(parent)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Unexpected error")
        box.setText(f"Something went wrong:\n{message}")
        box.setInformativeText(
            "The app keeps running and your recorded verdicts are safe. "
            f"The details are in the log file:\n{self.log_path}"
        )
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        folder = box.addButton("Open log folder", QMessageBox.ButtonRole.ActionRole)
        folder.clicked.connect(self.open_log_folder)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(self._dialog_closed)
        self.dialog = box
        box.open()  # non-modal to the event loop: never blocks a test or a worker

    def _dialog_closed(self) -> None:
        self.dialog = None

    def open_log_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_path.parent)))


def configure_logging(directory: Path) -> Path:
    """Root logging to a rotating file in directory (and stderr when there is one)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOG_FILE_NAME
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_gci_owned", False):  # a second install replaces, never doubles
            root.removeHandler(handler)
            handler.close()
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    file_handler._gci_owned = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    if sys.stderr is not None:
        # A handler on the root turns off logging's last-resort stderr output: keep warnings there.
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        console._gci_owned = True  # type: ignore[attr-defined]
        root.addHandler(console)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return path


_fault_file: IO[str] | None = None


def enable_fault_log(directory: Path) -> Path:
    """Native crashes (a segfault in a library) write their Python stacks to a file too."""
    global _fault_file
    path = directory / FAULT_FILE_NAME
    if _fault_file is None:
        _fault_file = path.open("a", encoding="utf-8")  # must stay open for the process
        faulthandler.enable(_fault_file)
    return path


def install(directory: Path | None = None, parent: QObject | None = None) -> CrashHandler:
    """Set up the log file and the exception hooks; returns the handler (``uninstall()``)."""
    folder = log_dir() if directory is None else directory
    try:
        log_path = configure_logging(folder)
    except OSError:
        # An unwritable data folder must not stop the app from starting: log to the temp dir.
        folder = Path(tempfile.gettempdir()) / f"{APP_DIR_NAME}-logs"
        log_path = configure_logging(folder)
    handler = CrashHandler(log_path, parent)
    handler.install()
    return handler


def guard_streams() -> None:
    """A windowed frozen app has sys.stdout/sys.stderr None: make print() and friends harmless."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
