"""Tests for ui/crash.py: uncaught exceptions reach the log and a dialog, and no work is lost."""

from __future__ import annotations

import logging
import logging.handlers
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QObject, QThread, QTimer, Signal
from PySide6.QtWidgets import QApplication

from engine.session import Session, SessionContext, default_session_path
from tests.ui.conftest import stored_verdicts
from ui import crash
from ui.main_window import MainWindow

# pytest-qt fails a test on any exception in a Qt slot; these raise on purpose and check
# that the crash handler, installed inside the test, takes them instead.
pytestmark = pytest.mark.qt_no_exception_capture

SIGNAL_TIMEOUT_MS = 10_000


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[crash.CrashHandler]:
    installed = crash.install(tmp_path / "logs")
    yield installed
    installed.uninstall()
    if installed.dialog is not None and shiboken6.isValid(installed.dialog):
        installed.dialog.close()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_gci_owned", False):
            root.removeHandler(h)
            h.close()


def _log_text(handler: crash.CrashHandler) -> str:
    for h in logging.getLogger().handlers:
        h.flush()
    return handler.log_path.read_text(encoding="utf-8")


def raise_in_a_timer() -> None:
    raise ValueError("the overlay broke\n  (second line)")


def test_exception_in_a_slot_is_logged_and_shown(qtbot, handler: crash.CrashHandler) -> None:
    with qtbot.waitSignal(handler.sig_crashed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        QTimer.singleShot(0, raise_in_a_timer)
    message, log_path = blocker.args
    assert message == "ValueError: the overlay broke (second line)"
    assert Path(log_path) == handler.log_path == handler.log_path.parent / "gradcam-inspector.log"
    text = _log_text(handler)
    assert "uncaught exception in MainThread" in text
    assert "Traceback (most recent call last)" in text
    assert "in raise_in_a_timer" in text and "ValueError: the overlay broke" in text
    dialog = handler.dialog
    assert dialog is not None and dialog.isVisible()
    assert message in dialog.text()
    assert str(handler.log_path) in dialog.informativeText()


def test_a_second_error_does_not_stack_dialogs(qtbot, handler: crash.CrashHandler) -> None:
    for _ in range(2):
        with qtbot.waitSignal(handler.sig_crashed, timeout=SIGNAL_TIMEOUT_MS):
            QTimer.singleShot(0, raise_in_a_timer)
    boxes = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w is handler.dialog]
    assert handler.crashes == 2 and len(boxes) == 1
    assert _log_text(handler).count("uncaught exception in MainThread") == 2


class _Faulty(QObject):
    """A worker-thread object whose slot raises, like a bug in CamWorker."""

    sig_go = Signal()

    def run(self) -> None:
        raise RuntimeError("worker exploded")


