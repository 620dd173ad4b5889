"""The window's look: one spacing scale, verdict colours, a dark palette following the system."""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QFrame, QLayout, QScrollArea, QWidget

# The one spacing scale (px): between related items, between groups, around a panel.
SMALL, MEDIUM, LARGE = 4, 8, 12
THEME_ENV = "GCI_THEME"  # "dark" or "light" overrides the system setting (screenshots, tests)

# Okabe & Ito's colour-blind-safe palette for verdicts 1..4 (bluish green, orange,
# vermillion, sky blue); the row tints are these at ~25% over white, or over the dark base.
VERDICT_COLOURS = ("#009e73", "#e69f00", "#d55e00", "#56b4e9")
_LIGHT_BASE = QColor("#ffffff")
_DARK_BASE = QColor("#2b2b2b")


def spaced(layout: QLayout, margin: int = SMALL, spacing: int = SMALL) -> QLayout:
    """The layout with margins and spacing from the scale."""
    layout.setContentsMargins(margin, margin, margin, margin)
    layout.setSpacing(spacing)
    return layout


def scrolling(body: QWidget) -> QScrollArea:
    """body in a frameless scroll area: a dock can then shrink below its content's height."""
    area = QScrollArea()
    area.setWidget(body)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    return area


def is_dark() -> bool:
    """True when the window is drawn dark (the override, else the system's colour scheme)."""
    wanted = os.environ.get(THEME_ENV, "").lower()
    if wanted in ("dark", "light"):
        return wanted == "dark"
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def verdict_tint(code: int) -> QColor:
    """Row background for verdict code 1..4: the verdict colour blended over the base."""
    colour = QColor(VERDICT_COLOURS[code - 1])
    base = _DARK_BASE if is_dark() else _LIGHT_BASE
    mix = 0.35 if is_dark() else 0.25
    return QColor(
        round(base.red() + mix * (colour.red() - base.red())),
        round(base.green() + mix * (colour.green() - base.green())),
        round(base.blue() + mix * (colour.blue() - base.blue())),
    )


def dark_palette() -> QPalette:
    """A Fusion palette for long sessions on grey images: dark grey, not black."""
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#323232",
        QPalette.ColorRole.WindowText: "#e8e8e8",
        QPalette.ColorRole.Base: _DARK_BASE.name(),
        QPalette.ColorRole.AlternateBase: "#353535",
        QPalette.ColorRole.ToolTipBase: "#3c3c3c",
        QPalette.ColorRole.ToolTipText: "#e8e8e8",
        QPalette.ColorRole.PlaceholderText: "#9a9a9a",
        QPalette.ColorRole.Text: "#e8e8e8",
        QPalette.ColorRole.Button: "#3a3a3a",
        QPalette.ColorRole.ButtonText: "#e8e8e8",
        QPalette.ColorRole.BrightText: "#ff6e6e",
        QPalette.ColorRole.Highlight: "#2f6fb0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#8ab4f8",
        QPalette.ColorRole.Mid: "#474747",
        QPalette.ColorRole.Dark: "#242424",
        QPalette.ColorRole.Light: "#4a4a4a",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return p


class ThemeFollower(QObject):
    """Applies the light or dark look now and again whenever the system setting changes."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self._app = app
        self._light = QPalette(app.palette())
        app.styleHints().colorSchemeChanged.connect(self.apply)
        self.apply()

    def apply(self, *_args: object) -> None:
        if is_dark():
            self._app.setStyle("Fusion")  # the one built-in style that draws any palette
            self._app.setPalette(dark_palette())
        else:
            self._app.setPalette(self._light)
