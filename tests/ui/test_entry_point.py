"""Tests for main.py: subcommands go to the command line, the rest opens the window."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

import engine
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


def test_self_test_flag_runs_the_self_test(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_run() -> int:
        calls.append("ran")
        return 7

    monkeypatch.setitem(sys.modules, "ui.selftest", types.SimpleNamespace(run=fake_run))
    assert main.main(["--self-test"]) == 7
    assert calls == ["ran"]


# The window as a double-click starts it: no console streams at all (PyInstaller's windowed
# mode), the time-to-window line going to a file instead.
NO_CONSOLE = """
import sys
sys.stdout = None
sys.stderr = None
import main
sys.exit(main.main(sys.argv[1:]))
"""


def _isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / "data"),
        **extra,
    }


def _shown_line(line: str) -> dict[str, str]:
    assert line.startswith("GCI_WINDOW_SHOWN "), line
    return dict(part.split("=", 1) for part in line.split()[1:])


def test_exit_after_show_reports_the_time_to_window(tmp_path: Path) -> None:
    env = _isolated_env(tmp_path, GCI_EXIT_AFTER_SHOW="1")
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    fields = _shown_line(done.stdout.strip().splitlines()[-1])
    assert launched < float(fields["epoch"]) < time.time()
    since = float(fields["since_process_start"])
    assert 0 < since < time.time() - launched + 0.05  # /proc's clock ticks are 10 ms
    text = _log_text(tmp_path)
    assert "uncaught exception" not in text
    assert f"Grad-CAM Inspector {engine.__version__} starting: Python" in text
    assert "window shown: GCI_WINDOW_SHOWN" in text


def test_window_starts_without_console_streams(tmp_path: Path) -> None:
    report = tmp_path / "shown.txt"
    env = _isolated_env(tmp_path, GCI_EXIT_AFTER_SHOW=str(report))
    done = subprocess.run(
        [sys.executable, "-c", NO_CONSOLE], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0
    # Qt's own messages go to file descriptor 2 whatever Python does; no Python output does.
    assert done.stdout == b"" and b"Traceback" not in done.stderr
    _shown_line(report.read_text(encoding="utf-8").strip())
    assert "uncaught exception" not in _log_text(tmp_path)


def _log_text(tmp_path: Path) -> str:
    log = tmp_path / "home/data/gradcam-inspector/logs/gradcam-inspector.log"
    return log.read_text(encoding="utf-8")


def _module_imports(tree: ast.Module) -> list[tuple[str, str]]:
    """(where, module) for each import at module level: 'top' or 'win32' (in that if block)."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.If) and "win32" in ast.unparse(node.test):
            found += [("win32", name) for n in ast.walk(node) for name in _names(n)]
        else:
            found += [("top", name) for name in _names(node)]
    return found


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module]
    return []


def test_windows_imports_torch_before_pyside6() -> None:
    """pytorch/pytorch#166628: on Windows PySide6's MSVC runtime must not load before torch."""
    imports = _module_imports(ast.parse((ROOT / "main.py").read_text(encoding="utf-8")))
    names = [name for _, name in imports]
    first_qt = next(i for i, name in enumerate(names) if name.startswith("PySide6"))
    assert ("win32", "torch") in imports[:first_qt]
    # Nothing before it may pull Qt in indirectly (ui.* imports PySide6).
    assert not any(name.startswith(("ui", "engine")) for name in names[:first_qt])


def test_linux_window_start_does_not_wait_for_torch() -> None:
    code = "import sys, main; print('torch' in sys.modules, 'PySide6.QtWidgets' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
