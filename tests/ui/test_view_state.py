"""Tests for ui/view_state.py: validation and change notification."""

from __future__ import annotations

import pytest

from engine.choices import Blend, Colormap
from engine.errors import InspectorError
from engine.layers import LayerInfo, LayerInventory
from engine.methods.registry import Smoothing
from engine.profile import CamDefaults
from engine.tokens import GridLayout
from ui.view_state import MODE_LABELS, ViewMode, ViewOptions, ViewState, model_options


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


INVENTORY = LayerInventory(
    (
        LayerInfo("", "Net", (10,), 0, 0),
        LayerInfo("features", "Conv2d", (8, 7, 7), 10, 1, GridLayout("nchw", 7, 7)),
        LayerInfo("head", "Linear", (10,), 10, 1),
    ),
    default_layer="features",
)
CAM = CamDefaults(
    None, "layercam", Colormap.VIRIDIS, 0.3, blend=Blend.ADDITIVE, smoothing=Smoothing(eigen=True)
)


def test_a_new_model_keeps_a_layer_it_has_and_its_profile_blend_and_smoothing() -> None:
    options = ViewOptions(layer="features", method="gradcam", target=2)
    assert model_options(options, CAM, INVENTORY, first_run=False) == {
        "layer": "features",
        "target": "pred",
        "blend": Blend.ADDITIVE,
        "smoothing": Smoothing(eigen=True),
    }


def test_a_layer_the_model_lacks_becomes_the_profile_or_default_layer() -> None:
    for old in ("", "layer4", "head"):  # none yet, another model's, not spatial
        changes = model_options(ViewOptions(layer=old), CAM, INVENTORY, first_run=False)
        assert changes["layer"] == "features"
    named = CamDefaults("head.0", "gradcam", Colormap.JET, 0.5)
    assert model_options(ViewOptions(), named, INVENTORY, first_run=False)["layer"] == "head.0"
    bare = LayerInventory(INVENTORY.layers[:1], default_layer=None)
    assert model_options(ViewOptions(), CAM, bare, first_run=False)["layer"] == ""


def test_a_first_run_takes_the_profile_defaults() -> None:
    changes = model_options(ViewOptions(), CAM, INVENTORY, first_run=True)
    assert changes == {
        "layer": "features",
        "target": "pred",
        "method": "layercam",
        "colormap": Colormap.VIRIDIS,
        "alpha": 0.3,
        "blend": Blend.ADDITIVE,
        "smoothing": Smoothing(eigen=True),
    }
    state = ViewState()
    state.update(**changes)  # what the window does with them: all valid
    assert (state.options.method, state.options.alpha) == ("layercam", 0.3)
