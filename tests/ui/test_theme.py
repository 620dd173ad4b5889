"""Tests for ui/theme.py: the dark palette follows the setting, verdict tints stay apart."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor, QPalette

from ui.theme import THEME_ENV, VERDICT_COLOURS, ThemeFollower, is_dark, verdict_tint


def _luminance(colour: QColor) -> float:
    return 0.2126 * colour.redF() + 0.7152 * colour.greenF() + 0.0722 * colour.blueF()


def test_the_dark_palette_follows_the_setting_and_light_restores(
    qapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = QPalette(qapp.palette())
    monkeypatch.setenv(THEME_ENV, "dark")
    try:
        follower = ThemeFollower(qapp)
        assert is_dark()
        assert qapp.palette().color(QPalette.ColorRole.Window) == QColor("#323232")
        text = qapp.palette().color(QPalette.ColorRole.Text)
        assert _luminance(text) - _luminance(qapp.palette().color(QPalette.ColorRole.Base)) > 0.6
        monkeypatch.setenv(THEME_ENV, "light")
        follower.apply()  # what the system's colorSchemeChanged signal calls
        assert qapp.palette() == original
    finally:
        qapp.setPalette(original)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_verdict_tints_are_the_okabe_ito_hues_and_keep_text_readable(
    theme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(THEME_ENV, theme)
    assert VERDICT_COLOURS == ("#009e73", "#e69f00", "#d55e00", "#56b4e9")
    tints = [verdict_tint(code) for code in (1, 2, 3, 4)]
    assert len({t.name() for t in tints}) == 4
    for tint, colour in zip(tints, VERDICT_COLOURS, strict=True):
        assert abs(tint.hueF() - QColor(colour).hueF()) < 0.03  # the hue survives the tint
        # Dark text on light tints, light text on dark ones: a clear luminance gap either way.
        assert (_luminance(tint) > 0.7) if theme == "light" else (_luminance(tint) < 0.45)
