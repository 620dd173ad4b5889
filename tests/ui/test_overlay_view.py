"""Tests for ui/overlay_view.py's boxes: thin vector outlines over the image, labels outside."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QApplication, QGraphicsRectItem

from engine.localization import Box
from engine.render import BOX_COLOR, render_overlay
from ui.overlay_view import OverlayView
from ui.view_state import ViewMode, ViewOptions

# The demo's crazing_1: two boxes, one just below the other.
BOXES = (Box(40, 60, 100, 120, label="crazing"), Box(60, 125, 120, 170, label="crazing"))


def _view(qtbot) -> tuple[OverlayView, np.ndarray, np.ndarray]:
    view = OverlayView()
    qtbot.addWidget(view)
    view.resize(700, 700)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    cam = rng.random((200, 200)).astype(np.float32)
    view.set_content(image, cam, BOXES, ViewOptions())
    QApplication.processEvents()
    return view, image, cam


def test_boxes_are_thin_outlines_over_an_untouched_overlay(qtbot) -> None:
    view, image, _cam = _view(qtbot)
    levels = view.cam_levels
    np.testing.assert_array_equal(view.rendered, render_overlay(image, levels))  # none burned in
    outlines = [i for i in view.box_items if isinstance(i, QGraphicsRectItem)]
    assert len(outlines) == 4  # a dark line and a coloured one per box
    pens = [o.pen() for o in outlines]
    assert all(p.isCosmetic() for p in pens)  # screen pixels at any zoom
    assert [p.width() for p in pens] == [4, 2, 4, 2]
    assert pens[1].color().getRgb()[:3] == BOX_COLOR
    view.refresh(dataclasses.replace(ViewOptions(), show_boxes=False))
    assert view.box_items == []  # the toggle


def test_labels_sit_outside_their_boxes(qtbot) -> None:
    view, _image, _cam = _view(qtbot)
    tags = [i for i in view.box_items if isinstance(i, pg.TextItem)]
    assert [t.toPlainText() for t in tags] == ["crazing", "crazing"]
    for tag, box in zip(tags, BOXES, strict=True):
        rect = view.viewbox.mapSceneToView(tag.sceneBoundingRect()).boundingRect()
        assert rect.bottom() <= box.y0 + 0.5  # above the box: the defect stays visible
        assert abs(rect.left() - box.x0) < 0.5


def test_the_three_panels_keep_their_drawn_in_boxes(qtbot) -> None:
    view, _image, _cam = _view(qtbot)
    view.refresh(dataclasses.replace(ViewOptions(), mode=ViewMode.PANELS))
    assert view.box_items == []
    assert (view.rendered == BOX_COLOR).all(axis=2).any()  # drawn on the overlay panel