def test_exception_in_a_qthread_slot_reaches_the_gui_thread(
    qtbot, handler: crash.CrashHandler
) -> None:
    thread = QThread()
    worker = _Faulty()
    worker.moveToThread(thread)
    worker.sig_go.connect(worker.run)
    thread.start()
    seen_on: list[bool] = []
    handler.sig_crashed.connect(
        lambda *_: seen_on.append(QThread.currentThread() is QApplication.instance().thread())
    )
    try:
        with qtbot.waitSignal(handler.sig_crashed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
            worker.sig_go.emit()
    finally:
        thread.quit()
        thread.wait()
    assert blocker.args[0] == "RuntimeError: worker exploded"
    assert seen_on == [True]  # the dialog is made on the GUI thread, never the worker's
    text = _log_text(handler)
    assert "in run" in text and "RuntimeError: worker exploded" in text


def test_exception_in_a_python_thread_is_logged_and_shown(
    qtbot, handler: crash.CrashHandler
) -> None:
    def thumbnails() -> None:
        raise OSError("disk went away")

    with qtbot.waitSignal(handler.sig_crashed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        worker = threading.Thread(target=thumbnails, name="thumbnail-loader")
        worker.start()
        worker.join()
    assert blocker.args == ["OSError: disk went away", str(handler.log_path)]
    text = _log_text(handler)
    assert "uncaught exception in thumbnail-loader" in text and "in thumbnails" in text


def test_uninstall_restores_the_previous_hooks(tmp_path: Path) -> None:
    import sys

    before = (sys.excepthook, threading.excepthook)
    installed = crash.install(tmp_path / "logs")
    assert sys.excepthook == installed.excepthook
    installed.uninstall()
    assert (sys.excepthook, threading.excepthook) == before
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_gci_owned", False)]:
        root.removeHandler(h)
        h.close()


def test_log_rotates_and_a_second_setup_does_not_double(tmp_path: Path) -> None:
    root = logging.getLogger()
    try:
        crash.configure_logging(tmp_path)
        path = crash.configure_logging(tmp_path)
        ours = [h for h in root.handlers if getattr(h, "_gci_owned", False)]
        files = [h for h in ours if isinstance(h, logging.handlers.RotatingFileHandler)]
        assert len(files) == 1
        assert (files[0].maxBytes, files[0].backupCount) == (1_000_000, 3)
        assert Path(files[0].baseFilename) == path
        logging.getLogger("gradcam_inspector").info("started: torch 1.2.3 on cpu")
        files[0].flush()
        assert "INFO" in path.read_text() and "started: torch 1.2.3 on cpu" in path.read_text()
    finally:
        for h in [h for h in root.handlers if getattr(h, "_gci_owned", False)]:
            root.removeHandler(h)
            h.close()


def test_user_data_dir_per_platform(tmp_path: Path, data_home: Path) -> None:
    home = tmp_path / "home"
    assert crash.user_data_dir("win32", {"LOCALAPPDATA": r"C:\Users\a\AppData\Local"}, home) == (
        Path(r"C:\Users\a\AppData\Local") / "gradcam-inspector"
    )
    assert crash.user_data_dir("win32", {}, home) == home / "AppData/Local/gradcam-inspector"
    assert crash.user_data_dir("darwin", {}, home) == (
        home / "Library/Application Support/gradcam-inspector"
    )
    assert crash.user_data_dir("linux", {"XDG_DATA_HOME": "rel"}, home) == (
        home / ".local/share/gradcam-inspector"
    )
    # On Linux the logs sit beside the sessions: the same base as default_session_path.
    sessions = default_session_path(tmp_path, None).parent
    assert crash.log_dir() == sessions.parent / "logs" == data_home / "gradcam-inspector/logs"


def test_a_crash_after_a_verdict_loses_nothing(
    qtbot, window: MainWindow, handler: crash.CrashHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug right after the commit: logged, shown, the verdicts stay and the app goes on."""
    session_path = window.review.session.path
    first = window.images.current_record().rel_path.as_posix()
    with qtbot.waitSignal(window.sig_result, timeout=60_000):
        window.set_verdict(1)  # recorded before the crash; auto-advance to the next image
    second = window.images.current_record().rel_path.as_posix()

    def broken(*_args) -> None:
        raise KeyError("row vanished")

    original = window.images.model.set_verdict
    monkeypatch.setattr(window.images.model, "set_verdict", broken)
    with qtbot.waitSignal(handler.sig_crashed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        QTimer.singleShot(0, lambda: window.set_verdict(3))  # as a key press would
    assert blocker.args[0] == "KeyError: 'row vanished'"
    assert "in set_verdict" in _log_text(handler)
    # Both verdicts are on disk already, read by a connection of the test's own.
    assert stored_verdicts(session_path) == {first: 1, second: 3}
    assert window.isVisible() and window.review.session is not None  # the app goes on
    monkeypatch.setattr(window.images.model, "set_verdict", original)
    window.close()
    # Closed cleanly: the lock is released and a new session opens and resumes the verdicts.
    with Session.open(
        session_path, SessionContext(window.folder, window.profile_path, "", "", "")
    ) as again:
        assert {rel: v.code for rel, v in again.verdicts().items()} == {first: 1, second: 3}


def test_a_failing_close_still_closes_the_session(
    qtbot, window: MainWindow, handler: crash.CrashHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_path = window.review.session.path
    first = window.images.current_record().rel_path.as_posix()
    window.set_verdict(2)

    def broken() -> None:
        raise PermissionError("settings file is read-only")

    monkeypatch.setattr(window, "save_settings", broken)
    with qtbot.waitSignal(handler.sig_crashed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        QTimer.singleShot(0, window.close)  # as File > Quit would, from the event loop
    message = blocker.args[0]
    assert message.startswith("PermissionError: ") and message.endswith("is read-only")
    assert window.review.session is None and not window.threads.thread.isRunning()
    with Session.open(
        session_path, SessionContext(window.folder, window.profile_path, "", "", "")
    ) as again:
        assert again.verdict(first).code == 2  # type: ignore[union-attr]


def test_dialogs_can_be_switched_off_for_headless_runs(
    qtbot, handler: crash.CrashHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crash, "SHOW_DIALOGS", False)
    with qtbot.waitSignal(handler.sig_crashed, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        QTimer.singleShot(0, raise_in_a_timer)
    assert blocker.args[0].startswith("ValueError: the overlay broke")
    assert handler.dialog is None and "in raise_in_a_timer" in _log_text(handler)


def test_a_dialog_deleted_with_its_window_does_not_block_the_next(
    qtbot, handler: crash.CrashHandler
) -> None:
    with qtbot.waitSignal(handler.sig_crashed, timeout=SIGNAL_TIMEOUT_MS):
        QTimer.singleShot(0, raise_in_a_timer)
    first = handler.dialog
    assert first is not None
    shiboken6.delete(first)  # as when its parent window is destroyed: no finished signal
    with qtbot.waitSignal(handler.sig_crashed, timeout=SIGNAL_TIMEOUT_MS):
        QTimer.singleShot(0, raise_in_a_timer)
    assert handler.dialog is not None and handler.dialog.isVisible()
    assert handler.crashes == 2
