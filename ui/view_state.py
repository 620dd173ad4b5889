"""The view's options (mode, colormap, opacity, blend, method, layer, class): validated, observed.

Qt-free on purpose: a script or a test can drive it without widgets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import nonmember
from typing import TYPE_CHECKING

from engine.choices import Blend, Choice, Colormap
from engine.errors import InspectorError
from engine.methods.registry import NO_SMOOTHING, Smoothing, get_method
from engine.render import RenderStyle
from ui.jobs import BLUR_SIGMA, Target

if TYPE_CHECKING:  # engine.layers imports torch: the window only names it
    from engine.layers import LayerInventory
    from engine.profile import CamDefaults


class ViewMode(Choice):
    """What the view draws, in the chooser's order."""

    what = nonmember("view mode")
    ORIGINAL = "original"
    HEATMAP = "heatmap"
    OVERLAY = "overlay"
    PANELS = "panels"


MODE_LABELS = {
    ViewMode.ORIGINAL: "Original",
    ViewMode.HEATMAP: "Heatmap",
    ViewMode.OVERLAY: "Overlay",
    ViewMode.PANELS: "Three panels",
}


@dataclass(frozen=True)
class ViewOptions:
    """Everything that decides what the view shows; a change of the CAM part asks the worker."""

    mode: ViewMode = ViewMode.OVERLAY
    colormap: Colormap = Colormap.JET
    alpha: float = 0.5
    blend: Blend = Blend.WEIGHTED  # ADDITIVE: heatmap * alpha + image; the profile's to start with
    threshold: float = 0.0
    blur: bool = False
    show_boxes: bool = True
    method: str = "gradcam"
    layer: str = ""
    target: Target = "pred"
    smoothing: Smoothing = NO_SMOOTHING  # aug_smooth / eigen_smooth; the profile's to start with

    @property
    def style(self) -> RenderStyle:
        """The drawing part, as every renderer and the folder export take it."""
        sigma = BLUR_SIGMA if self.blur else 0.0
        return RenderStyle(self.colormap, self.alpha, self.threshold, self.blend, sigma)


CAM_FIELDS = frozenset({"method", "layer", "target", "blur", "smoothing"})


def model_options(
    options: ViewOptions, cam: CamDefaults, inventory: LayerInventory, first_run: bool
) -> dict[str, object]:
    """The changes a newly loaded model makes: its layer, and its profile's defaults on a first
    run (nothing restored from settings); the blend is always the profile's.
    """
    spatial = {i.name for i in inventory.layers if i.spatial}
    layer = options.layer
    if layer not in spatial:  # the old model's layer, or none yet
        layer = cam.layer or inventory.default_layer or ""
    changes: dict[str, object] = {"layer": layer, "target": "pred"}
    if first_run:
        changes |= {"method": cam.method, "colormap": cam.colormap, "alpha": cam.alpha}
    # The blend belongs to the model (a Keras-style profile asks for additive): always its own;
    # so does the smoothing its profile asks for.
    changes["blend"] = cam.blend
    changes["smoothing"] = cam.smoothing
    return changes


def _validated(options: ViewOptions) -> ViewOptions:
    """The options with the mode as a ViewMode; an InspectorError naming the first bad value."""
    options = dataclasses.replace(options, mode=ViewMode.parse(options.mode))
    get_method(options.method)
    _ = options.style  # building the style validates colormap, blend, alpha and threshold
    if not (options.target == "pred" or isinstance(options.target, int)):
        raise InspectorError(f"target must be 'pred' or a class index, got {options.target!r}")
    return options


Listener = Callable[[frozenset[str]], None]


class ViewState:
    """Holds one ViewOptions; ``update`` validates, replaces and tells listeners what changed.

    Widgets listen and set themselves under a QSignalBlocker, so a widget that caused a
    change is not told to change again (no echo loop).
    """

    def __init__(self, options: ViewOptions | None = None) -> None:
        self.options = _validated(options or ViewOptions())
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def update(self, **changes: object) -> frozenset[str]:
        """Apply the changes (all or none); returns the names whose value really changed."""
        new = _validated(dataclasses.replace(self.options, **changes))
        names = frozenset(k for k in changes if getattr(new, k) != getattr(self.options, k))
        if names:
            self.options = new
            for listener in self._listeners:
                listener(names)
        return names
