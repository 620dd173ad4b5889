"""Tools menu: the sanity check, comparison grids and metrics of the current image, computed on
the worker thread and shown in a dialog."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engine.metrics.registry import METRICS
from ui.main_window import MainWindow
from ui.trust_dialogs import SMOOTH_AUG, SMOOTH_EIGEN, TITLES

TIMEOUT_MS = 60_000


def _answer(qtbot, window: MainWindow, tool: str):
    with qtbot.waitSignal(window.worker.sig_trust_checked, timeout=TIMEOUT_MS) as blocker:
        dialog = window.trust.open(tool)
        assert dialog is not None and dialog.text.text() == "Computing…"
    # The blocker hears the signal in the worker thread; the dialog's slot runs on the GUI thread.
    qtbot.waitUntil(lambda: not dialog.text.text().startswith("Computing"))
    return dialog, blocker.args[0]


def test_the_tools_menu_lists_the_trust_tools(window: MainWindow) -> None:
    menus = {a.text(): a.menu() for a in window.menuBar().actions()}
    titles = [a.text() for a in menus["&Tools"].actions()]
    assert titles == [
        *(f"{title}…" for title in TITLES.values()),
        "",  # a separator
        SMOOTH_AUG,
        SMOOTH_EIGEN,
        "Faithfulness metrics in folder exports",
    ]


@pytest.mark.parametrize("tool", ["sanity", "methods", "layers"])
def test_figure_tools_fill_their_dialog(qtbot, window: MainWindow, tool: str) -> None:
    dialog, done = _answer(qtbot, window, tool)
    assert not done.failed, done.text
    assert done.figure is not None and done.figure.dtype.name == "uint8"
    assert dialog.figure.pixmap().width() == done.figure.shape[1]
    if tool == "sanity":
        assert dialog.text.text().startswith("Grad-CAM (gradcam) at layer4 ")
        assert "stage  randomised" in dialog.text.text()


def test_metrics_dialog_lists_every_metric(qtbot, window: MainWindow) -> None:
    dialog, done = _answer(qtbot, window, "metrics")
    assert not done.failed, done.text
    lines = dialog.text.text().splitlines()
    assert lines[0].startswith("Grad-CAM (gradcam) at layer4, class ")
    assert [line.split(":")[0] for line in lines[1:]] == [spec.label for spec in METRICS]


def test_without_a_model_nothing_is_sent(qtbot, window: MainWindow) -> None:
    window.model_ready = False
    assert window.trust.open("sanity") is None
    assert window.statusBar().currentMessage() == "Open a model and an image first"


def test_folder_export_with_metrics_adds_their_columns(qtbot, window: MainWindow, tmp_path) -> None:
    window.images.filter.setText("scratches")
    records = window.images.visible_records()
    window.trust.set_export_metrics(True)
    out = tmp_path / "out"
    with qtbot.waitSignal(window.sig_export_finished, timeout=TIMEOUT_MS):
        window.export_folder(out, batch_size=4)
    with (out / "results.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(records)
    for row in rows:
        assert all(-1.0 <= float(row[spec.name]) <= 1.0 for spec in METRICS)
    window.trust.set_export_metrics(False)
    assert window.exports.metrics == ()


def test_a_folder_export_fills_the_class_averages_tab(qtbot, window: MainWindow, tmp_path) -> None:
    window.images.filter.setText("crazing")
    with qtbot.waitSignal(window.worker.sig_class_trust, timeout=TIMEOUT_MS) as blocker:
        window.export_folder(tmp_path / "out", batch_size=4)
    trust = blocker.args[0]
    qtbot.waitUntil(lambda: window.trust.class_tab is not None)
    tabs = window.summary.tabs
    assert tabs.tabText(tabs.count() - 1) == "Class averages"
    tab = window.trust.class_tab
    assert tab.figure.pixmap().width() == trust.figure.shape[1]
    assert trust.lines[0].startswith("heat on the border (the border is ")
    assert any(line.startswith("  ground truth crazing (n=") for line in trust.lines)


def test_compare_methods_adds_the_slow_methods_on_request(qtbot, window: MainWindow) -> None:
    dialog, first = _answer(qtbot, window, "methods")
    assert dialog.more_button is not None and dialog.more_button.isEnabled()
    with qtbot.waitSignal(window.worker.sig_trust_checked, timeout=TIMEOUT_MS) as blocker:
        dialog.more_button.click()
        assert not dialog.more_button.isEnabled()
    done = blocker.args[0]
    qtbot.waitUntil(lambda: not dialog.text.text().startswith("Computing"))
    assert done.tool == "all_methods" and not done.failed, done.text
    # 4 tiles to a row: the second row's last tile is white paper with 6 methods, a map with 8.
    height, width = first.figure.shape[:2]
    corner = (slice(height * 3 // 4, height - 12), slice(width * 7 // 8, width - 12))
    assert (first.figure[corner] == 255).all() and (done.figure[corner] != 255).any()
    assert dialog.figure.pixmap().height() == done.figure.shape[0]


def _action(window: MainWindow, text: str):
    return next(a for a in window.actions() if a.text() == text)


def test_smoothing_toggles_recompute_the_shown_map(qtbot, window: MainWindow) -> None:
    from engine.methods.registry import Smoothing

    shown = window.explain.last_explained
    with qtbot.waitSignal(window.sig_result, timeout=TIMEOUT_MS) as blocker:
        _action(window, SMOOTH_EIGEN).trigger()
    eigen = blocker.args[0]
    assert window.state.options.smoothing == Smoothing(eigen=True)
    engine, o = window.worker._engine, window.state.options
    expected = engine.explain([shown.image], o.method, o.layer, smoothing=Smoothing(eigen=True))
    np.testing.assert_allclose(eigen.result.cam, expected[0].cam, atol=1e-5)
    with qtbot.waitSignal(window.sig_result, timeout=TIMEOUT_MS) as blocker:
        _action(window, SMOOTH_AUG).trigger()
    both = blocker.args[0]
    assert both.model_pass and window.state.options.smoothing == Smoothing(True, True)
    expected = engine.explain([shown.image], o.method, o.layer, smoothing=Smoothing(True, True))
    np.testing.assert_allclose(both.result.cam, expected[0].cam, atol=1e-5)
    window.trust.set_smoothing(aug=False, eigen=False)
    assert not _action(window, SMOOTH_AUG).isChecked()
    assert not _action(window, SMOOTH_EIGEN).isChecked()


def test_compare_methods_draws_from_the_shown_images_cached_pass(
    qtbot, window: MainWindow, monkeypatch
) -> None:
    engine = window.worker._engine
    calls = []
    real = engine.capture
    monkeypatch.setattr(engine, "capture", lambda *a, **k: calls.append(1) or real(*a, **k))
    passes = window.worker.model_passes
    _dialog, done = _answer(qtbot, window, "methods")
    assert not done.failed, done.text
    assert calls == [] and window.worker.model_passes == passes


def test_metrics_follow_the_windows_smoothing(qtbot, window: MainWindow) -> None:
    from engine.methods.registry import Smoothing
    from engine.metrics.faithfulness import MetricSettings
    from engine.metrics.measure import measure

    with qtbot.waitSignal(window.sig_result, timeout=TIMEOUT_MS):
        window.trust.set_smoothing(eigen=True)
    shown = window.explain.last_explained
    dialog, done = _answer(qtbot, window, "metrics")
    assert not done.failed, done.text
    engine, o = window.worker._engine, window.state.options
    result = engine.explain([shown.image], o.method, o.layer, smoothing=Smoothing(eigen=True))
    settings = MetricSettings(tuple(spec.name for spec in METRICS))
    expected = measure(engine, [shown.image], result, settings)[0]
    line = next(x for x in dialog.text.text().splitlines() if x.startswith("Deletion AUC: "))
    assert float(line.split()[2]) == pytest.approx(expected["deletion_auc"], abs=1e-4)


def _done(figure, text: str, tool: str = "sanity"):
    from ui.jobs import TrustChecked

    return TrustChecked(1, tool, None, figure, text)  # the record is not read by the dialog


def test_metrics_answer_leaves_no_empty_figure_frame(qtbot) -> None:
    from PySide6.QtWidgets import QScrollArea

    from ui.trust_dialogs import TrustDialog

    dialog = TrustDialog("Metrics for this image", "a.jpg")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.show_answer(_done(None, "Grad-CAM at layer4\nROAD: +0.1", "metrics"))
    assert not dialog.findChild(QScrollArea).isVisible()


def test_sanity_answer_fits_the_screen_and_shows_the_whole_strip(qtbot) -> None:
    """A long summary line wrapped (the dialog was wider than a 1366-px screen) and the strip's
    full height shown above a 12-line table (it was cut to a 60-px sliver)."""
    from ui.trust_dialogs import TrustDialog

    dialog = TrustDialog("Sanity check", "a.jpg")
    qtbot.addWidget(dialog)
    dialog.show()
    free = dialog.screen().availableGeometry()
    dialog.move(free.right() - 300, free.top())  # it grows where it stands: not off the screen
    strip = np.zeros((180, 2000, 3), np.uint8)
    text = (
        "Grad-CAM "
        + "word " * 80
        + "\n\nstage  randomised\n"
        + "\n".join(f"   {i}  layer{i}  0.5  0.5" for i in range(11))
    )
    dialog.show_answer(_done(strip, text))
    assert dialog.minimumSizeHint().width() <= free.width()
    assert free.contains(dialog.frameGeometry())
    if free.height() >= 600:
        assert dialog.scroll.viewport().height() >= strip.shape[0]
