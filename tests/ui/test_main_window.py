"""Tests for ui/main_window.py: the window on a tiny model, driven like a user would."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtWidgets import QApplication

from engine.resources import demo_images_dir
from tests.ui.conftest import RESULT_TIMEOUT_MS, open_window
from ui.main_window import MainWindow


def _decode(path: Path) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def _wait_result(qtbot, window: MainWindow):
    return qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS)


def test_first_image_is_explained_on_start(window: MainWindow) -> None:
    done = window.explain.last_explained
    assert done is not None
    assert window.images.current_row() == 0
    assert done.record == window.images.current_record()
    assert window.view.rendered is not None
    assert window.view.rendered.shape == (*done.image.shape[:2], 3)
    assert window.state.options.layer == "layer4"
    # The table's predicted and confidence columns are filled in from the result.
    model = window.images.model
    assert model.index(0, 2).data() == done.result.predicted.name
    assert model.index(0, 3).data().endswith("%")
    assert window.prediction.buttons[0].text() == done.result.predicted.name
    assert window.worker.model_passes == 1


def test_keys_move_through_the_list(qtbot, window: MainWindow) -> None:
    window.activateWindow()
    window.images.table.setFocus()
    with _wait_result(qtbot, window):
        qtbot.keyClick(window.images.table, Qt.Key.Key_D)
    assert window.images.current_row() == 1
    with _wait_result(qtbot, window):
        qtbot.keyClick(window.images.table, Qt.Key.Key_Right)
    assert window.images.current_row() == 2
    with _wait_result(qtbot, window):
        qtbot.keyClick(window.images.table, Qt.Key.Key_A)
    assert window.images.current_row() == 1
    with _wait_result(qtbot, window):
        qtbot.keyClick(window.images.table, Qt.Key.Key_End)
    assert window.images.current_row() == window.images.model.rowCount() - 1
    assert window.explain.last_explained.record == window.images.current_record()
    with _wait_result(qtbot, window):
        qtbot.keyClick(window.images.table, Qt.Key.Key_Home)
    assert window.images.current_row() == 0


def test_filter_narrows_the_list(qtbot, window: MainWindow) -> None:
    window.images.filter.setText("scratches")
    visible = window.images.visible_records()
    assert visible and all("scratches" in r.rel_path.as_posix() for r in visible)
    assert len(visible) < window.images.model.rowCount()


def test_opacity_rerenders_without_the_model(qtbot, window: MainWindow) -> None:
    passes, hits = window.worker.model_passes, window.worker.cache_hits
    before = window.view.rendered.copy()
    window.view_toolbar.opacity.setValue(90)
    assert window.state.options.alpha == pytest.approx(0.9)
    after = window.view.rendered
    assert not np.array_equal(before, after)
    # Pixels move towards the heatmap: more opacity, closer to the pure colormap.
    done = window.explain.last_explained
    heat = cv2.applyColorMap((done.result.cam * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    assert np.abs(after.astype(int) - heat).mean() < np.abs(before.astype(int) - heat).mean()
    window.view_toolbar.colormap.setCurrentText("viridis")
    assert not np.array_equal(after, window.view.rendered)
    window.view_toolbar.boxes.setChecked(
        False
    )  # boxes would cover some of the pixels compared below
    recoloured = window.view.rendered.copy()
    window.view_toolbar.threshold.setValue(60)
    cold = done.result.cam < 0.6  # below the threshold the original image shows
    thresholded = window.view.rendered
    original = np.repeat(done.image[..., None], 3, axis=2) if done.image.ndim == 2 else done.image
    np.testing.assert_array_equal(thresholded[cold], original[cold])
    assert not np.array_equal(thresholded, recoloured)
    assert window.worker.model_passes == passes and window.worker.cache_hits == hits


def test_actual_size_shows_one_image_pixel_per_screen_pixel(window: MainWindow) -> None:
    window.view.actual_size()
    rect = window.view.viewbox.viewRect()
    assert rect.width() == pytest.approx(window.view.viewbox.width(), rel=0.02)
    window.view.fit()
    width = window.explain.last_explained.image.shape[1]
    assert window.view.viewbox.viewRect().width() >= width


def test_method_change_uses_the_cached_pass(qtbot, window: MainWindow) -> None:
    passes, hits = window.worker.model_passes, window.worker.cache_hits
    with _wait_result(qtbot, window) as blocker:
        window.prediction.method.setCurrentIndex(window.prediction.method.findData("gradcam++"))
    done = blocker.args[0]
    assert done.result.method == "gradcam++" and not done.model_pass
    assert window.worker.model_passes == passes
    assert window.worker.cache_hits == hits + 1
    assert window.state.options.method == "gradcam++"


def test_layer_click_runs_a_new_pass(qtbot, window: MainWindow) -> None:
    passes = window.worker.model_passes
    tree = window.model_dock.tree
    index = window.model_dock._items["layer3"][0].index()
    tree.scrollTo(index)
    with _wait_result(qtbot, window) as blocker:
        qtbot.mouseClick(
            tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualRect(index).center()
        )
    assert blocker.args[0].result.layer == "layer3" and blocker.args[0].model_pass
    assert window.worker.model_passes == passes + 1
    assert window.state.options.layer == "layer3"
    assert window.model_dock._items["layer3"][0].font().bold()
    assert not window.model_dock._items["layer4"][0].font().bold()


def test_clicking_a_class_explains_it(qtbot, window: MainWindow) -> None:
    second = window.explain.last_explained.result.top_k[1]
    with _wait_result(qtbot, window) as blocker:
        qtbot.mouseClick(window.prediction.buttons[1], Qt.MouseButton.LeftButton)
    assert blocker.args[0].result.target_index == second.index
    assert "chosen class" in window.prediction.explained.text()


def test_export_current_writes_files_that_decode(window: MainWindow, tmp_path: Path) -> None:
    written = window.export_current(tmp_path)
    names = sorted(p.name.rsplit("_", 1)[-1] for p in written)
    assert names == ["cam.npy", "heatmap.png", "overlay.png", "panels.png"]
    image = window.explain.last_explained.image
    for path in written:
        if path.suffix == ".png":
            decoded = _decode(path)
            assert decoded.ndim == 3 and decoded.shape[2] == 3
            if not path.name.endswith("_panels.png"):
                assert decoded.shape[:2] == image.shape[:2]
    raw = np.load(next(p for p in written if p.suffix == ".npy"))
    np.testing.assert_array_equal(raw, window.explain.last_explained.result.cam)


def test_folder_export_cancel_keeps_partial_csv(qtbot, window: MainWindow, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # Cancel from inside the first progress report, in the worker thread, so the cut is exact.
    window.worker.sig_export_progress.connect(
        window.worker.cancel_export, Qt.ConnectionType.DirectConnection
    )
    with qtbot.waitSignal(window.sig_export_finished, timeout=RESULT_TIMEOUT_MS) as blocker:
        assert window.export_folder(out, batch_size=2) is not None
        assert window.exports.bar.isVisibleTo(window)
    finished = blocker.args[0].summary
    assert finished.cancelled and finished.total == window.images.model.rowCount()
    with (out / "results.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # The export stops within a chunk or two of the cancel; what was done is kept.
    assert 0 < len(rows) < finished.total
    assert len(rows) == finished.succeeded + finished.failed
    assert {r["status"] for r in rows} == {"ok"}
    stem = out / Path(rows[0]["path"]).with_suffix("")
    assert _decode(stem.with_name(stem.name + "_overlay.png")).ndim == 3
    assert not window.exports.bar.isVisibleTo(window)
    # The window is alive and still explains images.
    with _wait_result(qtbot, window):
        window.images.step(1)
    assert window.images.current_row() == 1


def test_cancel_button_stops_the_export(qtbot, window: MainWindow, tmp_path: Path) -> None:
    with qtbot.waitSignal(window.sig_export_progress, timeout=RESULT_TIMEOUT_MS):
        window.export_folder(tmp_path / "out", batch_size=1)
    with qtbot.waitSignal(window.sig_export_finished, timeout=RESULT_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(window.exports.cancel_button, Qt.MouseButton.LeftButton)
    finished = blocker.args[0].summary
    assert finished.cancelled and finished.succeeded < finished.total
    assert not window.exports.cancel_button.isVisibleTo(window)


def test_prefetched_neighbours_fill_the_table(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path
) -> None:
    window = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=True)
    model = window.images.model
    qtbot.waitUntil(lambda: bool(model.index(2, 2).data()), timeout=RESULT_TIMEOUT_MS)
    assert model.index(1, 3).data().endswith("%")  # rows 1 and 2 were prefetched, not shown
    assert window.images.current_row() == 0
    with _wait_result(qtbot, window) as blocker:
        window.images.step(1)
    assert not blocker.args[0].model_pass
    window.close()


def test_folder_export_writes_batch_outputs(qtbot, window: MainWindow, tmp_path: Path) -> None:
    window.images.filter.setText("crazing")
    records = window.images.visible_records()
    out = tmp_path / "out"
    with qtbot.waitSignal(window.sig_export_finished, timeout=RESULT_TIMEOUT_MS) as blocker:
        window.export_folder(out, batch_size=4)
    finished = blocker.args[0].summary
    assert not finished.cancelled and finished.succeeded == len(records)
    with (out / "results.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [r.rel_path.as_posix() for r in records]
    stem = out / records[0].rel_path.with_suffix("")
    for suffix in ("_heatmap.png", "_overlay.png", "_panels.png"):
        assert _decode(stem.with_name(stem.name + suffix)).ndim == 3
    # Every exported row's predicted column is filled, not only the shown and prefetched ones.
    model = window.images.model

    def predicted_column() -> list[str]:
        return [model.index(model.row_of(r), 2).data() for r in records]

    qtbot.waitUntil(lambda: "" not in predicted_column())
    assert predicted_column() == [r["predicted"] for r in rows]


def test_corrupt_image_shows_error_and_navigation_goes_on(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    shutil.copytree(neu_folder / "IMAGES", folder)
    (folder / "aaa_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    window = MainWindow(settings, folder, tiny_profile, device="cpu", prefetch=False)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.sig_error, timeout=RESULT_TIMEOUT_MS) as blocker:
        window.start()
    assert blocker.args[0].record.path.name == "aaa_broken.jpg"
    assert window.view.message.isVisibleTo(window)
    assert "aaa_broken.jpg" in window.view.message.text()
    assert window.images.model.index(0, 2).data() == "error"
    with _wait_result(qtbot, window):
        window.images.step(1)
    assert not window.view.message.isVisibleTo(window)
    assert window.view.rendered is not None
    window.close()


def test_closing_during_an_export_stops_the_thread(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path, tmp_path: Path
) -> None:
    window = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False)
    with qtbot.waitSignal(window.sig_export_progress, timeout=RESULT_TIMEOUT_MS):
        window.export_folder(tmp_path / "out", batch_size=1)
    window.close()
    assert not window.threads.thread.isRunning()
    assert window.threads.thread.isFinished()
    QApplication.processEvents()


def test_settings_restore_the_session(
    qtbot, settings: QSettings, neu_folder: Path, tiny_profile: Path
) -> None:
    first = open_window(qtbot, settings, neu_folder, tiny_profile, prefetch=False)
    first.state.update(alpha=0.3, colormap="magma", method="layercam", mode="heatmap")
    with _wait_result(qtbot, first):
        first.state.update(layer="layer3")
    with _wait_result(qtbot, first):
        first.images.select_row(3)
    chosen = first.images.current_record()
    first.close()
    second = MainWindow(settings, prefetch=False)  # no folder or profile given: the saved ones
    qtbot.addWidget(second)
    second.show()
    with qtbot.waitSignal(second.sig_result, timeout=RESULT_TIMEOUT_MS) as blocker:
        second.start()
    o = second.state.options
    assert (o.alpha, o.colormap, o.method, o.mode, o.layer) == (
        0.3,
        "magma",
        "layercam",
        "heatmap",
        "layer3",
    )
    assert (
        second.view_toolbar.opacity.value() == 30
        and second.view_toolbar.colormap.currentText() == "magma"
    )
    assert second.images.current_record() == chosen
    assert blocker.args[0].result.layer == "layer3"
    second.close()


def test_vanished_folder_falls_back_to_the_demo_images(
    qtbot, settings: QSettings, tiny_profile: Path, tmp_path: Path
) -> None:
    settings.setValue("version", 1)
    settings.setValue("folder", str(tmp_path / "gone"))
    settings.setValue("profile", str(tiny_profile))
    window = MainWindow(settings, prefetch=False)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.sig_result, timeout=RESULT_TIMEOUT_MS):
        window.start()
    assert window.folder == demo_images_dir()
    assert window.images.model.rowCount() == len(list((demo_images_dir() / "IMAGES").iterdir()))
    assert "no longer exists" in window.banner.text()
    window.close()


def test_zoom_is_kept_when_moving_to_the_next_image(qtbot, window: MainWindow) -> None:
    viewbox = window.view.viewbox
    viewbox.scaleBy((0.25, 0.25))
    zoomed = viewbox.viewRect()
    with _wait_result(qtbot, window):
        window.images.step(1)
    assert viewbox.viewRect() == zoomed
    window.view.fit()
    height, width = window.explain.last_explained.image.shape[:2]
    fitted = viewbox.viewRect()
    assert fitted.width() >= width and fitted.height() >= height


def test_cursor_shows_pixel_and_cam_value(window: MainWindow) -> None:
    shown: list[str] = []
    window.view.sig_hover.connect(shown.append)
    scene_pos = window.view.viewbox.mapViewToScene(QPointF(10.5, 20.5))
    window.view._hover(scene_pos)
    cam = window.explain.last_explained.result.cam
    assert shown[-1] == f"x 10, y 20   CAM {cam[20, 10]:.3f}"
    assert window.hover_label.text() == shown[-1]
    window.view._hover(window.view.viewbox.mapViewToScene(QPointF(-50, -50)))
    assert shown[-1] == ""


def test_cuda_is_offered_only_when_available(window: MainWindow) -> None:
    import torch

    item = window.device_combo.model().item(1)
    assert item.isEnabled() == torch.cuda.is_available()
    if not torch.cuda.is_available():
        assert "not available" in item.toolTip()
    assert window.device_label.text() == "device: cpu"


def test_a_loaded_profile_joins_the_recent_menu(window: MainWindow, tiny_profile: Path) -> None:
    actions = [a.text() for a in window.recent_menu.actions()]
    assert actions == [str(tiny_profile.resolve())]
    assert window.settings.value("recentProfiles") in (
        [str(tiny_profile.resolve())],
        str(tiny_profile.resolve()),
    )


def test_additive_blend_shows_and_exports_the_keras_formula(
    window: MainWindow, tmp_path: Path
) -> None:
    assert window.view_toolbar.blend.currentData() == "weighted"  # the tiny profile's default
    window.view_toolbar.boxes.setChecked(False)
    window.view_toolbar.threshold.setValue(0)
    window.view_toolbar.blend.setCurrentIndex(window.view_toolbar.blend.findData("additive"))
    assert window.state.options.blend == "additive"
    done = window.explain.last_explained
    o = window.state.options
    from engine.render import colormap_lut

    levels = np.uint8(255 * done.result.cam)
    heat = colormap_lut(o.colormap)[levels]  # RGB, like the image
    rgb = done.image if done.image.ndim == 3 else np.dstack([done.image] * 3)
    expected = np.clip(np.round(o.alpha * heat.astype(np.float64) + rgb), 0, 255)
    np.testing.assert_allclose(window.view.rendered, expected, atol=1)
    written = window.export_current(tmp_path)
    overlay = next(p for p in written if p.name.endswith("_overlay.png"))
    np.testing.assert_array_equal(_decode(overlay)[..., ::-1], window.view.rendered)


def test_export_names_are_safe_for_onnx_graph_layer_names(
    window: MainWindow, tmp_path: Path
) -> None:
    import dataclasses

    done = window.explain.last_explained
    result = dataclasses.replace(done.result, layer="layer4/layer4/1/relu_1/Relu")
    window.explain.last_explained = dataclasses.replace(done, result=result)
    written = window.export_current(tmp_path)
    assert len(written) == 4 and all(p.parent == tmp_path and p.exists() for p in written)
    assert all("_layer4_layer4_1_relu_1_Relu_" in p.name for p in written)


def test_model_notes_from_the_worker_thread_reach_the_status_bar(qtbot, window: MainWindow) -> None:
    import threading

    shown_on: list[threading.Thread] = []
    original = window.statusBar().showMessage

    def record(text: str, timeout: int = 0) -> None:
        shown_on.append(threading.current_thread())
        original(text, timeout)

    window.statusBar().showMessage = record  # type: ignore[method-assign]
    emitter = threading.Thread(target=window.worker.sig_notice.emit, args=("explained element 0",))
    emitter.start()
    emitter.join()
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == "explained element 0")
    assert shown_on == [threading.main_thread()]


def test_going_back_to_a_cached_map_stops_a_running_score_cam(qtbot, window: MainWindow) -> None:
    progress: list[tuple[int, int]] = []
    window.worker.sig_cam_progress.connect(lambda d, t: progress.append((d, t)))
    window.state.update(method="scorecam")  # no cached map: a long job starts
    qtbot.waitUntil(lambda: bool(progress), timeout=RESULT_TIMEOUT_MS)
    with qtbot.waitSignal(window.sig_worker_idle, timeout=RESULT_TIMEOUT_MS):
        window.state.update(method="gradcam")  # cached: shown at once, Score-CAM dropped
    assert window.explain.last_explained.result.method == "gradcam"
    qtbot.wait(100)  # nothing late may replace it
    assert window.explain.last_explained.result.method == "gradcam"
    done, total = progress[-1]
    assert done < total


def test_a_folder_export_stopped_by_a_full_disk_says_so(window: MainWindow, tmp_path: Path) -> None:
    """Every image has its row, but the files stopped: the window says why and what to do."""
    from engine.batch_options import DISK_FULL, BatchSummary
    from ui.jobs import ExportFinished

    warnings: list[tuple[str, str]] = []
    window.exports.sig_warning.connect(lambda title, text: warnings.append((title, text)))
    csv_path = tmp_path / "results.csv"
    window.exports._finished(ExportFinished(7, BatchSummary(10, 4, 6, False, csv_path, 1.0)))
    assert warnings == []
    summary = BatchSummary(10, 4, 6, False, csv_path, 1.0, stopped=DISK_FULL)
    window.exports._finished(ExportFinished(8, summary))
    assert warnings == [
        (
            "Folder export stopped",
            f"Stopped: {DISK_FULL}. Free some space, then export the folder again "
            f"(the images already written are in {csv_path}).",
        )
    ]
