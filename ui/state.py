"""The view's options (mode, colormap, opacity, blend, method, layer, class): validated, observed.

Qt-free on purpose: a script or a test can drive it without widgets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import InspectorError
from engine.methods.registry import get_method
from engine.render import BLEND_MODES, COLORMAP_NAMES
from ui.jobs import Target

MODES: tuple[str, ...] = ("original", "heatmap", "overlay", "panels")
MODE_LABELS = {
    "original": "Original",
    "heatmap": "Heatmap",
    "overlay": "Overlay",
    "panels": "Three panels",
}


@dataclass(frozen=True)
class ViewOptions:
    """Everything that decides what the view shows; a change of the CAM part asks the worker."""

    mode: str = "overlay"
    colormap: str = "jet"
    alpha: float = 0.5
    blend: str = "weighted"  # "additive": heatmap * alpha + image; the profile's to start with
    threshold: float = 0.0
    blur: bool = False
    show_boxes: bool = True
    method: str = "gradcam"
    layer: str = ""
    target: Target = "pred"


CAM_FIELDS = frozenset({"method", "layer", "target", "blur"})


def _validate(options: ViewOptions) -> None:
    if options.mode not in MODES:
        raise InspectorError(f"unknown view mode '{options.mode}': use one of {', '.join(MODES)}")
    if options.colormap not in COLORMAP_NAMES:
        raise InspectorError(f"unknown colormap '{options.colormap}'")
    if options.blend not in BLEND_MODES:
        raise InspectorError(
            f"unknown blend '{options.blend}': use one of {', '.join(BLEND_MODES)}"
        )
    get_method(options.method)
    for name in ("alpha", "threshold"):
        value = getattr(options, name)
        if not 0.0 <= value <= 1.0:
            raise InspectorError(f"{name} must be between 0 and 1, got {value}")
    if not (options.target == "pred" or isinstance(options.target, int)):
        raise InspectorError(f"target must be 'pred' or a class index, got {options.target!r}")


Listener = Callable[[frozenset[str]], None]


class ViewState:
    """Holds one ViewOptions; ``update`` validates, replaces and tells listeners what changed.

    Widgets listen and set themselves under a QSignalBlocker, so a widget that caused a
    change is not told to change again (no echo loop).
    """

    def __init__(self, options: ViewOptions | None = None) -> None:
        self.options = options or ViewOptions()
        _validate(self.options)
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def update(self, **changes: object) -> frozenset[str]:
        """Apply the changes (all or none); returns the names whose value really changed."""
        new = dataclasses.replace(self.options, **changes)
        _validate(new)
        names = frozenset(k for k in changes if getattr(new, k) != getattr(self.options, k))
        if names:
            self.options = new
            for listener in self._listeners:
                listener(names)
        return names
