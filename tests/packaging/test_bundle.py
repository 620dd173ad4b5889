"""The PyInstaller bundle (packaging/gradcam_inspector.spec) starts, runs --self-test and is lean.

Slow: building takes minutes (see packaging/build.sh). Set GCI_BUNDLE to a built bundle folder
(dist/gradcam-inspector) to test it without building; otherwise the test builds one into a
temporary folder when PyInstaller is installed (`pip install -e '.[build]'`) and skips with
that reason when it is not.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "packaging" / "gradcam_inspector.spec"
APP = "gradcam-inspector"
BUILD_TIMEOUT_S = 3600
SELF_TEST_STEPS = ("qt", "torch", "model", "cam", "render", "export", "pdf", "session")
TORCHVISION_OPS = ("_C_stable", "image_stable")
# Folders under _internal/ that must not be there: dev tools, reference libraries, torch.compile.
EXCLUDED_FOLDERS = (
    "pytest", "_pytest", "pytestqt", "matplotlib", "triton", "captum", "pytorch_grad_cam",
    "onnxscript", "PyInstaller", "scipy", "sklearn", "tests",
)  # fmt: skip
# Top-level modules that must not be in the bundle's Python archive.
EXCLUDED_MODULES = (
    "pytest", "_pytest", "matplotlib", "triton", "captum", "pytorch_grad_cam", "onnxscript",
    "PyInstaller", "tests", "scipy", "sklearn",
)  # fmt: skip
# Qt libraries of modules the window does not use.
EXCLUDED_QT_LIBS = ("libQt6WebEngine", "libQt6Quick", "libQt6Qml", "libQt6Multimedia", "libQt63D")


def _build(target: Path) -> Path:
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip(
            "PyInstaller is not installed: pip install -e '.[build]' to build the bundle, "
            "or set GCI_BUNDLE to a built dist/gradcam-inspector folder"
        )
    done = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", str(target / "dist"), "--workpath", str(target / "build"), str(SPEC)],
        cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return target / "dist" / APP


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    given = os.environ.get("GCI_BUNDLE")
    if given:
        folder = Path(given).resolve()
        assert (folder / APP).is_file(), f"GCI_BUNDLE={given} has no {APP} executable"
        yield folder
        return
    target = tmp_path_factory.mktemp("bundle")
    try:
        yield _build(target)
    finally:  # gigabytes: do not leave them in the temp folder
        shutil.rmtree(target, ignore_errors=True)


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """No display, no Python venv, a fresh home: what a user's double-click gets."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        **extra,
    }


def test_self_test_passes_in_the_bundle(bundle: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(bundle / APP), "--self-test"],
        cwd=tmp_path,
        env=user_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "self-test passed", output
    for step in SELF_TEST_STEPS:
        assert any(line.startswith(f"{step}: ok ") for line in lines), (step, output)
    assert "nms ok" in done.stdout
    assert any(line.startswith(("cuda: ok ", "cuda: skipped ")) for line in lines), output
    assert "platform 'offscreen'" in done.stdout
    # The demo profile must come from inside the bundle, not from a checkout.
    assert f"from {bundle / '_internal' / 'resources' / 'profiles' / 'demo.toml'}" in done.stdout


def test_window_shows_from_the_bundle(bundle: Path, tmp_path: Path) -> None:
    """The real start: the window on the demo is exposed (main.py prints the line and exits
    under GCI_EXIT_AFTER_SHOW=1), with nothing on stderr that looks like a traceback."""
    env = user_env(tmp_path, QT_QPA_PLATFORM="offscreen", GCI_EXIT_AFTER_SHOW="1")
    done = subprocess.run(
        [str(bundle / APP)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GCI_WINDOW_SHOWN epoch=" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_torchvision_operator_libraries_are_bundled(bundle: Path) -> None:
    folder = bundle / "_internal" / "torchvision"
    names = {path.name.split(".")[0] for path in folder.iterdir()}
    for op_lib in TORCHVISION_OPS:
        assert op_lib in names, f"{op_lib}.so is missing from {folder}"


def test_resources_are_where_the_helper_looks(bundle: Path) -> None:
    root = bundle / "_internal" / "resources"
    assert (root / "demo" / "demo_resnet18.safetensors").stat().st_size > 40_000_000
    assert (root / "profiles" / "demo.toml").is_file()
    assert len(list((root / "samples" / "IMAGES").glob("*.jpg"))) == 48


def test_excluded_packages_are_absent(bundle: Path) -> None:
    internal = bundle / "_internal"
    present = [name for name in EXCLUDED_FOLDERS if (internal / name).exists()]
    assert not present, f"excluded packages bundled: {present}"
    qt_libs = [p.name for p in internal.rglob("libQt6*") if p.name.startswith(EXCLUDED_QT_LIBS)]
    assert not qt_libs, f"unused Qt libraries bundled: {qt_libs}"
    assert not list(internal.glob("torch/include")), "torch headers bundled"


def test_excluded_modules_are_not_in_the_archive(bundle: Path) -> None:
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("reading the bundle's archive needs PyInstaller")
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(bundle / APP))
    pyz_name = next(name for name in archive.toc if name.endswith(".pyz"))
    modules = set(archive.open_embedded_archive(pyz_name).toc)
    tops = {name.split(".")[0] for name in modules}
    assert {"engine", "ui", "torch", "torchvision", "PySide6"} <= tops
    assert "ui.selftest" in modules
    bundled = sorted(set(EXCLUDED_MODULES) & tops)
    assert not bundled, f"excluded modules in the archive: {bundled}"


def _layers_in_bundle(bundle: Path, home: Path, profile: Path) -> str:
    done = subprocess.run(
        [str(bundle / APP), "layers", "--profile", str(profile)],
        cwd=home,
        env=user_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_timm_profile_loads_in_the_bundle(bundle: Path, tmp_path: Path) -> None:
    """timm goes into the bundle: an inspector's timm profile must not ask for pip."""
    profile = tmp_path / "vit.toml"
    profile.write_text(
        'architecture = "timm:vit_tiny_patch16_224"\nclasses = ["ok", "defect"]\n'
        "[preprocess]\nsize = [224, 224]\n",
        encoding="utf-8",
    )
    out = _layers_in_bundle(bundle, tmp_path, profile)
    default = next(line for line in out.splitlines() if "<- default" in line)
    assert default.split()[0] == "blocks.11.norm1" and "tokens" in default, out


def test_onnx_profile_loads_in_the_bundle(bundle: Path, tmp_path: Path) -> None:
    """onnx and onnx2torch go into the bundle: a converted graph lists its nodes as layers."""
    import torch
    import torchvision

    model = torchvision.models.resnet18(num_classes=3).eval()
    onnx_file = tmp_path / "r18.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 3, 64, 64),), str(onnx_file), dynamo=False, opset_version=17
    )
    profile = tmp_path / "r18.toml"
    profile.write_text(
        'architecture = "onnx"\nweights = "r18.onnx"\n[preprocess]\nsize = [64, 64]\n',
        encoding="utf-8",
    )
    out = _layers_in_bundle(bundle, tmp_path, profile)
    default = next(line for line in out.splitlines() if "<- default" in line)
    assert "layer4" in default and "Relu" in default, out
