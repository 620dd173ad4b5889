"""What the window remembers between runs (QSettings): layout, view options, places, recents."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QRect, QSettings
from PySide6.QtWidgets import QMainWindow

from engine.errors import InspectorError
from engine.profile import demo_profile_path
from engine.resources import demo_images_dir
from ui.view_state import ViewOptions, ViewState

log = logging.getLogger(__name__)

SETTINGS_VERSION = 1  # settings of another version are ignored whole, not half-read
MAX_RECENT = 8
TEXT_OPTIONS = ("mode", "colormap", "method", "layer")
NUMBER_OPTIONS = ("alpha", "threshold")
SWITCH_OPTIONS = ("blur", "show_boxes")


@dataclass(frozen=True)
class SavedPlaces:
    """Where the last run was: profile, image folder, shown image, device (None: not saved)."""

    profile: str | None = None
    folder: str | None = None
    image: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class StartPlaces:
    """Where a run starts: every place known (the demo's where no other is)."""

    profile: Path
    folder: Path
    image: str | None  # the image to show first; None: the folder's first
    device: str


def fit_rect(rect: QRect, available: QRect) -> QRect:
    """rect made no larger than available and moved inside it (a laptop off a big monitor)."""
    width = min(rect.width(), available.width())
    height = min(rect.height(), available.height())
    x = min(max(rect.x(), available.x()), available.x() + available.width() - width)
    y = min(max(rect.y(), available.y()), available.y() + available.height() - height)
    return QRect(x, y, width, height)


def fit_window_to_screen(window: QMainWindow) -> bool:
    """Shrink and move the window (frame included) onto its screen; True when it changed."""
    screen = window.screen()
    if screen is None or window.isMaximized() or window.isFullScreen():
        return False
    available = screen.availableGeometry()
    frame = window.frameGeometry()
    fitted = fit_rect(frame, available)
    if fitted == frame:
        return False
    # The frame (title bar, borders) is outside geometry(): keep its size out of the content.
    extra_w = frame.width() - window.width()
    extra_h = frame.height() - window.height()
    window.resize(fitted.width() - extra_w, fitted.height() - extra_h)
    window.move(fitted.topLeft())
    return True


def start_places(
    saved: SavedPlaces, asked: SavedPlaces
) -> tuple[StartPlaces, list[tuple[str, str]]]:
    """Where to start: the command line's places, else the last run's, else the demo's.

    With it, a (title, message) for each saved place that is gone.
    """
    gone: list[tuple[str, str]] = []
    profile = asked.profile or saved.profile or str(demo_profile_path())
    if not asked.profile and not Path(profile).exists():  # a file, or a Hugging Face folder
        gone.append(
            (
                "Profile not found",
                f"The profile {profile} no longer exists; loading the demo model instead.",
            )
        )
        profile = str(demo_profile_path())
    # A saved "cuda" may meet a machine without one: "auto" still picks it when present.
    device = asked.device or (saved.device or "auto").replace("cuda", "auto")
    folder = asked.folder or saved.folder or str(demo_images_dir())
    if not Path(folder).is_dir():
        gone.append(
            (
                "Folder not found",
                f"The folder {folder} no longer exists; showing the demo images instead.",
            )
        )
        folder = str(demo_images_dir())
    image = saved.image if not asked.folder else None  # another folder: start at its first
    return StartPlaces(Path(profile), Path(folder), image, device), gone


class SettingsStore:
    """Reads and writes the window's QSettings; the keys live here and nowhere else."""

    def __init__(self, settings: QSettings) -> None:
        self.settings = settings

    def restore(self, window: QMainWindow, state: ViewState) -> SavedPlaces | None:
        """Restore the layout and view options; the saved places, None when nothing was saved."""
        s = self.settings
        if s.value("version", 0, int) != SETTINGS_VERSION:
            return None
        if geometry := s.value("geometry"):
            window.restoreGeometry(geometry)
        if layout := s.value("windowState"):
            window.restoreState(layout)
        for key, value in self._saved_options().items():
            try:
                state.update(**{key: value})
            except InspectorError as exc:  # a setting from an older build: skip only that one
                log.warning("ignoring saved setting %s: %s", key, exc)
        places = {
            key: str(s.value(key)) for key in SavedPlaces.__dataclass_fields__ if s.value(key)
        }
        return SavedPlaces(**places) if places else None

    def _saved_options(self) -> dict[str, object]:
        s = self.settings
        options: dict[str, object] = {}
        for key in TEXT_OPTIONS:
            if (value := s.value(key)) is not None:
                options[key] = str(value)
        for key in NUMBER_OPTIONS:
            if (value := s.value(key)) is not None:
                options[key] = float(value)
        for key in SWITCH_OPTIONS:
            if (value := s.value(key)) is not None:
                options[key] = str(value).lower() == "true"
        return options

    def save(self, window: QMainWindow, options: ViewOptions, places: SavedPlaces) -> None:
        s = self.settings
        s.setValue("version", SETTINGS_VERSION)
        s.setValue("geometry", window.saveGeometry())
        s.setValue("windowState", window.saveState())
        for key in (*TEXT_OPTIONS, *NUMBER_OPTIONS):
            s.setValue(key, getattr(options, key))
        for key in SWITCH_OPTIONS:
            s.setValue(key, str(getattr(options, key)).lower())
        for key in SavedPlaces.__dataclass_fields__:
            if (value := getattr(places, key)) is not None:
                s.setValue(key, value)
        s.sync()

    def recent_profiles(self) -> list[str]:
        value = self.settings.value("recentProfiles", [])
        items = [value] if isinstance(value, str) else list(value or [])  # one item reads as str
        return [p for p in items if p]

    def remember_profile(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.recent_profiles() if p != str(path)]
        self.settings.setValue("recentProfiles", recent[:MAX_RECENT])

    def auto_advance(self) -> bool:
        return str(self.settings.value("autoAdvance", "true")) == "true"

    def set_auto_advance(self, on: bool) -> None:
        self.settings.setValue("autoAdvance", str(on).lower())

    def reviewer(self) -> str | None:
        """The reviewer name set in the window; None: the OS user's."""
        return str(self.settings.value("reviewer", "")) or None

    def set_reviewer(self, name: str) -> None:
        self.settings.setValue("reviewer", name)

    def team_url(self) -> str:
        """The last team session's URL, as shown (never with a password)."""
        return str(self.settings.value("teamSession", ""))

    def remember_team_url(self, shown: str) -> None:
        self.settings.setValue("teamSession", shown)

    def session_file(self, default: Path) -> Path | None:
        """The session file chosen earlier for the folder and profile whose default is this."""
        remembered = self.settings.value(_session_key(default))
        return Path(str(remembered)) if remembered else None

    def remember_session_file(self, default: Path, path: Path) -> None:
        self.settings.setValue(_session_key(default), str(path))


def _session_key(default: Path) -> str:
    return f"session_files/{default.stem}"  # the default's stem already encodes folder and profile
