"""Grad-CAM Inspector's entry point: the window, or a command line subcommand.

`python main.py [FOLDER] [--profile P] [--device cpu|cuda|auto]` opens the inspection window
(the bundled demo when nothing is given); `python main.py COMMAND ...` (batch, sanity, layers,
demo-data, train-demo, report) runs the command line (see engine/cli.py); `--self-test` checks
an installed or frozen build.

Environment: `GCI_EXIT_AFTER_SHOW=1` prints one line when the window is first exposed and exits
at once (time to window, from source or a frozen bundle; a value other than 1 names a file to
append the line to, for a windowed bundle with no stdout).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":
    # Windows only: torch before PySide6. PySide6's wheels ship their own older MSVC runtime
    # (msvcp140.dll); loaded first, it is the one torch's c10.dll gets, and recent torch fails
    # with "WinError 1114: DLL initialization routine failed" (pytorch/pytorch#166628). The
    # cost is that the window waits for the torch import (seconds, cold) instead of showing
    # while the worker imports it, as on Linux and macOS. A PyInstaller splash screen, shown by
    # the bootloader before Python starts, covers that wait: it is closed when the window shows
    # (see _close_splash). Nothing of this could be measured on Windows here.
    try:
        import pyi_splash  # type: ignore[import-not-found]  # only inside a bundle with a splash

        pyi_splash.update_text("Loading torch…")
    except ImportError:
        pass
    import torch  # noqa: F401

import argparse
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

# PySide6 first, torch never here (except on Windows, above): the window shows while the
# worker thread imports torch.
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PySide6.QtGui import QIcon, QWindow
from PySide6.QtWidgets import QApplication

from ui.about import APP_NAME

CLI_COMMANDS = ("batch", "sanity", "layers", "demo-data", "train-demo", "report", "session")
ORGANIZATION = "gradcam-inspector"  # QSettings' folder: keep it, or users lose their settings
EXIT_AFTER_SHOW_ENV = "GCI_EXIT_AFTER_SHOW"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)

log = logging.getLogger("gradcam_inspector")


def window_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradcam-inspector",
        description="See where an image classifier looks. Command line: "
        + ", ".join(CLI_COMMANDS)
        + " (run one with --help).",
    )
    from engine import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("folder", nargs="?", type=Path, help="image folder to open")
    parser.add_argument("--profile", type=Path, help="model profile (TOML); default: the demo")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), help="default: auto")
    parser.add_argument(
        "--session",
        metavar="URL_OR_FILE",
        help="review in this session: a session file, or a team session's "
        "postgresql://user@host[:port]/database URL (password from PGPASSWORD or asked)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation headlessly (Qt, torch, one CAM, one export) and exit",
    )
    return parser


def set_application_metadata() -> None:
    """Name, version and organisation (QSettings' location) and the window icon."""
    from engine import __version__

    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APP_NAME)
    QCoreApplication.setApplicationVersion(__version__)
    # The window title ends with this, so Qt does not append the display name a second time.
    QApplication.setApplicationDisplayName(f"{APP_NAME} {__version__}")
    QApplication.setDesktopFileName("gradcam-inspector")  # Wayland matches the .desktop file


def app_icon() -> QIcon:
    from engine.resources import resource_path

    icon = QIcon()
    for size in ICON_SIZES:
        path = resource_path("icons", f"gradcam-inspector-{size}.png")
        if path.is_file():
            icon.addFile(str(path))
    return icon


def seconds_since_process_start() -> float | None:
    """Wall-clock seconds since this process began (Linux /proc); None where unknown."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    start_ticks = int(fields[19])  # field 22 of the whole line: starttime
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def _close_splash() -> None:
    try:
        import pyi_splash  # type: ignore[import-not-found]
    except ImportError:
        return
    pyi_splash.close()


class FirstShow(QObject):
    """Watches the window's first expose: closes a splash, logs the time, maybe exits."""

    def __init__(self, window: QWindow, exit_after: str, parent: QObject) -> None:
        super().__init__(parent)
        self.exit_after = exit_after
        self.done = False
        window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        exposed = event.type() == QEvent.Type.Expose and isinstance(obj, QWindow)
        if self.done or not exposed or not obj.isExposed():
            return False
        self.done = True
        since = seconds_since_process_start()
        line = (
            f"GCI_WINDOW_SHOWN epoch={time.time():.6f} "
            f"since_process_start={'unknown' if since is None else f'{since:.3f}'}"
        )
        log.info("window shown: %s", line)
        _close_splash()
        if self.exit_after:
            self._report_and_exit(line)
        return False

    def _report_and_exit(self, line: str) -> None:
        if self.exit_after == "1":
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        else:
            with open(self.exit_after, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        logging.shutdown()
        # At once: the worker may be importing torch, which cannot be interrupted, and a
        # timing run has nothing to save.
        os._exit(0)


def log_startup() -> None:
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    from engine import __version__

    log.info(
        "%s %s starting: Python %s, PySide6 %s (Qt %s), %s, %s",
        APP_NAME,
        __version__,
        platform.python_version(),
        pyside_version,
        qVersion(),
        platform.platform(),
        "frozen bundle" if getattr(sys, "frozen", False) else "from source",
    )


def run_window(args: argparse.Namespace) -> int:
    from ui import crash
    from ui.refcounts import guard_singletons
    from ui.theme import ThemeFollower

    app = QApplication.instance() or QApplication(sys.argv[:1])
    if guard_singletons():  # before any signal is emitted: see ui/refcounts.py
        log.info("PySide6 drops references to None/True/False: made them immortal")
    ThemeFollower(app)  # light or dark as the system is, and again when it changes
    handler = crash.install(parent=app)
    crash.enable_fault_log(handler.log_path.parent)
    log_startup()
    app.setWindowIcon(app_icon())
    from ui.main_window import MainWindow

    window = MainWindow(
        folder=args.folder,
        profile=args.profile,
        device=args.device,
        log_path=handler.log_path,
        session=args.session,
    )
    app.aboutToQuit.connect(window.shutdown)  # however the loop ends, the worker ends first
    window.winId()  # the native window now, so the watch is in place before the first expose
    FirstShow(window.windowHandle(), os.environ.get(EXIT_AFTER_SHOW_ENV, ""), parent=window)
    window.show()
    QTimer.singleShot(0, window.start)
    code = app.exec()
    log.info("%s exits with status %d", APP_NAME, code)
    return code


def _write_report_pdf(html: Path, pdf: Path, paper: str) -> int:
    """`report --pdf`: Qt's PDF writer, imported only when a PDF is asked for."""
    from ui.report_pdf import write_report_pdf

    return write_report_pdf(html, pdf, paper)


def main(argv: Sequence[str] | None = None) -> int:
    from ui.crash import guard_streams

    guard_streams()  # before anything prints: a windowed bundle has no stdout/stderr
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in CLI_COMMANDS:
        from engine.cli import run

        return run(args, write_pdf=_write_report_pdf)
    options = window_parser().parse_args(args)
    set_application_metadata()
    if options.self_test:
        from ui.selftest import run as self_test

        return self_test()
    return run_window(options)


if __name__ == "__main__":
    sys.exit(main())
