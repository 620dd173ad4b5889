"""The view toolbar (mode, colormap, blend, opacity, threshold, blur, boxes), bound to a ViewState.

User input updates the state; the state's changes set the widgets under a QSignalBlocker, so a
widget is never told back what it just said (no echo loop: napari's layer controls do the same).
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSlider, QToolBar, QWidget

from engine.choices import Blend, Colormap
from ui.view_state import MODE_LABELS, ViewOptions, ViewState

BLEND_LABELS = {Blend.WEIGHTED: "Weighted", Blend.ADDITIVE: "Additive (Keras)"}


def _slider(width: int, tooltip: str) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setFixedWidth(width)
    slider.setToolTip(tooltip)
    return slider


def _percent_label() -> QLabel:
    label = QLabel()
    label.setMinimumWidth(36)
    return label


class ViewToolbar(QToolBar):
    """The "View" toolbar; ``add_labelled`` appends the window's own choosers (the device)."""

    def __init__(self, state: ViewState) -> None:
        super().__init__("View")
        self.setObjectName("ViewToolbar")  # the saved window layout finds it by this name
        self.state = state
        self.mode = QComboBox()
        for mode, label in MODE_LABELS.items():
            self.mode.addItem(label, mode.value)  # plain str: findData matches it
        self.mode.setToolTip("What the view shows (M: the next one)")
        self.colormap = QComboBox()
        self.colormap.addItems(list(Colormap))
        self.blend = QComboBox()
        for blend, label in BLEND_LABELS.items():
            self.blend.addItem(label, blend.value)
        self.blend.setToolTip(
            "Weighted: (1 - opacity) * image + opacity * heatmap.\n"
            "Additive: image + opacity * heatmap, clipped (the Keras Grad-CAM example)."
        )
        self.opacity = _slider(110, "Heatmap opacity (blends live while you drag; keys [ and ])")
        self.opacity_label = _percent_label()
        self.threshold = _slider(90, "Hide heat below this CAM value")
        self.threshold_label = _percent_label()
        self.blur = QCheckBox("Blur")
        self.blur.setToolTip("Smooth the map with a Gaussian blur (sigma 4 px)")
        self.boxes = QCheckBox("GT boxes")
        self.boxes.setToolTip("Draw the ground-truth boxes from the annotation files (B)")
        for label, widget in (
            ("View ", self.mode),
            (" Colormap ", self.colormap),
            (" Blend ", self.blend),
            (" Opacity ", self.opacity),
            (None, self.opacity_label),
            (" Threshold ", self.threshold),
            (None, self.threshold_label),
            (None, self.blur),
            (None, self.boxes),
        ):
            self.add_labelled(label, widget)
        self._connect()
        state.subscribe(self._sync)
        self._sync(frozenset(ViewOptions.__dataclass_fields__))

    def add_labelled(self, label: str | None, widget: QWidget) -> None:
        if label:
            self.addWidget(QLabel(label))
        self.addWidget(widget)

    def _connect(self) -> None:
        self.mode.currentIndexChanged.connect(self._mode_chosen)
        self.colormap.currentTextChanged.connect(self._colormap_chosen)
        self.blend.currentIndexChanged.connect(self._blend_chosen)
        self.opacity.valueChanged.connect(self._opacity_moved)
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.blur.toggled.connect(self._blur_toggled)
        self.boxes.toggled.connect(self._boxes_toggled)

    # -- user input -> state --------------------------------------------------------------------
    def _mode_chosen(self, index: int) -> None:
        self.state.update(mode=self.mode.itemData(index))

    def _colormap_chosen(self, name: str) -> None:
        self.state.update(colormap=name)

    def _blend_chosen(self, index: int) -> None:
        self.state.update(blend=self.blend.itemData(index))

    def _opacity_moved(self, value: int) -> None:
        self.state.update(alpha=value / 100)

    def _threshold_moved(self, value: int) -> None:
        self.state.update(threshold=value / 100)

    def _blur_toggled(self, on: bool) -> None:
        self.state.update(blur=on)

    def _boxes_toggled(self, on: bool) -> None:
        self.state.update(show_boxes=on)

    # -- state -> widgets -----------------------------------------------------------------------
    def _sync(self, names: frozenset[str]) -> None:
        """Set the widgets of the changed options from the state, without them emitting back."""
        o = self.state.options
        setters = {
            "mode": (self.mode, lambda: self.mode.setCurrentIndex(self.mode.findData(o.mode))),
            "colormap": (self.colormap, lambda: self.colormap.setCurrentText(o.colormap)),
            "blend": (self.blend, lambda: self.blend.setCurrentIndex(self.blend.findData(o.blend))),
            "alpha": (self.opacity, lambda: self.opacity.setValue(round(100 * o.alpha))),
            "threshold": (
                self.threshold,
                lambda: self.threshold.setValue(round(100 * o.threshold)),
            ),
            "blur": (self.blur, lambda: self.blur.setChecked(o.blur)),
            "show_boxes": (self.boxes, lambda: self.boxes.setChecked(o.show_boxes)),
        }
        for name in names:
            if name not in setters:
                continue
            widget, apply = setters[name]
            with QSignalBlocker(widget):
                apply()
        self.opacity_label.setText(f"{o.alpha:.0%}")
        self.threshold_label.setText(f"{o.threshold:.0%}")


class DeviceChooser(QComboBox):
    """CPU or CUDA for the model; CUDA is offered once the worker found it (it imports torch)."""

    def __init__(self) -> None:
        super().__init__()
        self.addItem("CPU", "cpu")
        self.addItem("CUDA", "cuda")
        self.set_cuda_available(None)

    def set_cuda_available(self, available: bool | None) -> None:
        """None: not known yet (torch still importing)."""
        model = self.model()
        assert isinstance(model, QStandardItemModel)
        item = model.item(1)
        item.setEnabled(bool(available))
        if available is None:
            item.setToolTip("Checking for CUDA…")
        elif not available:
            item.setToolTip("CUDA is not available on this machine (no GPU or a CPU-only torch)")
        else:
            item.setToolTip("Run the model on the GPU")
        self.setToolTip(item.toolTip() if not available else "Model device")

    def show_device(self, device: str) -> None:
        """Show the device the model runs on ("cuda:0" is CUDA) without asking for a reload."""
        with QSignalBlocker(self):
            self.setCurrentIndex(1 if device.startswith("cuda") else 0)
