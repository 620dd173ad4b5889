"""The image view: original, heatmap, overlay or three panels, with zoom, pan and a legend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsRectItem,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from engine.images import to_rgb
from engine.localization import Box
from engine.render import (
    BOX_COLOR,
    BOX_INNER_COLOR,
    DIFFICULT_BOX_COLOR,
    cam_to_uint8,
    draw_boxes,
    render_colorbar,
    render_heatmap,
    render_overlay,
    render_panels,
)
from ui.view_state import ViewMode, ViewOptions

LEGEND_HEIGHT = 200


def compose(
    image: np.ndarray,
    cam: np.ndarray | None,
    cam_levels: np.ndarray | None,
    boxes: Sequence[Box],
    options: ViewOptions,
    title: str = "",
) -> np.ndarray:
    """The RGB picture the view shows for these options (the engine's renderers, no model)."""
    shown = boxes if options.show_boxes else ()
    if cam is None or options.mode == ViewMode.ORIGINAL:
        return draw_boxes(image, shown) if shown else to_rgb(image)
    if options.mode == ViewMode.HEATMAP:
        heat = render_heatmap(cam_levels, options.colormap)
        return draw_boxes(heat, shown) if shown else heat
    if options.mode == ViewMode.OVERLAY:
        return render_overlay(image, cam_levels, options.style, shown)
    return render_panels(image, cam, options.style, title, shown)


class ColorbarLegend(QWidget):
    """The colormap as a vertical bar from 1.0 (top) to 0.0 (bottom)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bar = QLabel()
        self._bar.setFixedSize(18, LEGEND_HEIGHT)
        top, bottom = QLabel("1.0"), QLabel("0.0")
        mid = QLabel("CAM")
        mid.setWordWrap(False)
        labels = QVBoxLayout()
        labels.setContentsMargins(0, 0, 0, 0)
        labels.addWidget(top, 0, Qt.AlignmentFlag.AlignTop)
        labels.addStretch(1)
        labels.addWidget(mid)
        labels.addStretch(1)
        labels.addWidget(bottom, 0, Qt.AlignmentFlag.AlignBottom)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 4, 4, 4)
        row.setSpacing(4)
        row.addWidget(self._bar)
        holder = QWidget()
        holder.setFixedHeight(LEGEND_HEIGHT)
        holder.setLayout(labels)
        row.addWidget(holder)
        self.setToolTip("CAM value: how much the region raised the explained class's score")

    def set_colormap(self, name: str) -> None:
        bar = np.ascontiguousarray(render_colorbar(name, LEGEND_HEIGHT, 18))
        image = QImage(bar.data, 18, LEGEND_HEIGHT, 18 * 3, QImage.Format.Format_RGB888)
        self._bar.setPixmap(QPixmap.fromImage(image.copy()))


class OverlayView(QWidget):
    """A pyqtgraph ViewBox with one row-major ImageItem; zoom survives a change of image."""

    sig_hover = Signal(str)  # "x, y, CAM value" under the cursor, or "" outside the image

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graphics = pg.GraphicsView(background="#202124")
        self.viewbox = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.graphics.setCentralItem(self.viewbox)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.viewbox.addItem(self.item)
        self.legend = ColorbarLegend()
        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet(
            "QLabel { color: #ffb4a9; background: rgba(32,33,36,220); padding: 12px;"
            " font-size: 14px; }"
        )
        self.message.hide()
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics, 0, 0)
        layout.addWidget(self.message, 0, 0, Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.legend, 0, 1, Qt.AlignmentFlag.AlignVCenter)
        self.image: np.ndarray | None = None
        self.cam: np.ndarray | None = None
        self.cam_levels: np.ndarray | None = None
        self.boxes: tuple[Box, ...] = ()
        self.title = ""
        self.rendered: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._legend_colormap = ""
        self.box_items: list[QGraphicsItem] = []
        self._drawn_boxes: tuple[Box, ...] = ()
        self.graphics.scene().sigMouseMoved.connect(self._hover)

    # -- content --------------------------------------------------------------------------------
    def set_content(
        self,
        image: np.ndarray,
        cam: np.ndarray | None,
        boxes: tuple[Box, ...],
        options: ViewOptions,
        title: str = "",
    ) -> None:
        self.image, self.cam, self.boxes, self.title = image, cam, boxes, title
        self.cam_levels = None if cam is None else cam_to_uint8(cam).copy()
        self.message.hide()
        self.refresh(options)

    def show_error(self, message: str) -> None:
        self.image = self.cam = self.cam_levels = self.rendered = None
        self.item.clear()
        self._draw_box_items(())
        self.message.setText(message)
        self.message.show()

    def show_waiting(self, message: str) -> None:
        if self.image is None:
            self.message.setText(message)
            self.message.show()

    def refresh(self, options: ViewOptions) -> None:
        """Re-render from the stored map: what an opacity or colormap change costs."""
        if options.colormap != self._legend_colormap:
            self.legend.set_colormap(options.colormap)
            self._legend_colormap = options.colormap
        self.legend.setVisible(options.mode != ViewMode.ORIGINAL)
        if self.image is None:
            return
        # The three-panel figure has its boxes drawn in; the other modes get vector boxes on top,
        # one screen pixel thin and with labels of screen size at any zoom.
        panels = options.mode == ViewMode.PANELS
        burned = self.boxes if panels else ()
        rgb = compose(self.image, self.cam, self.cam_levels, burned, options, self.title)
        self.rendered = rgb
        self._draw_box_items(self.boxes if options.show_boxes and not panels else ())
        first = self._shape is None
        shape_changed = self._shape != rgb.shape[:2]
        self._shape = rgb.shape[:2]
        # No levels: pyqtgraph then shows uint8 RGB as it is, ~5 ms faster than levels (0, 255).
        self.item.setImage(rgb, autoLevels=False)
        # Images of one folder share a size, so the zoom is kept while moving between them.
        if first or shape_changed:
            self.fit()

    def _draw_box_items(self, boxes: tuple[Box, ...]) -> None:
        """Each box as two cosmetic outlines (a 2-px colour line on a 4-px dark one: visible on
        jet and viridis alike) and its label on a dark tag just above it, outside the box."""
        if boxes == self._drawn_boxes:
            return  # an opacity drag redraws the image, not the boxes
        for item in self.box_items:
            self.viewbox.removeItem(item)
        self.box_items = []
        self._drawn_boxes = boxes
        for box in boxes:
            rect = QRectF(box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0)
            colour = DIFFICULT_BOX_COLOR if box.difficult else BOX_COLOR
            style = Qt.PenStyle.DashLine if box.difficult else Qt.PenStyle.SolidLine
            for pen_colour, width, pen_style in (
                (BOX_INNER_COLOR, 4, Qt.PenStyle.SolidLine),
                (colour, 2, style),
            ):
                outline = QGraphicsRectItem(rect)
                pen = QPen(QColor(*pen_colour), width, pen_style)
                pen.setCosmetic(True)  # screen pixels, whatever the zoom
                outline.setPen(pen)
                self._add_box_item(outline)
            if box.label:
                above = box.y0 > 0  # at the image's top edge the tag goes below the box
                tag = pg.TextItem(
                    box.label,
                    color=(255, 255, 255),
                    fill=pg.mkBrush(*BOX_INNER_COLOR, 220),
                    anchor=(0, 1) if above else (0, 0),
                )
                tag.setPos(box.x0, box.y0 if above else box.y1)
                self._add_box_item(tag)

    def _add_box_item(self, item: QGraphicsItem) -> None:
        item.setZValue(10)  # over the image
        self.viewbox.addItem(item)
        self.box_items.append(item)

    # -- zoom -----------------------------------------------------------------------------------
    def fit(self) -> None:
        if self._shape is not None:
            height, width = self._shape
            self.viewbox.setRange(xRange=(0, width), yRange=(0, height), padding=0.02)

    def actual_size(self) -> None:
        """One image pixel per screen pixel, centred where the view is now."""
        if self._shape is None:
            return
        centre = self.viewbox.viewRect().center()
        width, height = self.viewbox.width(), self.viewbox.height()
        self.viewbox.setRange(
            xRange=(centre.x() - width / 2, centre.x() + width / 2),
            yRange=(centre.y() - height / 2, centre.y() + height / 2),
            padding=0,
        )

    def _hover(self, pos: QPointF) -> None:
        if self.image is None or self.rendered is None:
            self.sig_hover.emit("")
            return
        point = self.viewbox.mapSceneToView(pos)
        x, y = int(np.floor(point.x())), int(np.floor(point.y()))
        height, width = self.rendered.shape[:2]
        if not (0 <= x < width and 0 <= y < height):
            self.sig_hover.emit("")
            return
        text = f"x {x}, y {y}"
        if self.cam is not None and self.rendered.shape[:2] == self.cam.shape:
            text += f"   CAM {self.cam[y, x]:.3f}"
        if self.image is not None and self.rendered.shape[:2] == self.image.shape[:2]:
            # A label the picture had no room for outside its box is read here.
            labels = [b.label or "box" for b in self.boxes if b.x0 <= x < b.x1 and b.y0 <= y < b.y1]
            if labels:
                text += "   in " + ", ".join(labels)
        self.sig_hover.emit(text)
