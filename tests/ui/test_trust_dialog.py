"""Tests for ui/trust_dialog.py and the window's use of it: a pickled model, loaded only when the
user says so, the choice remembered in the profile when asked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from PySide6.QtWidgets import QApplication

from engine.profile import load_profile
from tests.conftest import NEU
from tests.ui.conftest import RESULT_TIMEOUT_MS
from ui.main_window import MainWindow
from ui.trust_dialog import TrustDialog


def test_dialog_explains_and_offers_to_remember(qtbot) -> None:
    dialog = TrustDialog(None, "'m.pt' is a full pickled model ...", "pickle", can_remember=False)
    qtbot.addWidget(dialog)
    assert dialog.load_button.text() == "Load anyway"
    assert not dialog.remember.isEnabled()
    assert dialog.remember.text() == "Remember: write trust_pickle = true into the profile"
    code = TrustDialog(None, "runs net.py", "code", can_remember=True)
    qtbot.addWidget(code)
    assert code.remember.isEnabled()


def test_enter_cancels_and_never_loads(qtbot) -> None:
    """Load anyway was the default button: Enter, a key a reviewer presses all day, ran the
    pickle's code."""
    from PySide6.QtCore import Qt

    dialog = TrustDialog(None, "'m.pt' is a full pickled model ...", "pickle", can_remember=True)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitExposed(dialog)
    assert not dialog.load_button.isDefault()
    with qtbot.waitSignal(dialog.finished, timeout=5_000) as finished:
        qtbot.keyClick(dialog, Qt.Key.Key_Return)
    assert finished.args == [0]  # rejected


@pytest.fixture
def pickled_profile(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=len(NEU)), tmp_path / "whole.pt")
    classes = ", ".join(f'"{c}"' for c in NEU)
    path = tmp_path / "whole.toml"
    path.write_text(
        f'architecture = "resnet18"\nweights = "whole.pt"\nclasses = [{classes}]\n'
        "[preprocess]\nsize = [64, 64]\n",
        encoding="utf-8",
    )
    return path


def _trust_dialog(qtbot) -> TrustDialog:
    found: list[TrustDialog] = []

    def shown() -> None:
        found[:] = [w for w in QApplication.topLevelWidgets() if isinstance(w, TrustDialog)]
        assert found and found[0].isVisible()

    qtbot.waitUntil(shown, timeout=RESULT_TIMEOUT_MS)
    return found[0]


def test_a_pickled_model_loads_after_the_user_trusts_it(
    qtbot, window: MainWindow, pickled_profile: Path
) -> None:
    window.open_profile(pickled_profile)
    dialog = _trust_dialog(qtbot)
    assert not window.model_ready
    assert dialog.remember.isEnabled()
    dialog.remember.setChecked(True)
    with qtbot.waitSignal(window.sig_model_ready, timeout=RESULT_TIMEOUT_MS):
        dialog.load_button.click()
    assert load_profile(pickled_profile).trust_pickle


def test_cancelling_the_trust_dialog_loads_nothing(
    qtbot, window: MainWindow, pickled_profile: Path
) -> None:
    window.open_profile(pickled_profile)
    dialog = _trust_dialog(qtbot)
    dialog.reject()
    assert not window.model_ready
    assert not load_profile(pickled_profile).trust_pickle
