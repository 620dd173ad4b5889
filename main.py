"""Grad-CAM Inspector's entry point: the window, or a command line subcommand.

`python main.py [FOLDER] [--profile P] [--device cpu|cuda|auto]` opens the inspection window
(the bundled demo when nothing is given); `python main.py batch|layers|demo-data|train-demo ...`
runs the command line (see engine/cli.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

# PySide6 first, torch never here: the window shows while the worker thread imports torch.
from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication

CLI_COMMANDS = ("batch", "layers", "demo-data", "train-demo", "report")


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
    return parser


def run_window(args: argparse.Namespace) -> int:
    QCoreApplication.setOrganizationName("gradcam-inspector")
    QCoreApplication.setApplicationName("Grad-CAM Inspector")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from ui.main_window import MainWindow

    window = MainWindow(folder=args.folder, profile=args.profile, device=args.device)
    app.aboutToQuit.connect(window.shutdown)  # however the loop ends, the worker ends first
    window.show()
    QTimer.singleShot(0, window.start)
    return app.exec()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in CLI_COMMANDS:
        from engine.cli import run

        return run(args)
    return run_window(window_parser().parse_args(args))


if __name__ == "__main__":
    sys.exit(main())
