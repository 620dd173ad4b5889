"""Tests for ui/prediction_panel.py: bars, the explained class, the ground-truth mark."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from engine.cam import CamResult, Prediction
from engine.localization import Box
from ui.prediction_panel import PredictionPanel


def _result(target: int = 2) -> CamResult:
    cam = np.zeros((40, 40), np.float32)
    cam[5:10, 5:10] = 1.0
    top = (
        Prediction(2, "patches", 0.7),
        Prediction(0, "crazing", 0.2),
        Prediction(1, "inclusion", 0.1),
    )
    name = {p.index: p.name for p in top}[target]
    return CamResult("gradcam", "layer3", target, name, top, cam[::8, ::8], cam)


def test_bars_and_a_disagreeing_ground_truth(qtbot) -> None:
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    panel.show_result(_result(), "crazing", (Box(0, 0, 20, 20),))
    assert [b.text() for b in panel.buttons[:3]] == ["patches", "crazing", "inclusion"]
    assert panel.bars[0].value() == 700 and panel.bars[0].format() == "70.0%"
    assert not panel.buttons[3].isEnabled()
    assert "✗" in panel.truth.text() and "patches" in panel.truth.text()
    assert "hit ✓" in panel.scores.text()  # the peak (5..10) lies in the box
    assert "100.0%" in panel.scores.text()  # all of the map's energy is inside the box


def test_clicking_a_class_asks_to_explain_it(qtbot) -> None:
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    panel.show_result(_result(), None, ())
    assert panel.truth.text() == "Ground truth: unknown"
    assert "No ground-truth boxes" in panel.scores.text()
    with qtbot.waitSignal(panel.sig_target_chosen) as blocker:
        qtbot.mouseClick(panel.buttons[1], Qt.MouseButton.LeftButton)
    assert blocker.args == [0]
    with qtbot.waitSignal(panel.sig_target_chosen) as blocker:
        qtbot.mouseClick(panel.back, Qt.MouseButton.LeftButton)
    assert blocker.args == ["pred"]


def test_corrected_class_combo_emits_and_shows(qtbot) -> None:
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    panel.set_verdict_labels(("a", "b", "c", "d"))
    panel.set_classes(("crazing", "patches"))
    combo = panel.corrected
    assert [combo.itemText(i) for i in range(combo.count())] == ["", "crazing", "patches"]
    with qtbot.waitSignal(panel.sig_corrected_chosen) as blocker:
        combo.setCurrentIndex(2)
    assert blocker.args == ["patches"]
    with qtbot.assertNotEmitted(panel.sig_corrected_chosen):
        panel.show_verdict(3, None, "scratches")  # stored under a class the model lacks
    assert combo.currentText() == "scratches" and combo.currentData() == "scratches"
    with qtbot.assertNotEmitted(panel.sig_corrected_chosen):
        panel.show_verdict(None, None)
    assert combo.currentIndex() == 0
    panel.set_verdict_labels(None)
    assert not combo.isEnabled()


def test_sigmoid_probabilities_are_labelled_and_shown_as_they_are(qtbot) -> None:
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    assert "softmax" in panel.header.text()
    cam = np.zeros((40, 40), np.float32)
    binary = (Prediction(1, "defect", 0.8), Prediction(0, "ok", 0.2))
    result = CamResult("gradcam", "layer3", 1, "defect", binary, cam[::8, ::8], cam, head="binary")
    panel.show_result(result, None, ())
    assert "sigmoid probability" in panel.header.text() and "softmax" not in panel.header.text()
    assert [b.text() for b in panel.buttons[:2]] == ["defect", "ok"]
    assert [b.value() for b in panel.bars[:2]] == [800, 200]
    assert not panel.buttons[2].isEnabled()
    labels = (Prediction(2, "rust", 0.9), Prediction(0, "dent", 0.85), Prediction(1, "stain", 0.6))
    small = cam[::8, ::8]
    result = CamResult("gradcam", "layer3", 0, "dent", labels, small, cam, head="multilabel")
    panel.show_result(result, None, ())
    assert "need not add up to 100%" in panel.header.text()
    # Independent labels: the bars add up to 235%, each shown as the model gave it.
    assert [b.format() for b in panel.bars[:3]] == ["90.0%", "85.0%", "60.0%"]
    assert panel.buttons[1].isChecked() and "dent" in panel.explained.text()
    panel.show_result(_result(), None, ())
    assert "softmax" in panel.header.text()


def test_a_flat_map_shows_its_warning(qtbot) -> None:
    import torch

    from engine.cam import CamEngine
    from engine.map_files import map_title
    from tests.conftest import NEU, engine_records
    from tests.engine.silent_models import ClassTokenNet

    torch.manual_seed(1)
    engine = CamEngine(ClassTokenNet(len(NEU)), NEU, *engine_records((64, 64)), "cpu")
    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    result = engine.explain([picture], layer="norm")[0]
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    panel.show_result(result, None, ())
    assert "⚠ flat map at 'norm' (no positive value); try layer 'patch'" in (panel.explained.text())
    assert map_title(result).endswith("gradcam @ norm | WARNING: flat map")
    panel.show_result(_result(), None, ())
    assert "⚠" not in panel.explained.text()
