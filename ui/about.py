"""Help > About: the version, and the torch, device, profile, Qt and log folder in use."""

from __future__ import annotations

import html
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import QMessageBox, QWidget

from engine import __version__

APP_NAME = "Grad-CAM Inspector"
NOT_LOADED = "not loaded yet (the model is still loading)"


@dataclass(frozen=True)
class AboutInfo:
    """What the About box shows, gathered without importing anything heavy."""

    version: str
    torch: str
    torchvision: str
    cuda: str
    profile: str
    qt: str
    log_folder: str


def window_title(folder: Path | None, profile: str | None) -> str:
    """'<folder> — <profile> — Grad-CAM Inspector <version>', leaving out what is not known.

    The name comes last because Qt appends the application display name to a title that does
    not end with it.
    """
    parts = [folder.name or str(folder)] if folder is not None else []
    parts += [profile] if profile else []
    return " — ".join([*parts, f"{APP_NAME} {__version__}"])


def _module_version(name: str) -> str:
    # sys.modules only: importing torch here would stall the GUI thread for seconds.
    module = sys.modules.get(name)
    return str(getattr(module, "__version__", "unknown")) if module is not None else NOT_LOADED


def _cuda(cuda_available: bool | None, device: str) -> str:
    if cuda_available is None:
        return "not known yet (the model is still loading)"
    if not cuda_available:
        return "not available"
    torch = sys.modules.get("torch")
    # Only ask for the name once the worker has initialised CUDA: no GPU work starts here.
    if device.startswith("cuda") and torch is not None and torch.cuda.is_initialized():
        return f"available, in use: {torch.cuda.get_device_name(torch.device(device))}"
    return "available (the model runs on the CPU)"


def gather(
    profile_name: str | None,
    profile_path: Path | None,
    cuda_available: bool | None,
    device: str,
    log_path: Path | None,
) -> AboutInfo:
    if profile_name is None and profile_path is None:
        profile = "none loaded"
    else:
        where = str(profile_path) if profile_path is not None else "not saved (a bare checkpoint)"
        profile = f"{profile_name or '?'} — {where}"
    return AboutInfo(
        version=__version__,
        torch=_module_version("torch"),
        torchvision=_module_version("torchvision"),
        cuda=_cuda(cuda_available, device),
        profile=profile,
        qt=f"PySide6 {pyside_version}, Qt {qVersion()}",
        log_folder=str(log_path.parent) if log_path is not None else "not logging to a file",
    )


def about_html(info: AboutInfo) -> str:
    rows = (
        ("torch", info.torch),
        ("torchvision", info.torchvision),
        ("CUDA", info.cuda),
        ("Profile", info.profile),
        ("Qt", info.qt),
        ("Log folder", info.log_folder),
    )
    body = "".join(
        f"<tr><td><b>{html.escape(k)}</b>&nbsp;</td><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    return (
        f"<h3>{APP_NAME} {html.escape(info.version)}</h3>"
        "<p>See where an image classifier looks: Grad-CAM and related class activation maps "
        "over the image, with a verdict per image.</p>"
        f"<table>{body}</table>"
    )


def show_about(parent: QWidget, info: AboutInfo) -> QMessageBox:
    """A non-modal About box (open(), never exec(): nothing blocks); returns it."""
    box = QMessageBox(parent)
    box.setWindowTitle(f"About {APP_NAME}")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_html(info))
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    icon = parent.windowIcon()
    if not icon.isNull():
        box.setIconPixmap(icon.pixmap(64, 64))
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
