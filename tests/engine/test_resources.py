"""engine/resources.py: the bundled files are found from source, an installed wheel and a bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine.resources as resources
from engine.profile import demo_profile_path, load_profile

REPO = Path(__file__).resolve().parents[2]
# What the app opens at start and in --self-test: each must be found wherever it runs from.
REQUIRED = (
    ("demo", "demo_resnet18.safetensors"),
    ("profiles", "demo.toml"),
    ("samples", "IMAGES", "scratches_1.jpg"),
    ("samples", "ANNOTATIONS", "scratches_1.xml"),
)

# Run in a child interpreter: which copy of `engine` it imports is the point of the test.
PROBE = """
import json, engine.resources as r
from engine.profile import demo_profile_path, load_profile
profile = load_profile(demo_profile_path())
print(json.dumps({
    "engine": r.__file__,
    "resources": str(r.resources_dir()),
    "samples": str(r.demo_images_dir()),
    "weights": str(profile.weights),
}))
"""


def test_from_source_points_at_the_repository_resources() -> None:
    assert resources.resources_dir() == REPO / "resources"
    assert resources.demo_images_dir() == REPO / "resources" / "samples"
    for parts in REQUIRED:
        assert resources.resource_path(*parts).is_file(), parts


def test_frozen_bundle_uses_meipass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyInstaller sets sys._MEIPASS to the bundle's _internal folder; the spec puts resources/
    there. A copied tree stands in for the bundle: the profile and its weights come from it."""
    bundle = tmp_path / "_internal"
    shutil.copytree(REPO / "resources", bundle / "resources")
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)

    assert resources.resources_dir() == bundle / "resources"
    for parts in REQUIRED:
        assert resources.resource_path(*parts).is_file(), parts
    profile = load_profile(demo_profile_path())
    assert profile.weights == (bundle / "resources" / "demo" / "demo_resnet18.safetensors")


def test_frozen_without_resources_names_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.resources_dir() == tmp_path / "resources"
    assert not resources.resource_path("profiles", "demo.toml").exists()


@pytest.mark.slow
def test_installed_wheel_finds_its_own_resources(tmp_path: Path) -> None:
    """A real non-editable install (pip builds the wheel from a copy of the project, about
    5 s): package-data must carry the resources, and the helper must find them next to the
    installed engine, not in the checkout."""
    source = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("engine", "ui", "resources"):
        shutil.copytree(REPO / name, source / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "main.py"):
        shutil.copy2(REPO / name, source / name)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    shutil.rmtree(source)  # nothing may be read from the source copy any more

    env = dict(os.environ, PYTHONPATH=str(site))
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    found = json.loads(done.stdout.strip().splitlines()[-1])

    assert Path(found["engine"]) == site / "engine" / "resources.py"
    assert Path(found["resources"]) == site / "resources"
    assert Path(found["samples"]) == site / "resources" / "samples"
    assert Path(found["weights"]) == site / "resources" / "demo" / "demo_resnet18.safetensors"
    for parts in REQUIRED:
        assert site.joinpath("resources", *parts).is_file(), parts
    assert len(list((site / "resources" / "samples" / "IMAGES").glob("*.jpg"))) == 48
