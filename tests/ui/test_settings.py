"""Tests for ui/settings.py: where a run starts, from the command line, the last run or the demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.profile import demo_profile_path
from engine.resources import demo_images_dir
from ui.settings import SavedPlaces, StartPlaces, start_places


@pytest.fixture
def places(tmp_path: Path) -> SavedPlaces:
    """A last run whose profile and folder still exist."""
    profile = tmp_path / "p.toml"
    profile.write_text("")
    (tmp_path / "images").mkdir()
    return SavedPlaces(str(profile), str(tmp_path / "images"), "images/a.png", "cuda")


def test_nothing_saved_starts_on_the_demo() -> None:
    assert start_places(SavedPlaces(), SavedPlaces()) == (
        StartPlaces(demo_profile_path(), demo_images_dir(), None, "auto"),
        [],
    )


def test_the_last_run_is_resumed_with_cuda_as_auto(places: SavedPlaces) -> None:
    start, gone = start_places(places, SavedPlaces())
    assert gone == []
    # "auto" still picks CUDA where there is one, and does not fail where there is none.
    assert start == StartPlaces(Path(places.profile), Path(places.folder), "images/a.png", "auto")


def test_the_command_line_wins_and_another_folder_starts_at_its_first_image(
    places: SavedPlaces, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    asked = SavedPlaces(profile="asked.toml", folder=str(other), device="cpu")
    start, gone = start_places(places, asked)
    # A profile named on the command line is not checked here: loading it says what is wrong.
    assert start == StartPlaces(Path("asked.toml"), other, None, "cpu")
    assert gone == []


def test_places_that_are_gone_fall_back_to_the_demo(tmp_path: Path) -> None:
    saved = SavedPlaces(str(tmp_path / "gone.toml"), str(tmp_path / "gone"), "x.png", "cpu")
    start, gone = start_places(saved, SavedPlaces())
    assert start == StartPlaces(demo_profile_path(), demo_images_dir(), "x.png", "cpu")
    assert [title for title, _ in gone] == ["Profile not found", "Folder not found"]
    assert str(tmp_path / "gone.toml") in gone[0][1] and "demo model" in gone[0][1]
    assert str(tmp_path / "gone") in gone[1][1] and "demo images" in gone[1][1]
