"""Tests for engine/backends/__init__.py: the registry every kind of model is found through."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
import torch

from engine.backends import (
    BACKENDS,
    architecture_for_file,
    architecture_problem,
    backend_for,
    bundled_packages,
    check_not_foreign,
    dialog_architectures,
    known_kinds,
    weights_filter,
)
from engine.backends.base import Backend
from engine.errors import InspectorError
from tests.conftest import modules_loaded_by

ROOT = Path(__file__).resolve().parents[3]
KINDS = (
    "a torchvision classifier name, timm:<name>, onnx, hf (a Hugging Face folder) or "
    "python:<file.py>:<callable>"
)


def _requirement_names(requirements: list[str]) -> set[str]:
    # The backends' packages are import names; each is its distribution's name too.
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_every_backend_declares_its_extra_and_packages(backend: Backend) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    if backend.extra is None:
        installed_by = _requirement_names(project["dependencies"])
    else:
        assert backend.packages, "an extra installs packages the backend imports"
        installed_by = _requirement_names(extras[backend.extra])
        # The application bundle ships every backend: its build extra installs them all.
        assert set(backend.packages) <= _requirement_names(extras["build"])
    assert set(backend.packages) <= installed_by
    assert set(backend.packages) <= set(bundled_packages())
    # The test extra installs every backend, so each package must import here.
    assert all(importlib.util.find_spec(p) is not None for p in backend.packages)
    assert all(s.startswith(".") and s == s.lower() for s in backend.suffixes)
    assert all(backend_for(choice) is backend for choice in backend.choices)


def test_backends_have_distinct_names_and_the_spec_bundles_them() -> None:
    names = [backend.name for backend in BACKENDS]
    assert len(set(names)) == len(names)
    assert bundled_packages() == ("torchvision", "timm", "onnx", "onnx2torch", "transformers")
    spec = (ROOT / "packaging" / "gradcam_inspector.spec").read_text(encoding="utf-8")
    assert re.search(r"hiddenimports=\[[^\]]*\*bundled_packages\(\),?\s*\]", spec)


@pytest.mark.parametrize(
    ("architecture", "kind"),
    [
        ("resnet18", "torchvision"),
        ("timm:resnet50", "timm"),
        ("timm:", "timm"),
        ("onnx", "onnx"),
        ("torchscript", "torchscript"),
        ("hf", "hf"),
        ("python:net.py:build", "python"),
        ("no_such_net", "torchvision"),  # a bare name is torchvision's, which gives the hint
    ],
)
def test_backend_for(architecture: str, kind: str) -> None:
    assert backend_for(architecture).name == kind


def test_unknown_architecture_lists_the_known_kinds() -> None:
    assert known_kinds() == KINDS
    assert architecture_problem("tim:resnet50") == (
        f"'tim:resnet50' is not a torchvision classifier (did you mean 'resnet50'?); "
        f"an architecture is {KINDS}"
    )
    assert architecture_problem("qwertyuiop") == (
        "'qwertyuiop' is not a torchvision classifier (see torchvision.models.list_models()); "
        f"an architecture is {KINDS}"
    )
    for fine in ("resnet18", "timm:anything", "onnx"):
        assert architecture_problem(fine) is None


def test_dialog_data_comes_from_the_backends() -> None:
    choices = dialog_architectures()
    assert choices[0] == "resnet18"  # the dialog's default
    assert {"timm:resnet50", "onnx"} <= set(choices) and len(set(choices)) == len(choices)
    assert weights_filter() == (
        "Weights (*.pth *.pt *.bin *.safetensors *.ckpt *.onnx);;All files (*)"
    )
    assert architecture_for_file("/data/model.ONNX") == "onnx"
    assert architecture_for_file("run7.pth") is None
    assert architecture_for_file("weights") is None


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"unused")
    with pytest.raises(InspectorError, match=r"^'m\.onnx' is an ONNX model: set architecture"):
        check_not_foreign(path, backend_for("resnet18"))
    check_not_foreign(path, backend_for("onnx"))  # its own kind
    state = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(2)}, state)  # a zip archive too, but no TorchScript
    for backend in BACKENDS:
        check_not_foreign(state, backend)


def test_registry_imports_without_torch() -> None:
    """Profiles are parsed and the open dialog filled at window start, before torch loads."""
    code = (
        "import engine.backends as b, engine.profile;"
        "b.architecture_problem('timm:resnet50'); b.architecture_problem('onnx');"
        "b.dialog_architectures(); b.weights_filter(); b.bundled_packages();"
        "b.architecture_for_file('m.onnx')"
    )
    heavy = ("torch", "torchvision", "timm", "onnx", "onnx2torch", "numpy")
    assert modules_loaded_by(code, heavy) == []
