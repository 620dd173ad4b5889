"""Fixtures for the window tests: a tiny random-weight profile, a generated folder, settings."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from ui.main_window import MainWindow
from ui.refcounts import guard_singletons

guard_singletons()  # thousands of emits in one test run would otherwise abort it (3.11)

RESULT_TIMEOUT_MS = 60_000  # the first result includes loading the model on a busy machine


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Session files and gallery thumbnails go under this test's folder, never the user's."""
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return home


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """Settings in a file of this test's own, never the user's."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def stored_rows(path: Path) -> dict[str, tuple[int | None, str | None, str | None]]:
    """Each image's (code, corrected, note) on disk now, read by a connection of the test's own."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT rel_path, code, corrected, note FROM verdicts").fetchall()
        return {rel: (code, corrected, note) for rel, code, corrected, note in rows}
    finally:
        conn.close()


def stored_verdicts(path: Path) -> dict[str, int | None]:
    """Each image's verdict code on disk now."""
    return {rel: row[0] for rel, row in stored_rows(path).items()}


def open_window(qtbot, settings: QSettings, folder: Path, profile: Path, **kwargs) -> MainWindow:
    """A shown window on the folder, started, with its first result arrived."""
    window = MainWindow(settings, folder, profile, device="cpu", **kwargs)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        window.start()
    return window


@pytest.fixture
def window(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path
) -> Iterator[MainWindow]:
    win = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False)
    yield win
    win.close()
    assert not win.threads.thread.isRunning()
