"""Tests for ui/view_state.py: validation and change notification."""

from __future__ import annotations

import pytest

from engine.errors import InspectorError
from ui.view_state import MODE_LABELS, ViewMode, ViewState


def test_update_reports_only_real_changes() -> None:
    state = ViewState()
    seen: list[frozenset[str]] = []
    state.subscribe(seen.append)
    assert state.update(alpha=0.7, colormap="jet") == {"alpha"}
    assert seen == [frozenset({"alpha"})]
    assert state.update(alpha=0.7) == frozenset()
    assert len(seen) == 1


@pytest.mark.parametrize(
    "change",
    [{"alpha": 1.5}, {"colormap": "rainbow"}, {"method": "magic"}, {"mode": "3d"}, {"target": "x"}],
)
def test_bad_values_are_refused_whole(change: dict) -> None:
    state = ViewState()
    before = state.options
    with pytest.raises(InspectorError):
        state.update(threshold=0.2, **change)
    assert state.options == before


def test_blend_is_an_observed_view_option() -> None:
    import numpy as np

    from engine.render import RenderStyle, render_overlay, render_panels
    from ui.overlay_view import compose

    state = ViewState()
    assert state.options.blend == "weighted"
    assert state.update(blend="additive") == {"blend"}
    with pytest.raises(InspectorError, match="unknown blend 'screen'"):
        state.update(blend="screen")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    cam = rng.random((30, 40), dtype=np.float32)
    levels = np.uint8(255 * cam)
    for blend in ("additive", "weighted"):
        state.update(blend=blend, alpha=0.7)
        shown = compose(image, cam, levels, (), state.options)
        np.testing.assert_array_equal(
            shown, render_overlay(image, levels, RenderStyle("jet", 0.7, blend=blend))
        )
        state.update(mode="panels")
        shown = compose(image, cam, levels, (), state.options, "t")
        np.testing.assert_array_equal(
            shown, render_panels(image, cam, RenderStyle("jet", 0.7, blend=blend), "t")
        )
        state.update(mode="overlay")


def test_mode_is_stored_as_a_view_mode() -> None:
    state = ViewState()
    assert state.update(mode="heatmap") == {"mode"}
    assert state.options.mode is ViewMode.HEATMAP
    assert state.update(mode=ViewMode.HEATMAP) == frozenset()  # the same choice, no change
    with pytest.raises(InspectorError, match="unknown view mode '3d': use original, heatmap, "):
        state.update(mode="3d")
    assert list(MODE_LABELS) == list(ViewMode)  # every mode has a label in the chooser
