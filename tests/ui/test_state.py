"""Tests for ui/state.py: validation and change notification."""

from __future__ import annotations

import pytest

from engine.errors import InspectorError
from ui.state import ViewState


def test_update_reports_only_real_changes() -> None:
    state = ViewState()
    seen: list[frozenset[str]] = []
    state.subscribe(seen.append)
    assert state.update(alpha=0.7, colormap="jet") == {"alpha"}
    assert seen == [frozenset({"alpha"})]
    assert state.update(alpha=0.7) == frozenset()
    assert len(seen) == 1


@pytest.mark.parametrize(
    "change",
    [{"alpha": 1.5}, {"colormap": "rainbow"}, {"method": "magic"}, {"mode": "3d"}, {"target": "x"}],
)
def test_bad_values_are_refused_whole(change: dict) -> None:
    state = ViewState()
    before = state.options
    with pytest.raises(InspectorError):
        state.update(threshold=0.2, **change)
    assert state.options == before
