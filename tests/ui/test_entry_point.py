"""Tests for main.py: subcommands go to the command line, the rest opens the window."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import main

ROOT = Path(__file__).resolve().parents[2]


def test_cli_subcommands_are_dispatched(tiny_profile: Path, capsys: pytest.CaptureFixture) -> None:
    assert main.main(["layers", "--profile", str(tiny_profile), "--device", "cpu"]) == 0
    assert "layer4" in capsys.readouterr().out


def test_window_arguments_parse(tmp_path: Path) -> None:
    args = main.window_parser().parse_args([str(tmp_path), "--device", "cpu"])
    assert args.folder == tmp_path and args.device == "cpu" and args.profile is None
    with pytest.raises(SystemExit):
        main.window_parser().parse_args(["--device", "tpu"])


CLOSE_DURING_EXPORT = """
import sys
from pathlib import Path
from PySide6.QtCore import QCoreApplication, QSettings, QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from ui.main_window import MainWindow
settings = QSettings(sys.argv[3], QSettings.Format.IniFormat)
window = MainWindow(settings, Path(sys.argv[1]), Path(sys.argv[2]), device="cpu")
app.aboutToQuit.connect(window.shutdown)
if sys.argv[5] == "export":
    window.sig_result.connect(lambda _: window.export_folder(Path(sys.argv[4]), batch_size=1))
    window.sig_export_progress.connect(lambda _: window.close())
window.show()
QTimer.singleShot(0, window.start)
if sys.argv[5] == "load":
    QTimer.singleShot(0, window.close)  # while the worker is still loading the model
sys.exit(app.exec())
"""


@pytest.mark.parametrize("when", ["load", "export"])
def test_closing_during_a_job_exits_cleanly(
    tiny_profile: Path, neu_folder: Path, tmp_path: Path, when: str
) -> None:
    """The whole process: exit status 0, no 'QThread: Destroyed...' and no traceback."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = tmp_path / "out"
    args = [str(neu_folder), str(tiny_profile), str(tmp_path / "s.ini"), str(out), when]
    done = subprocess.run(
        [sys.executable, "-c", CLOSE_DURING_EXPORT, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "QThread" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    if when == "export":
        rows = (out / "results.csv").read_text(encoding="utf-8").splitlines()
        assert 1 < len(rows) < 13  # header plus the images exported before the close
