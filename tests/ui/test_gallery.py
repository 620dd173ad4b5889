"""Tests for ui/gallery.py: order, filters, keys, clicks and the on-disk thumbnail cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from engine.dataset import ImageRecord
from engine.render import RenderStyle
from tests.ui.conftest import RESULT_TIMEOUT_MS
from ui.gallery import GalleryCache, GalleryKey, GalleryView, render_thumbnail, thumbnail_name
from ui.images_dock import ImageTableModel, RowResult
from ui.main_window import MainWindow

KEY = GalleryKey("/folder", "/profile.toml", "layer4", "gradcam")


def _records(count: int) -> list[ImageRecord]:
    return [
        ImageRecord(Path(f"/nowhere/img_{i}.png"), Path(f"img_{i}.png"), "crazing", None)
        for i in range(count)
    ]


@pytest.fixture
def gallery(qtbot, tmp_path: Path) -> GalleryView:
    model = ImageTableModel()
    records = _records(5)
    model.set_records(records)
    # img_1: wrong and unsure; img_2: a pointing miss; img_4 not explained yet.
    results = [
        RowResult("crazing", 0.9, pointing_hit=True),
        RowResult("patches", 0.4, pointing_hit=True),
        RowResult("crazing", 0.7, pointing_hit=False),
        RowResult("crazing", 0.95),
    ]
    for record, result in zip(records, results, strict=False):
        model.set_result(record, result)
    model.set_verdicts({"img_0.png": 1, "img_2.png": 2})
    view = GalleryView(model, GalleryCache(tmp_path / "cache"))
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    yield view
    view.cache.close()


def _names(view: GalleryView) -> list[str]:
    return [view.proxy.index(row, 0).data() for row in range(view.proxy.rowCount())]


def test_sorts_put_the_odd_images_first(gallery: GalleryView) -> None:
    order = {
        "name": ["img_0.png", "img_1.png", "img_2.png", "img_3.png", "img_4.png"],
        "confidence": ["img_1.png", "img_2.png", "img_0.png", "img_3.png", "img_4.png"],
        "miss": ["img_2.png", "img_0.png", "img_1.png", "img_3.png", "img_4.png"],
        "disagree": ["img_1.png", "img_0.png", "img_2.png", "img_3.png", "img_4.png"],
        "predicted": ["img_0.png", "img_2.png", "img_3.png", "img_1.png", "img_4.png"],
        "verdict": ["img_0.png", "img_2.png", "img_1.png", "img_3.png", "img_4.png"],
    }
    for key, expected in order.items():
        gallery.sort.setCurrentIndex(gallery.sort.findData(key))
        assert _names(gallery) == expected, key


def test_filters_are_the_lists(gallery: GalleryView) -> None:
    gallery.set_filter_mode("unreviewed")
    assert _names(gallery) == ["img_1.png", "img_3.png", "img_4.png"]
    assert gallery.count.text() == "3 of 5 images"
    gallery.set_filter_mode("miss")
    assert _names(gallery) == ["img_2.png"]
    gallery.set_filter_mode("low")
    assert _names(gallery) == ["img_1.png"]
    gallery.set_filter_mode("all")
    assert gallery.count.text() == "5 images"
    gallery.filter.setText("PATCHES")  # a class, predicted here: case does not matter
    assert _names(gallery) == ["img_1.png"]
    gallery.filter.setText("img_3")
    assert _names(gallery) == ["img_3.png"]


def test_arrow_keys_move_and_enter_or_a_click_opens(qtbot, gallery: GalleryView) -> None:
    view = gallery.list
    view.setFocus()
    view.setCurrentIndex(gallery.proxy.index(0, 0))
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.currentIndex().row() == 1
    with qtbot.waitSignal(gallery.sig_open) as opened:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert opened.args[0].rel_path == Path("img_1.png")
    rect = view.visualRect(gallery.proxy.index(3, 0))
    with qtbot.waitSignal(gallery.sig_open) as opened:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args[0].rel_path == Path("img_3.png")


def _pixels(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(height, stride)
    return rows[:, : 3 * width].reshape(height, width, 3).copy()


def test_thumbnails_are_drawn_cached_on_disk_and_reused(qtbot, tmp_path: Path) -> None:
    record = _records(1)[0]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    cam = rng.random((200, 300)).astype(np.float32)
    style = RenderStyle(colormap="viridis", alpha=0.6)
    expected = render_thumbnail(image, cam, style)
    assert expected.shape == (85, 128, 3)
    first = GalleryCache(tmp_path)
    first.set_key(KEY)
    with qtbot.waitSignal(first.sig_changed, timeout=10_000) as changed:
        first.add(record, cam, style, image)
    assert changed.args == [[str(record.path)]]
    assert (KEY.directory(tmp_path) / thumbnail_name(record)).is_file()
    np.testing.assert_array_equal(_pixels(first.pixmap(record).toImage()), expected)
    first.close()
    again = GalleryCache(tmp_path)  # the folder opened again: read, not drawn
    again.set_key(KEY)
    assert again.pixmap(record) is None  # asked for; it comes from disk
    with qtbot.waitSignal(again.sig_changed, timeout=10_000):
        pass
    np.testing.assert_array_equal(_pixels(again.pixmap(record).toImage()), expected)
    again.set_key(GalleryKey(KEY.folder, KEY.profile, "layer3", KEY.method))
    assert again.pixmap(record) is None  # another layer: another set, none drawn yet
    with qtbot.waitSignal(again.sig_changed, timeout=10_000):
        pass
    assert again.pixmap(record) is None
    again.close()


def test_the_window_fills_the_gallery_and_a_click_opens_the_image(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    first = window.images.current_record()
    cache = window.gallery.cache
    assert cache.directory is not None and cache.directory.is_relative_to(tmp_path / "cache")
    qtbot.waitUntil(lambda: (cache.directory / thumbnail_name(first)).is_file(), timeout=10_000)
    qtbot.keyClick(window.images.table, Qt.Key.Key_G)
    assert window.central.currentWidget() is window.gallery
    assert window.gallery.list.hasFocus()
    view = window.gallery.list
    qtbot.waitUntil(lambda: cache.pixmap(first) is not None)
    rect = view.visualRect(window.gallery.proxy.index(2, 0))
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.central.currentWidget() is window.view
    assert window.images.current_row() == 2
    assert window.images.table.hasFocus()


def test_smoothed_maps_are_another_set_of_thumbnails(qtbot, window: MainWindow) -> None:
    """Eigen smoothing draws another map: its thumbnails were written over the plain ones (the
    key had no smoothing), so turning it off left smoothed overlays in the gallery."""
    first = window.images.current_record()
    cache = window.gallery.cache
    plain = cache.directory
    qtbot.waitUntil(lambda: (plain / thumbnail_name(first)).is_file(), timeout=10_000)
    before = (plain / thumbnail_name(first)).read_bytes()
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        window.trust.set_smoothing(eigen=True)
    assert cache.directory != plain
    qtbot.waitUntil(lambda: (cache.directory / thumbnail_name(first)).is_file(), timeout=10_000)
    assert (plain / thumbnail_name(first)).read_bytes() == before
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        window.trust.set_smoothing(eigen=False)
    assert cache.directory == plain


def test_a_verdict_in_the_gallery_is_for_the_highlighted_thumbnail(
    qtbot, window: MainWindow
) -> None:
    """Arrow keys moved the gallery's highlight but not the current image: key 3 pressed on a
    thumbnail recorded the verdict for the image left in the hidden view."""
    from tests.ui.conftest import stored_verdicts

    qtbot.keyClick(window.images.table, Qt.Key.Key_G)
    view = window.gallery.list
    assert window.central.currentWidget() is window.gallery and view.hasFocus()
    qtbot.keyClick(view, Qt.Key.Key_Right)
    highlighted = window.gallery.proxy.record(view.currentIndex())
    assert highlighted == window.gallery.proxy.record(window.gallery.proxy.index(1, 0))
    qtbot.keyClick(view, Qt.Key.Key_3)
    assert stored_verdicts(window.review.session.path) == {highlighted.rel_path.as_posix(): 3}
    # Auto-advance moved to the next image; the gallery's highlight follows it.
    following = window.images.current_record()
    assert following != highlighted
    assert window.gallery.proxy.record(view.currentIndex()) == following
    # The gallery's own moves (Down: the next row of the grid) make that image the current one.
    qtbot.keyClick(view, Qt.Key.Key_Down)
    below = window.gallery.proxy.record(view.currentIndex())
    assert below != following and window.images.current_record() == below
